"""Round trip of every still format through `veil clean` (CLI and Python API).

The output keeps name, format and size; the astronaut's face is strongly changed while the
faceless gradient far from it stays as it was (bit for bit where the format is lossless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import veil
from helpers import (
    ASTRONAUT_FACE,
    FAR_FROM_FACE,
    FORMATS,
    Fmt,
    backdrop,
    central,
    crop,
    decoded,
    leftovers,
    mean_abs_diff,
    read_report,
    scene,
    ssim_grey,
)
from veil.formats import HANDLERS, supported_extensions
from veil.result import Result


def _clean(door: str, src: Path, outdir: Path, cli) -> Result:
    if door == "cli":
        report = outdir.parent / "report.jsonl"
        run = cli("clean", src, "-o", outdir, "--report", report)
        assert run.code == 0, run.err
        (row,) = read_report(report)
        return Result.from_dict(row)
    result = veil.clean(src, outdir / src.name)
    assert isinstance(result, Result)
    return result


def _covers(region: list[int], box: tuple[int, int, int, int]) -> bool:
    x1, y1, x2, y2 = box
    return region[0] <= x1 and region[1] <= y1 and region[2] >= x2 and region[3] >= y2


@pytest.mark.parametrize("door", ["cli", "api"])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.id for f in FORMATS])
def test_round_trip_obscures_face_keeps_rest(fmt: Fmt, door: str, tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / f"photo{fmt.ext}"
    src.parent.mkdir()
    fmt.save(Image.fromarray(scene()), src)
    outdir = tmp_path / "out"

    result = _clean(door, src, outdir, cli)

    dst = outdir / src.name
    assert result.status == "cleaned", result.error
    assert result.output == str(dst)
    assert result.error is None
    with Image.open(src) as before, Image.open(dst) as after:
        assert after.format == fmt.pil_format
        assert after.size == before.size == (768, 512)
        if fmt.mode in ("L", "RGBA"):
            assert after.mode == fmt.mode, "grey stays grey, alpha stays alpha"
    # The face is reported where it is, and the reported region is what changed.
    assert any(_covers(f.region, ASTRONAUT_FACE) for f in result.faces), result.faces
    compare = "L" if fmt.mode == "L" else "RGB"
    a, b = decoded(src, compare), decoded(dst, compare)
    assert mean_abs_diff(crop(a, ASTRONAUT_FACE), crop(b, ASTRONAUT_FACE)) > 30
    inner = central(ASTRONAUT_FACE)
    assert ssim_grey(crop(a, inner), crop(b, inner)) < 0.6
    far_a, far_b = crop(a, FAR_FROM_FACE), crop(b, FAR_FROM_FACE)
    if fmt.lossless:
        np.testing.assert_array_equal(far_b, far_a)
    else:
        assert mean_abs_diff(far_a, far_b) <= fmt.far_tolerance
    if fmt.mode == "RGBA":  # transparency survives exactly
        np.testing.assert_array_equal(decoded(dst, "RGBA")[..., 3], decoded(src, "RGBA")[..., 3])
    assert not leftovers(tmp_path)


def test_webp_lossless_stays_lossless(tmp_path: Path) -> None:
    src = tmp_path / "ll.webp"
    Image.fromarray(scene()).save(src, "WEBP", lossless=True)
    result = veil.clean(src, tmp_path / "out" / "ll.webp")
    assert result.status == "cleaned", result.error
    data = Path(result.output).read_bytes()
    assert b"VP8L" in data[:64] and b"VP8 " not in data[:64]


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"])
def test_tiff_compression_kept(compression: str, tmp_path: Path) -> None:
    src = tmp_path / "c.tif"
    Image.fromarray(scene()).save(src, "TIFF", compression=compression)
    result = veil.clean(src, tmp_path / "out" / "c.tif")
    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert out.info.get("compression") == compression


def test_multipage_tiff_keeps_every_page(tmp_path: Path) -> None:
    """tiff.py: "multi-page TIFFs keep every page"; the face on page 2 is obscured too."""
    src = tmp_path / "pages.tif"
    first = Image.fromarray(backdrop(512, 768))
    first.save(src, "TIFF", save_all=True, append_images=[Image.fromarray(scene())])
    result = veil.clean(src, tmp_path / "out" / "pages.tif")
    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert out.n_frames == 2
    page2_in, page2_out = decoded(src, frame=1), decoded(Path(result.output), frame=1)
    assert mean_abs_diff(crop(page2_in, ASTRONAUT_FACE), crop(page2_out, ASTRONAUT_FACE)) > 30
    np.testing.assert_array_equal(decoded(Path(result.output), frame=0), backdrop(512, 768))


# -- animations ------------------------------------------------------------------------------
ANIMATIONS = {
    # id: (file name, Pillow format, save options, mean difference allowed away from faces)
    "gif": ("anim.gif", "GIF", {}, 3.0),
    "apng": ("anim.png", "PNG", {}, 0.0),
    "webp-lossless": ("anim.webp", "WEBP", {"lossless": True}, 0.0),
    "webp-lossy": ("anim.webp", "WEBP", {"quality": 90}, 3.0),
}


def _animation(tmp_path: Path, name: str, fmt: str, options: dict) -> tuple[Path, list[int]]:
    """Three frames: two without a face, then the astronaut in the last one."""
    plain = backdrop(512, 768)
    marked = plain.copy()
    marked[100:200, 600:700] = (250, 20, 20)
    frames = [Image.fromarray(f) for f in (plain, marked, scene())]
    if fmt == "GIF":
        frames = [f.quantize(256, method=Image.Quantize.MEDIANCUT) for f in frames]
    durations = [100, 250, 400]
    src = tmp_path / "in" / name
    src.parent.mkdir()
    frames[0].save(
        src, fmt, save_all=True, append_images=frames[1:], duration=durations, loop=0, **options
    )
    return src, durations


def _frames(path: Path) -> tuple[list[np.ndarray], list[int], int | None]:
    frames, durations = [], []
    with Image.open(path) as im:
        loop = im.info.get("loop")
        for i in range(im.n_frames):
            im.seek(i)
            im.load()  # some plug-ins (WebP) fill a frame's duration only once it is loaded
            durations.append(round(im.info.get("duration", 0)))
            frames.append(np.asarray(im.convert("RGB")))
    return frames, durations, loop


@pytest.mark.parametrize("door", ["cli", "api"])
@pytest.mark.parametrize("kind", ANIMATIONS, ids=list(ANIMATIONS))
def test_animation_keeps_frames_and_timing(kind: str, door: str, tmp_path: Path, cli) -> None:
    name, fmt, options, tolerance = ANIMATIONS[kind]
    src, durations = _animation(tmp_path, name, fmt, options)
    before, before_durations, before_loop = _frames(src)
    assert before_durations == durations and len(before) == 3

    result = _clean(door, src, tmp_path / "out", cli)

    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert out.format == fmt
    after, after_durations, after_loop = _frames(Path(result.output))
    assert len(after) == 3, "every frame is kept"
    assert after_durations == durations, "frame timing is kept"
    assert after_loop == before_loop == 0
    assert len(result.faces) >= 1
    # The face only appears in the last frame, and is obscured there.
    assert mean_abs_diff(crop(before[2], ASTRONAUT_FACE), crop(after[2], ASTRONAUT_FACE)) > 30
    for i in (0, 1):  # frames without a face come back as they were (up to GIF palettes)
        assert mean_abs_diff(before[i], after[i]) <= tolerance
    far_before, far_after = crop(before[2], FAR_FROM_FACE), crop(after[2], FAR_FROM_FACE)
    assert mean_abs_diff(far_before, far_after) <= tolerance


# -- every registered handler has a case above ---------------------------------------------
def test_every_registered_format_has_a_round_trip_case() -> None:
    """A new FormatHandler without a sample in FORMATS (or ANIMATIONS) makes this fail."""
    covered = {f.pil_format for f in FORMATS} | {fmt for _, fmt, _, _ in ANIMATIONS.values()}
    # DNG refuses a face rather than obscure sensor data: tests/formats/test_dng.py.
    registered = {h.pil_formats[0] for h in HANDLERS} - {"DNG"}
    assert registered <= covered, f"no round-trip case for {sorted(registered - covered)}"
    kinds = {
        ".jpg",
        ".png",
        ".webp",
        ".tif",
        ".heic",
        ".avif",
        ".gif",
        ".bmp",
        ".ppm",
        ".jxl",
        ".dng",
    }
    assert kinds <= set(supported_extensions())


def _pillow_upright(data: bytes) -> np.ndarray:
    """What decoding meant before it went band by band: Pillow's whole-frame turn and
    conversion (the reference the banded decoder must match pixel for pixel)."""
    import io

    from PIL import ImageOps

    im = Image.open(io.BytesIO(data))
    upright = ImageOps.exif_transpose(im)
    if upright.mode == "I;16":
        grey = (np.asarray(upright, dtype=np.int64) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    return np.asarray(upright.convert("RGBA" if alpha else "RGB"))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_banded_decode_matches_whole_frame(
    orientation: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large pictures are turned and converted a band of rows at a time (bounded memory); with
    bands of a few rows, every orientation and mode decodes exactly as Pillow does it whole,
    and the strip check (`same_pixels`) agrees band by band."""
    import io

    from veil.formats import base
    from veil.formats.png import PngHandler

    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 255, (37, 53, 4), dtype=np.uint8)  # not square, odd sizes
    im = Image.fromarray(pixels, "RGBA")
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65535, (37, 53), dtype=np.uint16))
    elif mode == "P":
        im = im.convert("RGB").quantize(64)
        im.info["transparency"] = 3
    else:
        im = im.convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif.tobytes())
    data = buf.getvalue()
    monkeypatch.setattr(base, "_BAND_PIXELS", 7 * 37)  # bands of 7 rows (or fewer)

    handler = PngHandler()
    decoded = handler.decode(data, 10**6)

    expected = _pillow_upright(data)
    assert decoded.frames[0].shape == expected.shape
    assert np.array_equal(decoded.frames[0], expected)
    assert handler.same_pixels(data, decoded)
    changed = decoded.frames[0].copy()
    changed[-1, -1, 0] ^= 1  # the last band too is compared
    assert not handler.same_pixels(data, base.Decoded([changed], "PNG", mode))
