"""A 16-bit TIFF with a face obscured stays 16 bits a sample: the samples away from the face
are the source's, to the bit, the page is written anew under the allowlisted tags only (ICC
profile kept, neutral), and veil wrote 8 bits before. Files are made in the test with
tifffile (which writes every byte order, compression and layout needed here) and read back
with tifffile, an independent reader, not with veil's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import veil.formats.tiff as tiff
from helpers import (
    ASTRONAUT_FACE,
    XMP,
    astronaut,
    central,
    exiftool_read,
    identifying_tags,
    srgb_icc,
    ssim_grey,
    textured,
)
from veil import Pipeline, Settings
from veil.formats.metadata import neutral_icc
from veil.formats.tiff import TiffHandler, _deep_encode
from veil.result import Result

MARKER = "VEIL-TIFF16-MARKER-91d3"
_NONE, _LZW, _ADOBE_DEFLATE, _DEFLATE = 1, 5, 8, 32946


def _wide(kind: str) -> np.ndarray:
    """The astronaut at 16 bits with fine detail in the low byte: an 8-bit round trip loses
    it. RGBA has a soft alpha edge on the left."""
    rgb = astronaut()
    wide = rgb.astype(np.uint16) * 257 + np.arange(rgb.shape[1], dtype=np.uint16)[:, None] % 200
    if kind == "grey":
        return wide.mean(axis=2).astype(np.uint16)
    if kind == "rgba":
        alpha = np.clip(np.arange(rgb.shape[1]) * 600, 0, 65535).astype(np.uint16)
        return np.dstack([wide, np.broadcast_to(alpha, rgb.shape[:2])])
    return wide


def _identifying(**options: Any) -> dict[str, Any]:
    """tifffile options that plant identifying tags, each carrying `MARKER`: description,
    software and date (which tifffile writes itself), Artist, Make, XMP and a private tag."""
    xmp = XMP.replace(b"Amsterdam", MARKER.encode())
    extratags = [
        (315, "s", 0, f"{MARKER} Artist", True),
        (271, "s", 0, f"{MARKER} Make", True),
        (700, "B", len(xmp), xmp, True),
        (0xC6F4, "s", 0, f"{MARKER} private tag", True),
        *options.pop("extratags", ()),
    ]
    return {
        "description": f"{MARKER} ImageDescription",
        "software": f"{MARKER} Software",
        "datetime": "2021:06:15 13:45:10",
        "metadata": None,
        "extratags": extratags,
        **options,
    }


def _write(path: Path, pixels: np.ndarray, kind: str, **options: Any) -> None:
    photometric = "minisblack" if kind == "grey" else "rgb"
    if kind == "rgba":
        options.setdefault("extrasamples", [2])  # unassociated alpha
    tifffile.imwrite(path, pixels, photometric=photometric, **_identifying(**options))


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # grey, rgb, rgba
    options: dict[str, Any] = field(default_factory=dict)
    compression: int = _NONE  # what the output's page must say
    predictor: int = 1
    icc: bool = True


CASES = [
    Case("rgb", "rgb"),
    # Big-endian, Deflate with the horizontal predictor: both kept.
    Case(
        "grey-big-endian-deflate",
        "grey",
        {"byteorder": ">", "compression": "zlib", "predictor": True},
        _ADOBE_DEFLATE,
        2,
        icc=False,
    ),
    # LZW is written as Adobe Deflate, the predictor kept.
    Case("rgba-lzw", "rgba", {"compression": "lzw", "predictor": True}, _ADOBE_DEFLATE, 2),
    # Tiles become strips; the older Deflate code is kept.
    Case(
        "rgb-big-endian-tiled",
        "rgb",
        {"byteorder": ">", "tile": (64, 64), "compression": "deflate"},
        _DEFLATE,
    ),
    Case("bigtiff", "rgb", {"bigtiff": True}),
]


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Result]]:
    root = tmp_path_factory.mktemp("tiff16")
    done = {}
    for case in CASES:
        src = root / f"{case.id}.tif"
        icc = {"iccprofile": srgb_icc()} if case.icc else {}
        _write(src, _wide(case.kind), case.kind, **icc, **case.options)
        done[case.id] = (src, Pipeline(Settings()).run(src, root / "out" / src.name))
    return done


def _away(result: Result, shape: tuple[int, ...]) -> np.ndarray:
    """Where the picture lies outside the obscured region."""
    x1, y1, x2, y2 = result.faces[0].region
    away = np.ones(shape[:2], bool)
    away[y1:y2, x1:x2] = False
    return away


def _top_byte(wide: np.ndarray) -> np.ndarray:
    """What an 8-bit viewer shows of 16-bit samples, alpha left out."""
    colour = wide[..., :3] if wide.ndim == 3 else wide
    return (colour >> 8).astype(np.uint8)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_16_bit_tiff_keeps_its_samples_away_from_the_face(case: Case, cleaned) -> None:
    src, result = cleaned[case.id]
    assert result.status == "cleaned" and len(result.faces) == 1, result.error
    before, after = tifffile.imread(src), tifffile.imread(result.output)
    assert after.dtype == np.uint16 and after.shape == before.shape
    away = _away(result, before.shape)
    np.testing.assert_array_equal(after[away], before[away])  # to the bit
    cx1, cy1, cx2, cy2 = central(ASTRONAUT_FACE)
    face = np.s_[cy1:cy2, cx1:cx2]
    assert ssim_grey(_top_byte(before[face]), _top_byte(after[face])) < 0.6
    # Where the picture changed, the new 8-bit value fills both bytes (v * 257).
    changed = after[face] != before[face]
    assert changed.any() and (after[face][changed] % 257 == 0).all()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layout_kept_and_data_rewritten_as_strips(case: Case, cleaned) -> None:
    src, result = cleaned[case.id]
    with tifffile.TiffFile(src) as before, tifffile.TiffFile(result.output) as after:
        assert (after.byteorder, after.is_bigtiff) == (before.byteorder, before.is_bigtiff)
        assert len(after.pages) == 1
        page = after.pages[0]
        assert page.bitspersample == 16 and not page.is_tiled
        assert (page.compression, page.predictor) == (case.compression, case.predictor)
        assert page.photometric == before.pages[0].photometric
        assert page.extrasamples == before.pages[0].extrasamples
        profile = page.tags.valueof(34675)
    assert profile == (neutral_icc(srgb_icc()) if case.icc else None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_planted_metadata_gone(case: Case, cleaned) -> None:
    src, result = cleaned[case.id]
    assert MARKER.encode() in src.read_bytes()  # the fixture really plants it
    data = Path(result.output).read_bytes()
    assert MARKER.encode() not in data and b"2021:06:15" not in data
    with tifffile.TiffFile(result.output) as out:
        assert _dtype(out) == np.uint16  # the deep path wrote it, not Pillow
        names = {tag.name for tag in out.pages[0].tags}
    assert not names & {"ImageDescription", "Software", "DateTime", "Artist", "Make", "XMP"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exiftool_finds_nothing_identifying(case: Case, cleaned, exiftool: str) -> None:
    src, result = cleaned[case.id]
    before, after = exiftool_read(src, Path(result.output))
    assert identifying_tags(before), "fixture should carry identifying tags"
    assert identifying_tags(after) == []
    assert after["EXIF:IFD0:BitsPerSample"] in (16, "16 16 16", "16 16 16 16")


def _dtype(tif: tifffile.TiffFile) -> np.dtype:
    return tif.pages[0].dtype


def test_each_full_size_page_kept_and_the_preview_dropped(tmp_path: Path) -> None:
    """A 16-bit page with the face, a reduced-resolution preview of it, an 8-bit page without
    a face: the first stays 16-bit, the preview goes, the last is copied as it was."""
    src, dst = tmp_path / "pages.tif", tmp_path / "out" / "pages.tif"
    wide, other = _wide("rgb"), textured(48, 72)
    with tifffile.TiffWriter(src) as writer:
        writer.write(wide, photometric="rgb", **_identifying(compression="zlib"))
        writer.write(astronaut()[::8, ::8], photometric="rgb", subfiletype=1, metadata=None)
        writer.write(other, photometric="rgb", compression="lzw", metadata=None)

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned" and len(result.faces) == 1, result.error
    with tifffile.TiffFile(dst) as out:
        assert len(out.pages) == 2
        first, second = out.pages[0].asarray(), out.pages[1].asarray()
        assert out.pages[1].compression == _LZW  # copied, not rebuilt
    assert first.dtype == np.uint16
    away = _away(result, wide.shape)
    np.testing.assert_array_equal(first[away], wide[away])
    assert (first != wide).any()
    np.testing.assert_array_equal(second, other)
    assert MARKER.encode() not in dst.read_bytes()


def _painted(path: Path) -> tuple[Any, list[np.ndarray]]:
    """A TIFF decoded by veil and its first page with a block painted black (an obscured
    face, without the detector)."""
    decoded = TiffHandler().decode(path.read_bytes(), 10**8)
    frame = decoded.frames[0].copy()
    frame[100:200, 150:250] = 0
    return decoded, [frame, *decoded.frames[1:]]


FALLBACKS = {
    # Turned: the frames are upright, the stored samples are not.
    "orientation-6": ("rgb", {"extratags": [(274, "H", 1, 6, True)]}),
    # Planes one after another, which OpenCV misreads.
    "planar-separate": ("rgb", {"planarconfig": "separate"}),
    # Premultiplied alpha, which the 8-bit frames hold divided out.
    "associated-alpha": ("rgba", {"extrasamples": [1]}),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_what_the_deep_path_cannot_write_falls_back_to_8_bits(name: str, tmp_path: Path) -> None:
    kind, options = FALLBACKS[name]
    plain = tmp_path / "plain.tif"
    _write(plain, _wide(kind), kind)
    assert _deep_encode(*_painted(plain)) is not None  # the same picture without the oddity
    pixels = _wide(kind)
    if options.get("planarconfig") == "separate":
        pixels = np.moveaxis(pixels, -1, 0)
    src = tmp_path / f"{name}.tif"
    _write(src, pixels, kind, **options)
    decoded, frames = _painted(src)
    assert _deep_encode(decoded, frames) is None

    data = TiffHandler().encode(decoded, frames)

    out = tmp_path / "out.tif"
    out.write_bytes(data)
    with tifffile.TiffFile(out) as tif:
        assert _dtype(tif) == np.uint8
    assert MARKER.encode() not in data
    TiffHandler().reread(data, decoded)  # readable and clean, as the pipeline checks


def test_a_page_that_does_not_read_back_as_written_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The written page is decoded again and compared at full depth: a predictor said but not
    applied (a broken writer) must not reach the output."""
    src = tmp_path / "predicted.tif"
    _write(src, _wide("rgb"), "rgb", compression="zlib", predictor=True)
    decoded, frames = _painted(src)
    assert _deep_encode(decoded, frames) is not None
    monkeypatch.setattr(tiff, "_differences", lambda samples: samples)

    assert _deep_encode(decoded, frames) is None
    data = TiffHandler().encode(decoded, frames)
    out = tmp_path / "out.tif"
    out.write_bytes(data)
    with tifffile.TiffFile(out) as tif:
        assert _dtype(tif) == np.uint8


def test_a_grey_page_painted_in_colour_falls_back(tmp_path: Path) -> None:
    """Grey 16-bit samples cannot hold a colour the obscurer painted."""
    src = tmp_path / "grey.tif"
    _write(src, _wide("grey"), "grey")
    decoded, frames = _painted(src)
    assert _deep_encode(decoded, frames) is not None
    frames[0][100:110, 150:160] = (255, 0, 0)

    assert _deep_encode(decoded, frames) is None
