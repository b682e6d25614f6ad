"""JPEG specifics: the re-encode matches the source quality and chroma subsampling, and a
photo with nothing to obscure keeps its pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import veil
from helpers import WRITTEN, backdrop, decoded, exif_block, mean_abs_diff, scene, textured
from veil.formats.jpeg import estimate_quality


def _save(path: Path, quality: int, subsampling: int = 2, **options) -> None:
    Image.fromarray(scene()).save(path, "JPEG", quality=quality, subsampling=subsampling, **options)


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_estimate_quality_of_libjpeg_files(quality: int, tmp_path: Path) -> None:
    src = tmp_path / f"q{quality}.jpg"
    _save(src, quality)
    with Image.open(src) as im:
        assert abs(estimate_quality(im.quantization) - quality) <= 2


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_clean_keeps_quality(quality: int, tmp_path: Path) -> None:
    src = tmp_path / f"q{quality}.jpg"
    _save(src, quality)
    result = veil.clean(src, tmp_path / "out" / src.name)
    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert abs(estimate_quality(out.quantization) - quality) <= 2


def test_estimate_quality_without_tables_is_a_safe_default() -> None:
    assert estimate_quality(None) >= 90
    assert estimate_quality({}) >= 90


@pytest.mark.parametrize(
    ("subsampling", "name"), [(0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")], ids=lambda v: str(v)
)
def test_chroma_subsampling_kept(subsampling: int, name: str, tmp_path: Path) -> None:
    src = tmp_path / "s.jpg"
    _save(src, 90, subsampling=subsampling)
    with Image.open(src) as im:
        assert JpegImagePlugin.get_sampling(im) == subsampling, f"fixture is not {name}"
    result = veil.clean(src, tmp_path / "out" / "s.jpg")
    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert JpegImagePlugin.get_sampling(out) == subsampling, f"{name} not kept"


def test_progressive_kept(tmp_path: Path) -> None:
    src = tmp_path / "p.jpg"
    _save(src, 90, progressive=True)
    result = veil.clean(src, tmp_path / "out" / "p.jpg")
    assert result.status == "cleaned", result.error
    with Image.open(result.output) as out:
        assert out.info.get("progressive") or out.info.get("progression")


def test_greyscale_jpeg_stays_greyscale(tmp_path: Path) -> None:
    src = tmp_path / "g.jpg"
    Image.fromarray(scene()).convert("L").save(src, "JPEG", quality=90)
    result = veil.clean(src, tmp_path / "out" / "g.jpg")
    assert result.status == "cleaned", result.error
    assert result.faces
    with Image.open(result.output) as out:
        assert out.mode == "L" and out.size == (768, 512)


def test_cmyk_jpeg_stays_cmyk_and_looks_the_same(tmp_path: Path) -> None:
    src = tmp_path / "c.jpg"
    Image.fromarray(backdrop(200, 300)).convert("CMYK").save(src, "JPEG", quality=95)
    result = veil.clean(src, tmp_path / "out" / "c.jpg", faces=False)
    assert result.status in WRITTEN, result.error
    with Image.open(result.output) as out:
        assert out.mode == "CMYK"
    assert mean_abs_diff(decoded(src), decoded(Path(result.output))) < 3


@pytest.mark.parametrize("door", ["faces-on-none-found", "faces-off"])
def test_nothing_to_obscure_keeps_pixels_identical(door: str, tmp_path: Path) -> None:
    """METRICS.md (3. Metadata, fidelity): for still images where no face was obscured the
    decoded pixels, orientation applied, must be identical; DESIGN.md: such a file is rewritten
    segment by segment, never re-encoded."""
    src = tmp_path / "noface.jpg"
    Image.fromarray(textured(300, 400)).save(
        src, "JPEG", quality=80, exif=exif_block(), subsampling=2
    )
    options = {"faces": False} if door == "faces-off" else {}
    result = veil.clean(src, tmp_path / "out" / "noface.jpg", **options)
    assert result.status in ("cleaned", "unchanged"), result.error
    assert result.faces == []
    np.testing.assert_array_equal(decoded(Path(result.output)), decoded(src))
