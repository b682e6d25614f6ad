"""EXIF orientation: the output shows the picture the same way up as a viewer showed the
input, either by keeping the orientation as its only tag (nothing obscured: the container is
rewritten, pixels untouched) or by turning the pixels (re-encoded after obscuring); faces are
reported in displayed pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import veil
from helpers import ASTRONAUT_FACE, crop, decoded, exif_block, mean_abs_diff, scene

T = Image.Transpose
# What a viewer does for each orientation (as PIL.ImageOps.exif_transpose), and its inverse,
# used to store a picture so that it displays as `pattern()`.
_INVERSE = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}


def pattern() -> np.ndarray:
    """240x160 (wider than tall), with no symmetry: every flip or turn of it looks different."""
    image = np.full((160, 240, 3), 90, np.uint8)
    image[:40, :40] = (230, 30, 30)  # red square, top left
    image[:15, 120:240] = (30, 30, 230)  # blue bar, top right half
    image[110:160, 200:240] = (30, 220, 30)  # green block, bottom right
    image[70:90, 20:140] = (240, 240, 240)  # white bar, left of centre
    return image


def _stored(displayed: Image.Image, orientation: int) -> Image.Image:
    inverse = _INVERSE[orientation]
    return displayed if inverse is None else displayed.transpose(inverse)


def _save(image: Image.Image, path: Path, orientation: int) -> None:
    exif = exif_block(orientation, identifying=False)
    if path.suffix == ".jpg":
        image.save(path, "JPEG", quality=95, subsampling=0, exif=exif)
    elif path.suffix == ".png":
        image.save(path, "PNG", exif=exif)
    else:
        image.save(path, "WEBP", lossless=True, exif=exif)


# TIFF is left out: Pillow turns TIFF pages upright itself while loading them.
@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_output_displays_the_same_way_up(orientation: int, ext: str, tmp_path: Path) -> None:
    want = pattern()
    src = tmp_path / f"o{orientation}{ext}"
    stored = _stored(Image.fromarray(want), orientation)
    _save(stored, src, orientation)
    with Image.open(src) as im:
        assert im.getexif().get(0x0112) == orientation
        as_viewed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        if orientation != 1:  # the stored pixels really are turned
            assert (
                np.asarray(im.convert("RGB")).shape != want.shape
                or mean_abs_diff(np.asarray(im.convert("RGB")), want) > 20
            )
    assert mean_abs_diff(as_viewed, want) < 2  # the fixture displays as the pattern

    result = veil.clean(src, tmp_path / "out" / src.name, faces=False)

    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        tags = dict(out.getexif())
        assert tags == ({} if orientation == 1 else {0x0112: orientation}), "only orientation"
        got = np.asarray(ImageOps.exif_transpose(out).convert("RGB"))
    np.testing.assert_array_equal(got, as_viewed)  # not re-encoded: not a pixel changed


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_faces_reported_in_displayed_pixels(orientation: int, tmp_path: Path) -> None:
    """METRICS.md: boxes and regions are in pixels of the image as displayed."""
    src = tmp_path / "turned.jpg"
    stored = _stored(Image.fromarray(scene()), orientation)
    stored.save(src, "JPEG", quality=92, exif=exif_block(orientation, identifying=False))

    result = veil.clean(src, tmp_path / "out" / "turned.jpg")

    assert result.status == "cleaned", result.error
    assert result.faces, "the face of a turned photo is found"
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert any(
        f.region[0] <= x1 and f.region[1] <= y1 and f.region[2] >= x2 and f.region[3] >= y2
        for f in result.faces
    ), [f.region for f in result.faces]
    with Image.open(result.output) as out:
        assert out.getexif().get(0x0112, 1) == 1, "re-encoded pixels are turned upright"
    before, after = decoded(src), decoded(Path(result.output))
    assert after.shape == before.shape == (512, 768, 3)
    assert mean_abs_diff(crop(before, ASTRONAUT_FACE), crop(after, ASTRONAUT_FACE)) > 30
