"""TIFF and BigTIFF without faces to obscure are rewritten, not re-encoded (`TiffHandler.strip`).

Each synthetic file carries identifying tags (EXIF and GPS IFDs, XMP, IPTC, Photoshop, a
private tag, GeoTIFF, Make/Artist/Software/DateTime) with a unique marker string in them, and
the output must keep every strip or tile byte for byte (16-bit depth and JPEG data included),
display the same pixels the same way up, keep the ICC profile and hold nothing identifying
by exiftool's reading. Strips are read back with Pillow's tags, not with veil's own reader.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

import veil
from helpers import (
    XMP,
    _ifd,
    exif_block,
    exiftool_read,
    identifying_tags,
    iptc_block,
    read_report,
    srgb_icc,
    textured,
)
from veil.errors import CorruptInput
from veil.formats.metadata import icc_profile_date, neutral_icc
from veil.formats.tiff import strip_tiff
from veil.result import Result

MARKER = "VEIL-TIFF-MARKER-5c1e"
_SHORT, _LONG, _ASCII, _UNDEFINED, _LONG8 = 3, 4, 2, 7, 16
_NEW_SUBFILE_TYPE, _SUBFILE_TYPE = 254, 255
_STRIPS = (273, 279)  # StripOffsets, StripByteCounts
_TILES = (324, 325)  # TileOffsets, TileByteCounts


def _identifying_exif(orientation: int | None = None, *, sub_ifds: bool) -> Image.Exif:
    """IFD0 tags a camera, an editor and a GIS would leave, each carrying `MARKER`; with
    ``sub_ifds`` also the Exif IFD (serial, owner, MakerNote) and the GPS IFD, which Pillow
    can only write into an uncompressed file (libtiff refuses the pointers)."""
    exif = Image.Exif()
    exif.load(exif_block(header=False, thumbnail=False))
    if not sub_ifds:
        del exif[0x8769], exif[0x8825]
    exif[0x010E] = f"{MARKER} ImageDescription"
    exif[0x0131] = f"{MARKER} Software"
    exif[0x013B] = f"{MARKER} Artist"
    exif[0x8298] = f"{MARKER} Copyright"
    exif[0x02BC] = XMP.replace(b"Amsterdam", MARKER.encode())
    iptc = iptc_block()
    exif[0x83BB] = iptc[iptc.index(b"\x1c") :] + MARKER.encode()  # IPTC-NAA record
    exif[0x8649] = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(MARKER)) + MARKER.encode()
    exif[0x87B1] = f"{MARKER} GeoAsciiParams|"  # GeoTIFF: places the picture on Earth
    exif[0xC6F4] = f"{MARKER} private tag"  # a DNG-range tag veil has no name for
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


def _save(pixels: np.ndarray, path: Path, mode: str | None = None, **options: Any) -> None:
    im = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    raw = options.get("compression", "raw") == "raw"
    exif = _identifying_exif(options.pop("orientation", None), sub_ifds=raw)
    im.save(path, "TIFF", exif=exif, xmp=exif[0x02BC], **options)


def _grey16(pixels: np.ndarray, path: Path, order: str, **options: Any) -> None:
    # Low bytes that differ from the high byte: an 8-bit round trip would lose them.
    wide = (pixels[..., 0].astype(np.uint16) << 8) | pixels[..., 1].astype(np.uint16)
    mode = "I;16B" if order == ">" else "I;16"
    im = Image.frombytes(mode, (wide.shape[1], wide.shape[0]), wide.astype(order + "u2").tobytes())
    raw = options.get("compression", "raw") == "raw"
    im.save(path, "TIFF", exif=_identifying_exif(sub_ifds=raw), **options)


def _multipage_with_preview(pixels: np.ndarray, path: Path) -> None:
    """Three pages: RGB, a reduced-resolution preview of it (NewSubfileType 1), then grey
    (PackBits)."""
    preview = Image.fromarray(pixels).resize((pixels.shape[1] // 4, pixels.shape[0] // 4))
    preview.encoderinfo = {"tiffinfo": {_NEW_SUBFILE_TYPE: 1, 0x013B: f"{MARKER} preview"}}
    grey = Image.fromarray(textured(40, 56, seed=7)).convert("L")
    grey.encoderinfo = {"tiffinfo": {0x0131: f"{MARKER} page 3"}, "compression": "packbits"}
    Image.fromarray(pixels).save(
        path,
        "TIFF",
        save_all=True,
        append_images=[preview, grey],
        exif=_identifying_exif(sub_ifds=True),
        icc_profile=srgb_icc(),
    )


def _handmade(entries: list[tuple[int, int, Any]], chunks: list[bytes], tags: tuple[int, int]):
    """A one-page little-endian TIFF built by hand (Pillow cannot write tiles): the data
    chunks first, then the IFD with ``entries`` and the chunks' offsets and sizes."""
    offsets, at = [], 8
    for chunk in chunks:
        offsets.append(at)
        at += len(chunk)
    at += at % 2
    entries = [*entries, (tags[0], _LONG, offsets), (tags[1], _LONG, [len(c) for c in chunks])]
    body = b"".join(chunks).ljust(at - 8, b"\x00")
    return b"II*\x00" + struct.pack("<I", at) + body + _ifd(entries, at)


_IDENTIFYING_ENTRIES = [
    (0x010F, _ASCII, f"{MARKER} Make"),
    (0x013B, _ASCII, f"{MARKER} Artist"),
    (0x0132, _ASCII, "2021:06:15 13:45:10"),
    (0xC6F4, _ASCII, f"{MARKER} private tag"),
]


def _tiled(pixels: np.ndarray, path: Path) -> None:
    """Uncompressed RGB in 16x16 tiles (TIFF 6.0 section 15), edge tiles padded."""
    height, width, side = pixels.shape[0], pixels.shape[1], 16
    padded = np.zeros((-(-height // side) * side, -(-width // side) * side, 3), np.uint8)
    padded[:height, :width] = pixels
    tiles = [
        padded[y : y + side, x : x + side].tobytes()
        for y in range(0, padded.shape[0], side)
        for x in range(0, padded.shape[1], side)
    ]
    layout = [
        (256, _LONG, width),
        (257, _LONG, height),
        (258, _SHORT, [8, 8, 8]),
        (259, _SHORT, 1),
        (262, _SHORT, 2),
        (277, _SHORT, 3),
        (284, _SHORT, 1),
        (322, _LONG, side),
        (323, _LONG, side),
        (34675, _UNDEFINED, srgb_icc()),
    ]
    path.write_bytes(_handmade(layout + _IDENTIFYING_ENTRIES, tiles, _TILES))


def _bigtiff_mm(grey: np.ndarray) -> bytes:
    """A big-endian BigTIFF of one uncompressed grey strip, built by hand (Pillow 13 neither
    writes nor reads this kind). Layout: header, strip, Make text, IFD (20-byte entries)."""
    height, width = grey.shape
    make = f"{MARKER} Make\x00".encode()
    strip_at = 16
    make_at = strip_at + grey.size + (-grey.size % 8)
    ifd_at = make_at + len(make) + (-len(make) % 8)
    entries = [  # tag, type, count, value (inline) or offset (Make)
        (256, _SHORT, 1, width),
        (257, _SHORT, 1, height),
        (258, _SHORT, 1, 8),
        (259, _SHORT, 1, 1),
        (262, _SHORT, 1, 1),
        (271, _ASCII, len(make), make_at),
        (273, _LONG8, 1, strip_at),
        (277, _SHORT, 1, 1),
        (278, _SHORT, 1, height),
        (279, _LONG8, 1, grey.size),
    ]
    table = b"".join(
        struct.pack(">HHQ", tag, kind, count)
        + (
            struct.pack(">H", value).ljust(8, b"\x00")
            if kind == _SHORT
            else struct.pack(">Q", value)
        )
        for tag, kind, count, value in entries
    )
    head = b"MM\x00+" + struct.pack(">HHQ", 8, 0, ifd_at)
    body = grey.tobytes().ljust(make_at - strip_at, b"\x00") + make.ljust(ifd_at - make_at, b"\x00")
    return head + body + struct.pack(">Q", len(entries)) + table + struct.pack(">Q", 0)


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[np.ndarray, Path], None]
    icc: bool = True


CASES = [
    Case("rgb-lzw", lambda p, f: _save(p, f, compression="tiff_lzw", icc_profile=srgb_icc())),
    Case(
        "rgb-deflate",
        lambda p, f: _save(p, f, compression="tiff_adobe_deflate", icc_profile=srgb_icc()),
    ),
    Case("rgb-jpeg", lambda p, f: _save(p, f, compression="jpeg", icc_profile=srgb_icc())),
    Case("rgba-raw", lambda p, f: _save(p, f, "RGBA", icc_profile=srgb_icc())),
    Case(
        "grey16-deflate", lambda p, f: _grey16(p, f, "<", compression="tiff_adobe_deflate"), False
    ),
    Case("grey16-big-endian", lambda p, f: _grey16(p, f, ">"), False),
    Case(
        "orientation-6",
        lambda p, f: _save(p, f, compression="packbits", orientation=6, icc_profile=srgb_icc()),
    ),
    # Pillow writes BigTIFF only without compression (libtiff is opened in classic mode).
    Case("bigtiff", lambda p, f: _save(p, f, big_tiff=True, icc_profile=srgb_icc())),
    Case("multipage-with-preview", _multipage_with_preview),
    Case("tiled", _tiled),
]


def _is_reduced(frame: Image.Image) -> bool:
    tags = frame.tag_v2
    return bool(int(tags.get(_NEW_SUBFILE_TYPE, 0)) & 1) or tags.get(_SUBFILE_TYPE) == 2


def _pixel_data(path: Path) -> list[bytes]:
    """Each full-size page's strips or tiles, as stored in the file."""
    data = path.read_bytes()
    pages = []
    with Image.open(path) as im:
        for index in range(im.n_frames):
            im.seek(index)
            if _is_reduced(im):
                continue
            offsets_tag, counts_tag = _TILES if 324 in im.tag_v2 else _STRIPS
            spans = zip(im.tag_v2[offsets_tag], im.tag_v2[counts_tag], strict=True)
            pages.append(b"".join(data[o : o + c] for o, c in spans))
    return pages


def _displayed(path: Path) -> list[np.ndarray]:
    """Every full-size page as displayed (Pillow applies a TIFF's orientation on load)."""
    pages = []
    with Image.open(path) as im:
        for index in range(im.n_frames):
            im.seek(index)
            if not _is_reduced(im):
                pages.append(np.asarray(ImageOps.exif_transpose(im)).copy())
    return pages


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Result]]:
    root = tmp_path_factory.mktemp("tiff-strip")
    pixels = textured(48, 72)  # grain: any re-encode or rounding shows
    done = {}
    for case in CASES:
        src = root / f"{case.id}.tif"
        case.make(pixels, src)
        result = veil.clean(src, root / "out" / src.name, faces=False)
        assert isinstance(result, Result)
        done[case.id] = (src, result)
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pixel_data_copied_byte_for_byte(case: Case, cleaned) -> None:
    src, result = cleaned[case.id]
    assert result.status == "cleaned", result.error
    assert MARKER.encode() in src.read_bytes()  # the fixture really plants it
    assert _pixel_data(Path(result.output)) == _pixel_data(src)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pixels_identical_as_displayed(case: Case, cleaned) -> None:
    src, result = cleaned[case.id]
    before, after = _displayed(src), _displayed(Path(result.output))
    assert len(after) == len(before)
    for a, b in zip(before, after, strict=True):
        assert a.dtype == b.dtype  # 16-bit stays 16-bit
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_marker_gone_from_output_bytes(case: Case, cleaned) -> None:
    _, result = cleaned[case.id]
    data = Path(result.output).read_bytes()
    assert MARKER.encode() not in data
    for secret in (b"Amsterdam", b"SN-0042", b"MN-SERIAL"):  # IPTC, Exif IFD, MakerNote
        assert secret not in data


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exiftool_finds_nothing_identifying(case: Case, cleaned, exiftool: str) -> None:
    src, result = cleaned[case.id]
    before, after = exiftool_read(src, Path(result.output))
    assert identifying_tags(before), "fixture should carry identifying tags"
    assert identifying_tags(after) == []


@pytest.mark.parametrize("case", [c for c in CASES if c.icc], ids=[c.id for c in CASES if c.icc])
def test_icc_profile_kept_without_its_date(case: Case, cleaned) -> None:
    _, result = cleaned[case.id]
    with Image.open(result.output) as out:
        profile = out.info.get("icc_profile")
    assert profile == neutral_icc(srgb_icc())
    assert icc_profile_date(profile) is None


def test_orientation_kept_and_applied(cleaned) -> None:
    src, result = cleaned["orientation-6"]
    with Image.open(result.output) as out:
        assert out.size == (48, 72)  # upright: the stored 72x48 turned a quarter clockwise
    with Image.open(src) as im:
        stored = im.tag_v2[0x0112]
    assert stored == 6
    np.testing.assert_array_equal(
        _displayed(Path(result.output))[0], np.rot90(textured(48, 72), -1)
    )


def test_preview_page_dropped(cleaned) -> None:
    src, result = cleaned["multipage-with-preview"]
    with Image.open(src) as im:
        assert im.n_frames == 3
    with Image.open(result.output) as out:
        assert out.n_frames == 2
        assert [out.seek(i) or out.mode for i in range(2)] == ["RGB", "L"]


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("rgb-lzw", b"II*\x00"),
        ("grey16-big-endian", b"MM\x00*"),
        ("bigtiff", b"II+\x00"),
    ],
)
def test_byte_order_and_kind_kept(case: str, kind: bytes, cleaned) -> None:
    src, result = cleaned[case]
    assert src.read_bytes()[:4] == kind
    assert Path(result.output).read_bytes()[:4] == kind


def test_jpeg_strip_with_its_own_comment_is_re_encoded(tmp_path: Path) -> None:
    """A JPEG strip may carry APPn or COM segments of its own; copying it would keep them,
    so the file is rebuilt from pixels instead."""
    pixels = textured(32, 48)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, "JPEG", quality=95, comment=f"{MARKER} in the strip")
    layout = [
        (256, _LONG, 48),
        (257, _LONG, 32),
        (258, _SHORT, [8, 8, 8]),
        (259, _SHORT, 7),  # JPEG
        (262, _SHORT, 6),  # YCbCr
        (277, _SHORT, 3),
        (278, _LONG, 32),
    ]
    src = tmp_path / "jpeg-strip.tif"
    src.write_bytes(_handmade(layout, [stream.getvalue()], _STRIPS))
    assert strip_tiff(src.read_bytes()) is None
    result = veil.clean(src, tmp_path / "out.tif", faces=False)
    assert result.status == "cleaned", result.error
    assert MARKER.encode() not in Path(result.output).read_bytes()


def test_big_endian_bigtiff_rewritten(tmp_path: Path, exiftool: str) -> None:
    """Pillow cannot open big-endian BigTIFF, so veil refuses such files as CorruptInput; the
    walker and writer handle them all the same, as exiftool reads the rewrite."""
    grey = textured(48, 72)[..., 0]
    src, out = tmp_path / "mm.btf", tmp_path / "mm-out.btf"
    src.write_bytes(_bigtiff_mm(grey))
    stripped = strip_tiff(src.read_bytes())
    assert stripped is not None
    out.write_bytes(stripped)
    assert stripped[:4] == b"MM\x00+"
    assert MARKER.encode() not in stripped
    before, after = exiftool_read(src, out)
    assert identifying_tags(before)
    assert identifying_tags(after) == []
    offset, count = after["EXIF:IFD0:StripOffsets"], after["EXIF:IFD0:StripByteCounts"]
    assert stripped[offset : offset + count] == grey.tobytes()


def test_unreadable_structure_is_refused_by_the_walker() -> None:
    loop = b"II*\x00" + struct.pack("<I", 8) + _ifd([(256, _LONG, 1)], 8, next_ifd=8)
    with pytest.raises(CorruptInput, match="loops"):
        strip_tiff(loop)
    past_end = b"II*\x00" + struct.pack("<I", 8) + _ifd([(273, _LONG, 10**6)], 8)
    with pytest.raises(CorruptInput):
        strip_tiff(past_end[:12])


@pytest.mark.parametrize("cut", [8, 200, 0.6])
def test_truncated_tiff_fails_cleanly(cut: float, tmp_path: Path, cli) -> None:
    whole = tmp_path / "whole.tif"
    _save(textured(48, 72), whole, compression="tiff_lzw")
    data = whole.read_bytes()
    src = tmp_path / "in" / "cut.tif"
    src.parent.mkdir()
    src.write_bytes(data[: int(cut * len(data)) if cut < 1 else int(cut)])
    report = tmp_path / "report.jsonl"
    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)
    (row,) = read_report(report)
    assert run.code != 0
    assert row["status"] == "failed" and row["error"].startswith("CorruptInput")
    assert not (tmp_path / "out" / "cut.tif").exists()


# -- real files ------------------------------------------------------------------------------
REAL = [
    "metadata-extractor/tif/Epson PerfectionV800.tiff",
    "metadata-extractor/tif/Issue 151.tif",
    "metadata-extractor/tif/Issue 16.tif",
    "metadata-extractor/tif/multipage.tif",
    "exiftool-t-images/ExifTool.tif",
    "exiftool-t-images/GeoTiff.tif",
    "exiftool-t-images/BigTIFF.btf",
    "piexif-testimages/01.tif",
]


@pytest.mark.parametrize("name", REAL)
def test_real_tiff_goes_lossless_and_clean(
    name: str, shared_data: Path, exiftool: str, tmp_path: Path, cli
) -> None:
    src = shared_data / "metadata" / name
    if not src.is_file():
        pytest.skip(f"{src} not in this copy of the corpus")
    report = tmp_path / "report.jsonl"
    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)
    assert run.code == 0, run.err
    (row,) = read_report(report)
    out = Path(row["output"])
    assert _pixel_data(out) == _pixel_data(src)  # lossless: no page was re-encoded
    (after,) = exiftool_read(out)
    assert identifying_tags(after) == []
