"""TIFF and BigTIFF. When no pixel changed, each page's IFD is rewritten with only the tags a
viewer needs and its strips or tiles copied byte for byte (`TiffHandler.strip`), so 16-bit
samples, JPEG-compressed data and any compression keep every bit. Otherwise the pages are
rebuilt from pixels with the source compression, without private or EXIF tags. Either way,
reduced-resolution pages (previews a scanner or camera stored next to the picture) are
dropped: they would carry a small un-obscured copy."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import PIL
from PIL import ExifTags, Image

from ..errors import CorruptInput
from ..pixels import Pixels
from .base import DECODE_ERRORS, Decoded, FormatHandler, source_bytes
from .metadata import neutral_icc
from .tiffio import LONG, Entry, Layout, Page, read_pages, write_tiff

# Compressions Pillow can write; anything else (e.g. old-style JPEG) falls back to LZW, lossless.
_WRITABLE = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "jpeg"}
_CLASSIC = (b"II*\x00", b"MM\x00*")
_BIG = (b"II+\x00", b"MM\x00+")
# TIFF 6.0 section 8: NewSubfileType bit 0 marks a reduced-resolution version of another page;
# the older SubfileType says the same with the value 2.
_NEW_SUBFILE_TYPE = 254
_SUBFILE_TYPE = 255
_REDUCED_RESOLUTION = 1
_OLD_REDUCED_RESOLUTION = 2

_B = ExifTags.Base
# The allowlist of a rewritten IFD: how to lay out, decompress and colour the pixels (TIFF 6.0
# baseline and extensions), the orientation (the viewer applies it) and the ICC profile.
# Everything else goes, a tag nobody has heard of included: EXIF, GPS and SubIFD pointers, XMP,
# IPTC, Photoshop, GeoTIFF, dates, device and author text, maker and private tags.
# T4Options and T6Options are not colour or layout but a CCITT fax decoder needs them.
_KEPT_TAGS = frozenset(
    {
        _B.NewSubfileType,
        _B.ImageWidth,
        _B.ImageLength,
        _B.BitsPerSample,
        _B.Compression,
        _B.PhotometricInterpretation,
        _B.FillOrder,
        _B.Orientation,
        _B.SamplesPerPixel,
        _B.RowsPerStrip,
        _B.StripByteCounts,
        _B.XResolution,
        _B.YResolution,
        _B.PlanarConfiguration,
        _B.ResolutionUnit,
        _B.T4Options,
        _B.T6Options,
        _B.Predictor,
        _B.ColorMap,
        _B.TileWidth,
        _B.TileLength,
        _B.TileByteCounts,
        _B.InkSet,
        _B.ExtraSamples,
        _B.SampleFormat,
        _B.JPEGTables,
        _B.YCbCrCoefficients,
        _B.YCbCrSubSampling,
        _B.YCbCrPositioning,
        _B.ReferenceBlackWhite,
        _B.WhitePoint,
        _B.PrimaryChromaticities,
        _B.TransferFunction,
        _B.InterColorProfile,
    }
)
# Read too, but not copied: the offsets are written fresh, SubfileType only marks previews.
_READ_TAGS = _KEPT_TAGS | {_B.StripOffsets, _B.TileOffsets, _SUBFILE_TYPE}
_OLD_JPEG, _JPEG = 6, 7  # TIFF 6.0 section 22 (superseded) and TIFF Technical Note 2


def _pillow_libtiff() -> ctypes.CDLL | None:
    """The libtiff that Pillow's decoder is linked with (its wheels bundle their own copy),
    found among the files this process has mapped, in the wheel, or where the system keeps it;
    None where it is built into Pillow (Windows wheels) or not found."""
    for candidate in _libtiff_candidates():
        try:
            library = ctypes.CDLL(candidate)
        except OSError:
            continue
        if hasattr(library, "TIFFSetErrorHandler"):
            return library
    return None


def _libtiff_candidates() -> Iterator[str]:
    try:  # Linux: the copy already loaded with Pillow's C module
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            yield from {line.split(maxsplit=5)[-1].strip() for line in maps if "libtiff" in line}
    except OSError:
        pass
    package = Path(PIL.__file__).parent
    for folder in (package / ".dylibs", package.parent / "pillow.libs"):
        yield from (str(path) for path in sorted(folder.glob("libtiff*")))
    system = ctypes.util.find_library("tiff")  # last: it may run ldconfig
    if system:
        yield system


def silence_libtiff() -> bool:
    """Stop libtiff printing its complaints about a damaged TIFF on stderr ("TIFFFetchNormalTag:
    Incorrect count for ...", "Using code not yet in table"): veil says in its own words what
    is wrong with the file, and libtiff's lines would land on the console between them.

    Its handlers are process-wide, so they are set once here, at import, not around each
    decode (nothing else in veil writes on stderr through libtiff); the failures themselves
    still reach Pillow as return codes. Returns whether libtiff was found.
    """
    library = _pillow_libtiff()
    if library is None:
        return False
    for setter in (library.TIFFSetErrorHandler, library.TIFFSetWarningHandler):
        setter.argtypes, setter.restype = [ctypes.c_void_p], ctypes.c_void_p
        setter(None)  # no handler: libtiff formats nothing and prints nothing
    return True


silence_libtiff()


class TiffHandler(FormatHandler):
    name = "TIFF"
    extensions = (".tif", ".tiff", ".btf")
    pil_formats = ("TIFF",)
    animated = True  # multi-page TIFFs keep every full-size page

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:4] in _CLASSIC + _BIG

    def keep_frame(self, frame: Image.Image) -> bool:
        tags = getattr(frame, "tag_v2", None)
        if tags is None:
            return True
        reduced = int(tags.get(_NEW_SUBFILE_TYPE, 0)) & _REDUCED_RESOLUTION
        return not reduced and tags.get(_SUBFILE_TYPE) != _OLD_REDUCED_RESOLUTION

    def strip(self, decoded: Decoded) -> bytes | None:
        try:
            stripped = strip_tiff(decoded.source)
        except (CorruptInput, *DECODE_ERRORS):
            return None
        # Every page decoded as the source was: the IFD walk and libtiff or Pillow must agree
        # on what each page is, or the rewrite is not trusted.
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        im = super().to_pil(pixels, decoded)
        # CMYK stays CMYK (print files), so a CMYK colour profile still describes the pixels.
        return im.convert("CMYK") if decoded.mode == "CMYK" and im.mode == "RGB" else im

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        compression = im.info.get("compression", "raw")
        options["compression"] = compression if compression in _WRITABLE else "tiff_lzw"
        if compression == "jpeg":
            options["quality"] = 90
        if "dpi" in im.info:
            options["dpi"] = im.info["dpi"]
        if source_bytes(im, 4) in _BIG:
            options["big_tiff"] = True  # a BigTIFF input may be too large for classic offsets
        return options


def strip_tiff(data: bytes) -> bytes | None:
    """The TIFF with its full-size pages only, each IFD cut down to `_KEPT_TAGS` (ICC profile
    date zeroed) and its strips or tiles copied verbatim; byte order and BigTIFF kept.

    None where a page cannot be copied safely (old-style JPEG, strips past the end of the
    file, JPEG data carrying its own metadata segments); `CorruptInput` where the IFDs
    themselves do not parse.
    """
    layout, ifds = read_pages(data, _READ_TAGS)
    pages: list[Page] = []
    for entries in ifds:
        if _is_reduced(entries, layout):
            continue
        page = _page(data, layout, entries)
        if page is None:
            return None
        pages.append(page)
    return write_tiff(layout, pages) if pages else None


def _number(entries: dict[int, Entry], tag: int, layout: Layout, default: int) -> int:
    entry = entries.get(tag)
    if entry is None or entry.count != 1:
        return default
    return entry.numbers(layout)[0]


def _is_reduced(entries: dict[int, Entry], layout: Layout) -> bool:
    """The rule of `TiffHandler.keep_frame`, read from the raw IFD."""
    if _number(entries, _NEW_SUBFILE_TYPE, layout, 0) & _REDUCED_RESOLUTION:
        return True
    return _number(entries, _SUBFILE_TYPE, layout, 0) == _OLD_REDUCED_RESOLUTION


def _page(data: bytes, layout: Layout, entries: dict[int, Entry]) -> Page | None:
    compression = _number(entries, _B.Compression, layout, 1)
    if compression == _OLD_JPEG:  # offsets into a JPEG interchange stream, not data to copy
        return None
    tiled = _B.TileOffsets in entries
    offsets_tag = _B.TileOffsets if tiled else _B.StripOffsets
    counts_tag = _B.TileByteCounts if tiled else _B.StripByteCounts
    if (tiled and _B.StripOffsets in entries) or offsets_tag not in entries:
        return None
    if counts_tag not in entries:
        return None  # libtiff guesses the sizes; a guess is not a verbatim copy
    offsets = entries[offsets_tag].numbers(layout)
    counts = entries[counts_tag].numbers(layout)
    if len(offsets) != len(counts):
        return None
    spans = list(zip(offsets, counts, strict=True))
    if any(o + c > len(data) for o, c in spans):
        return None  # truncated: the decoder made do with less, a copy cannot
    chunks = tuple(data[o : o + c] for o, c in spans)
    if compression == _JPEG:
        tables = entries.get(_B.JPEGTables)
        streams = (*chunks, tables.raw) if tables else chunks
        if any(_jpeg_has_extras(stream) for stream in streams):
            return None
    kept = [_neutral(entry) for tag, entry in entries.items() if tag in _KEPT_TAGS]
    if _NEW_SUBFILE_TYPE not in entries:
        # The default (0, a full-size image) said outright: exiftool names a JPEG-compressed
        # page without it "PreviewImage", and a metadata audit would count the picture itself.
        kept.append(Entry(_NEW_SUBFILE_TYPE, LONG, 1, struct.pack(layout.order + "I", 0)))
    return Page(tuple(kept), offsets_tag, chunks)


def _neutral(entry: Entry) -> Entry:
    if entry.tag != _B.InterColorProfile:
        return entry
    return Entry(entry.tag, entry.kind, entry.count, neutral_icc(entry.raw))


_APP0, _APP14, _COM = 0xE0, 0xEE, 0xFE


def _neutral_segment(marker: int, payload: bytes) -> bool:
    """JPEG segments allowed before a scan in a TIFF's JPEG strips: all but APPn and COM
    (which can hold EXIF, XMP or text a copy would keep), a JFIF header without thumbnail
    (ITU T.871 section 10.1: thumbnail width and height are bytes 12-13) and Adobe's colour
    transform."""
    if marker == _APP0:
        return payload.startswith(b"JFIF\x00") and payload[12:14] == b"\x00\x00"
    if marker == _APP14:
        return payload.startswith(b"Adobe")
    return not (0xE0 <= marker <= 0xEF or marker == _COM)


def _jpeg_has_extras(stream: bytes) -> bool:
    """Whether a JPEG stream (a strip, a tile or JPEGTables) carries a metadata segment before
    its first scan; a stream that cannot be walked counts as carrying one."""
    at = 0
    while at + 4 <= len(stream):
        if stream[at] != 0xFF:
            return True
        marker = stream[at + 1]
        if marker in (0xD8, 0xFF):  # start of image, fill byte
            at += 2 if marker == 0xD8 else 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image (JPEGTables)
            return False
        end = at + 2 + int.from_bytes(stream[at + 2 : at + 4], "big")
        if not _neutral_segment(marker, stream[at + 4 : end]):
            return True
        at = end
    return stream[at : at + 2] != b"\xff\xd9"
