"""TIFF and BigTIFF. When no pixel changed, each page's IFD is rewritten with only the tags a
viewer needs and its strips or tiles copied byte for byte (`TiffHandler.strip`), so 16-bit
samples, JPEG-compressed data and any compression keep every bit. Otherwise the pages are
rebuilt from pixels with the source compression, without private or EXIF tags; a page of
16 bits a sample stays 16 bits (`_deep_encode`). Either way, reduced-resolution pages
(previews a scanner or camera stored next to the picture) are dropped: they would carry a
small un-obscured copy."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import ExifTags, Image

from ..errors import CorruptInput
from ..pixels import Pixels
from .base import DECODE_ERRORS, Decoded, FormatHandler, same_array, source_bytes
from .deep import Wide, merge, read_wide
from .metadata import neutral_icc
from .tiffio import LONG, SHORT, Entry, Layout, Page, read_pages, write_tiff

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

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        # 16 bits a sample stay 16 bits: only the obscured pixels take new values.
        deep = _deep_encode(decoded, frames)
        # The 8-bit view of what was written must be the obscured picture, page for page.
        if deep is not None and self.same_pixels(deep, replace(decoded, frames=frames)):
            return deep
        return super().encode(decoded, frames)

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
        page = copy_page(data, layout, entries)
        if page is None:
            return None
        pages.append(page)
    return write_tiff(layout, pages) if pages else None


def tag_number(entries: dict[int, Entry], tag: int, layout: Layout, default: int) -> int:
    entry = entries.get(tag)
    if entry is None or entry.count != 1:
        return default
    return entry.numbers(layout)[0]


def _is_reduced(entries: dict[int, Entry], layout: Layout) -> bool:
    """The rule of `TiffHandler.keep_frame`, read from the raw IFD."""
    if tag_number(entries, _NEW_SUBFILE_TYPE, layout, 0) & _REDUCED_RESOLUTION:
        return True
    return tag_number(entries, _SUBFILE_TYPE, layout, 0) == _OLD_REDUCED_RESOLUTION


def copy_page(data: bytes, layout: Layout, entries: dict[int, Entry]) -> Page | None:
    compression = tag_number(entries, _B.Compression, layout, 1)
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
        if any(jpeg_has_extras(stream) for stream in streams):
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


def jpeg_has_extras(stream: bytes) -> bool:
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


# A page of 16 bits a sample rewritten after obscuring (`_deep_encode`): compressions kept
# as they are (none; Deflate under Adobe's code 8 or the older 32946, TIFF Technical Note 2),
# any other written as Adobe Deflate, lossless too and read by every libtiff.
_NONE, _ADOBE_DEFLATE, _DEFLATE = 1, 8, 32946
_HORIZONTAL = 2  # Predictor: horizontal differencing (TIFF 6.0 section 14)
# How a page's samples are cut up, ordered and compressed: the rewritten page says these
# anew for its own strips, or (tiles, a bit order, fax options, JPEG tables) not at all.
_DATA_TAGS = frozenset(
    {
        _B.Compression,
        _B.Predictor,
        _B.FillOrder,
        _B.RowsPerStrip,
        _B.StripByteCounts,
        _B.PlanarConfiguration,
        _B.TileWidth,
        _B.TileLength,
        _B.TileByteCounts,
        _B.T4Options,
        _B.T6Options,
        _B.JPEGTables,
    }
)
# Samples a strip holds before compression: big enough for Deflate to find its repeats,
# small enough that a reader need not inflate much to show a part of the picture.
_STRIP_BYTES = 1 << 18
_DEEP_BITS = 16
_UNSIGNED_INTEGER = 1  # SampleFormat
_MIN_IS_BLACK, _RGB = 1, 2  # PhotometricInterpretation
# ExtraSamples of an RGBA page: unspecified or unassociated alpha. Associated (premultiplied)
# alpha is not merged: the 8-bit frames hold it divided out.
_PLAIN_ALPHA = ((0,), (2,))


def _deep_encode(decoded: Decoded, frames: list[Pixels]) -> bytes | None:
    """The TIFF with its obscured 16-bit pages still 16 bits a sample: the source's samples
    where the picture did not change, the new 8-bit values times 257 where it did (`merge`),
    in new strips under the page's own allowlisted tags (`_deep_page`). Unchanged pages are
    copied as `strip_tiff` copies them; reduced-resolution pages are dropped.

    None where this does not apply (no page changed; a changed page that is not 16-bit
    grey, RGB or RGBA, stored the right way up) or cannot be done, and where the written
    file does not read back at full depth as intended: the pages are then rebuilt at 8 bits.
    """
    source = decoded.source
    if len(frames) != len(decoded.frames) or all(
        same_array(new, old) for new, old in zip(frames, decoded.frames, strict=True)
    ):
        return None
    try:
        layout, ifds = read_pages(source, _READ_TAGS)
        full = [entries for entries in ifds if not _is_reduced(entries, layout)]
        if len(full) != len(frames):
            return None
        pages: list[Page] = []
        intended: dict[int, Wide] = {}
        for index, (entries, new, old) in enumerate(zip(full, frames, decoded.frames, strict=True)):
            if same_array(new, old):
                page = copy_page(source, layout, entries)
            else:
                deep = _deep_page(source, layout, entries, new, old)
                if deep is None:
                    return None
                page, intended[index] = deep
            if page is None:
                return None
            pages.append(page)
        written = write_tiff(layout, pages)
        return written if _reads_as(written, intended) else None
    except (CorruptInput, struct.error):
        return None  # an IFD the walker cannot read with certainty: the 8-bit path decides


def _deep_page(
    data: bytes, layout: Layout, entries: dict[int, Entry], new: Pixels, old: Pixels
) -> tuple[Page, Wide] | None:
    """A changed page rewritten at 16 bits a sample, and the samples it holds; None unless
    the page is 16-bit unsigned grey, RGB or RGBA (unassociated alpha), one sample after
    another (chunky), with orientation 1 and samples OpenCV's libtiff reads."""
    samples = tag_number(entries, _B.SamplesPerPixel, layout, 1)
    photometric = tag_number(entries, _B.PhotometricInterpretation, layout, -1)
    if (samples, photometric) not in ((1, _MIN_IS_BLACK), (3, _RGB), (4, _RGB)):
        return None
    if samples == 4 and _numbers(entries, _B.ExtraSamples, layout) not in _PLAIN_ALPHA:
        return None
    bits = _numbers(entries, _B.BitsPerSample, layout)
    formats = _numbers(entries, _B.SampleFormat, layout) or (_UNSIGNED_INTEGER,)
    if bits not in ((_DEEP_BITS,), (_DEEP_BITS,) * samples):
        return None
    if set(formats) != {_UNSIGNED_INTEGER}:
        return None  # signed or floating-point: a new 8-bit value times 257 means nothing there
    if tag_number(entries, _B.Orientation, layout, 1) != 1:
        return None  # the frames are upright, the stored samples are not
    if samples > 1 and tag_number(entries, _B.PlanarConfiguration, layout, 1) != 1:
        return None  # OpenCV misreads planes stored one after another
    copied = copy_page(data, layout, entries)
    # Read from the page on its own, under its allowlisted tags: any page of a multi-page
    # file, and nothing else of the source goes near the decoder.
    wide = None if copied is None else read_wide(write_tiff(layout, [copied]))
    merged = None if wide is None else merge(wide, new, old)
    if copied is None or merged is None:
        return None
    compression = tag_number(entries, _B.Compression, layout, _NONE)
    if compression not in (_NONE, _ADOBE_DEFLATE, _DEFLATE):
        compression = _ADOBE_DEFLATE
    predictor = tag_number(entries, _B.Predictor, layout, 1)
    predictor = _HORIZONTAL if compression != _NONE and predictor == _HORIZONTAL else 1
    kept = [entry for entry in copied.entries if entry.tag not in _DATA_TAGS]
    return _strips(layout, kept, merged, compression, predictor), merged


def _numbers(entries: dict[int, Entry], tag: int, layout: Layout) -> tuple[int, ...]:
    entry = entries.get(tag)
    return () if entry is None else entry.numbers(layout)


def _strips(
    layout: Layout, kept: list[Entry], samples: Wide, compression: int, predictor: int
) -> Page:
    """``samples`` as the strips of a page, in the file's byte order, with the entries that
    describe them added to ``kept``."""
    height = samples.shape[0]
    rows = max(1, min(height, _STRIP_BYTES // max(1, samples[0].nbytes)))
    if predictor == _HORIZONTAL:
        samples = _differences(samples)
    stored = samples.astype(layout.order + "u2", copy=False)
    chunks = []
    for top in range(0, height, rows):
        raw = stored[top : top + rows].tobytes()
        chunks.append(raw if compression == _NONE else zlib.compress(raw))
    order = layout.order
    described = [
        Entry(_B.Compression, SHORT, 1, struct.pack(order + "H", compression)),
        Entry(_B.PlanarConfiguration, SHORT, 1, struct.pack(order + "H", 1)),
        Entry(_B.RowsPerStrip, LONG, 1, struct.pack(order + "I", rows)),
        Entry(
            _B.StripByteCounts,
            LONG,
            len(chunks),
            struct.pack(f"{order}{len(chunks)}I", *map(len, chunks)),
        ),
    ]
    if predictor == _HORIZONTAL:
        described.append(Entry(_B.Predictor, SHORT, 1, struct.pack(order + "H", predictor)))
    return Page((*kept, *described), _B.StripOffsets, tuple(chunks))


def _differences(samples: Wide) -> Wide:
    """TIFF's horizontal predictor: each sample less the same channel's sample to its left,
    modulo 2**16 (uint16 arithmetic wraps the same way); the first column as it is."""
    out = samples.copy()
    out[:, 1:] -= samples[:, :-1]
    return out


def _reads_as(data: bytes, intended: dict[int, Wide]) -> bool:
    """Whether the full-size pages numbered in ``intended`` of a written TIFF decode to
    exactly those samples (16 bits; `TiffHandler.encode` then checks the 8-bit view)."""
    layout, ifds = read_pages(data, _READ_TAGS)
    full = [entries for entries in ifds if not _is_reduced(entries, layout)]
    for index, samples in intended.items():
        page = copy_page(data, layout, full[index]) if index < len(full) else None
        back = None if page is None else read_wide(write_tiff(layout, [page]))
        if back is None or back.shape != samples.shape or not np.array_equal(back, samples):
            return False
    return True
