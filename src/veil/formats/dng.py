"""DNG, the RAW format of phones (Apple ProRAW, Android) and of many cameras.

A DNG is a TIFF whose first IFD names the camera and its colour (the DNG tags) and whose
sensor data lies in that IFD or in a SubIFD, beside previews, the EXIF and GPS IFDs, XMP and
the maker's own notes (DNGPrivateData). veil develops the sensor data with LibRaw (through
``rawpy``, an optional extra) to look for faces in it, as a RAW editor would show it.

With nothing found, the file is rewritten as one IFD (`strip_dng`): the sensor data copied
byte for byte, the tags that lay it out and colour it (`_DNG_KEPT`, DNG 1.7.1 specification),
and nothing else; previews go, since each is an un-obscured copy of the picture. The check
that the rewrite is right compares what LibRaw reads of the two files: every sensor value,
the colour filter pattern, the black and white levels and the colour matrices.

With something to obscure, the file is refused: veil does not obscure sensor data, and a
picture obscured only in the rendering would not be obscured in the RAW, which any RAW editor
develops again from the sensor data. The message says to export a JPEG or TIFF and clean that.
"""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from ..errors import CorruptInput, EncodeFailed, TooLarge, UnsupportedFormat, VerificationFailed
from ..extras import install_command
from ..fields import DEVICE, OTHER, PICTURE, SERIAL, TEXT, MetaField
from ..pixels import Pixels
from .base import DECODE_ERRORS, Decoded, FormatHandler, same_array
from .metadata import exif_fields
from .tiff import copy_page, jpeg_has_extras, tag_number
from .tiffio import Entry, Layout, Page, read_ifd, read_pages, write_tiff

_EVERY_TAG = frozenset(range(1 << 16))
_SUB_IFDS = 330
_DNG_VERSION = 50706
_NEW_SUBFILE_TYPE = 254
_CFA, _LINEAR_RAW = 32803, 34892  # PhotometricInterpretation of sensor data (DNG 1.7.1, p. 20)
# Compressions whose data is copied: none, lossless JPEG, Deflate, lossy JPEG (DNG 1.4) and
# JPEG XL (DNG 1.7). The JPEG ones are checked for metadata segments, the JPEG XL one must
# be a bare codestream (its container form has boxes that can hold EXIF).
_NONE, _JPEG, _DEFLATE, _LOSSY_JPEG, _JXL = 1, 7, 8, 34892, 52546
_COPIED = frozenset({_NONE, _JPEG, _DEFLATE, _LOSSY_JPEG, _JXL})

# The DNG tags a developer needs (DNG 1.7.1 specification, chapter 4 and 6), by number: the
# sensor's layout and levels, the colour calibration and profile, the crop and the lens
# corrections (opcode lists). With the layout tags of `tiff._KEPT_TAGS` and TIFF/EP's
# colour-filter pattern, that is all the rewrite keeps. Left out on purpose: Make, Model,
# LocalizedCameraModel, CameraSerialNumber, DNGPrivateData (maker notes), MakerNoteSafety,
# RawDataUniqueID, OriginalRawFileName/Data/Digest, the digests of the sensor data, the
# preview application, settings and date, the profile's copyright, extra camera profiles
# (IFD pointers), EXIF, GPS, XMP, IPTC, and the SubIFDs pointer (previews, masks, depth maps).
# UniqueCameraModel stays: the specification requires it, and developers choose a colour
# profile by it; it names the kind of camera, not the camera or its owner.
_DNG_KEPT = frozenset(
    {
        33421,  # CFARepeatPatternDim (TIFF/EP)
        33422,  # CFAPattern (TIFF/EP)
        *range(50706, 50709),  # DNGVersion, DNGBackwardVersion, UniqueCameraModel
        *range(50710, 50735),  # CFAPlaneColor .. LinearResponseLimit
        *range(50737, 50740),  # ChromaBlurRadius, AntiAliasStrength, ShadowScale
        *range(50778, 50781),  # CalibrationIlluminant1/2, BestQualityScale
        50829,  # ActiveArea
        50830,  # MaskedAreas
        50879,  # ColorimetricReference
        50931,  # CameraCalibrationSignature
        50932,  # ProfileCalibrationSignature
        *range(50934, 50942),  # AsShotProfileName .. ProfileEmbedPolicy
        50964,  # ForwardMatrix1
        50965,  # ForwardMatrix2
        50974,  # SubTileBlockSize
        50975,  # RowInterleaveFactor
        50981,  # ProfileLookTableDims
        50982,  # ProfileLookTableData
        51008,  # OpcodeList1
        51009,  # OpcodeList2
        51022,  # OpcodeList3
        51041,  # NoiseProfile
        *range(51089, 51092),  # OriginalDefaultFinalSize .. OriginalDefaultCropSize
        *range(51107, 51111),  # ProfileHueSatMapEncoding .. DefaultBlackRender
        51125,  # DefaultUserCrop
        52525,  # ProfileGainTableMap
        *range(52529, 52538),  # CalibrationIlluminant3 .. ProfileHueSatMapData3
        52538,  # ReductionMatrix3
        52543,  # RGBTables
        52547,  # ColumnInterleaveFactor
        52551,  # ProfileDynamicRange
        52552,  # ProfileGroupName
        *range(52554, 52557),  # JXLDistance, JXLEffort, JXLDecodeSpeed
    }
)
# What the dropped DNG tags are, for `scan` (Pillow's EXIF reader names the rest).
_DNG_NAMES: dict[int, tuple[str, str]] = {
    50709: (DEVICE, "LocalizedCameraModel"),
    50740: (DEVICE, "DNGPrivateData"),
    50741: (DEVICE, "MakerNoteSafety"),
    50781: (SERIAL, "RawDataUniqueID"),
    50827: (TEXT, "OriginalRawFileName"),
    50828: (OTHER, "OriginalRawFileData"),
    50973: (SERIAL, "OriginalRawFileDigest"),
}
_PREVIEW = MetaField(PICTURE, "PreviewImage", "preview of the picture (an un-obscured copy)")
_REFUSED = (
    "something to obscure was found in this RAW photo, and veil does not obscure RAW sensor "
    "data (any RAW editor develops the picture again from it): export a JPEG or TIFF from "
    "your RAW editor and clean that"
)


def _rawpy() -> ModuleType:
    try:
        import rawpy
    except ImportError:
        raise UnsupportedFormat(f"DNG needs LibRaw: {install_command('dng')}") from None
    return rawpy


def available() -> bool:
    try:
        _rawpy()
    except UnsupportedFormat:
        return False
    return True


def _ifds(data: bytes) -> tuple[Layout, list[dict[int, Entry]], list[dict[int, Entry]]]:
    """The layout, the main chain of IFDs and the SubIFDs IFD0 points at, each with every
    entry."""
    layout, chain = read_pages(data, _EVERY_TAG)
    first = chain[0]
    if _DNG_VERSION not in first:
        raise CorruptInput("a TIFF without DNG tags: if it is a TIFF picture, name it .tif")
    subs = []
    if _SUB_IFDS in first:
        for offset in first[_SUB_IFDS].numbers(layout):
            subs.append(read_ifd(data, offset, layout, _EVERY_TAG)[0])
    return layout, chain, subs


def _sensor_ifd(layout: Layout, ifds: list[dict[int, Entry]]) -> dict[int, Entry]:
    """The IFD holding the full-size sensor data (DNG 1.7.1: NewSubfileType 0 and colour
    filter array or linear raw samples); previews, masks and depth maps have other types."""
    for entries in ifds:
        kind = tag_number(entries, _NEW_SUBFILE_TYPE, layout, 0)
        photometric = tag_number(entries, 262, layout, 0)
        if kind == 0 and photometric in (_CFA, _LINEAR_RAW):
            return entries
    raise CorruptInput("the DNG holds no full-size sensor data")


def strip_dng(data: bytes) -> bytes | None:
    """The DNG as one IFD: the sensor data copied byte for byte, its layout tags and the DNG
    tags in `_DNG_KEPT` (the sensor IFD's where both IFDs have one). None where the data
    cannot be copied safely; `CorruptInput` where the IFDs do not parse."""
    layout, chain, subs = _ifds(data)
    first = chain[0]
    sensor = _sensor_ifd(layout, [first, *subs])
    compression = tag_number(sensor, 259, layout, _NONE)
    if compression not in _COPIED:
        return None
    page = copy_page(data, layout, sensor)
    if page is None:
        return None
    if compression == _LOSSY_JPEG and any(jpeg_has_extras(chunk) for chunk in page.chunks):
        return None
    if compression == _JXL and any(chunk[:2] != b"\xff\x0a" for chunk in page.chunks if chunk):
        return None
    kept = {entry.tag: entry for entry in page.entries}
    for source in (sensor, first):  # the sensor IFD's own values first
        for tag, entry in source.items():
            if tag not in kept and (tag in _DNG_KEPT or (tag == 274 and source is first)):
                kept[tag] = entry  # 274: the orientation lives in IFD0
    return write_tiff(layout, [Page(tuple(kept.values()), page.offsets_tag, page.chunks)])


def _cut_short(data: bytes, layout: Layout, sensor: dict[int, Entry]) -> bool:
    """Whether the sensor data's strips or tiles run past the end of the file (LibRaw
    develops what arrived, and the missing rows as black)."""
    tiled = 324 in sensor
    offsets = sensor.get(324 if tiled else 273)
    counts = sensor.get(325 if tiled else 279)
    if offsets is None or counts is None:
        return True
    spans = zip(offsets.numbers(layout), counts.numbers(layout), strict=False)
    return any(offset + count > len(data) for offset, count in spans)


def dng_fields(data: bytes) -> list[MetaField]:
    """What a DNG reveals beyond its picture: IFD0's EXIF-style tags, the EXIF and GPS IFDs,
    the dropped DNG tags and the previews; the tags the rewrite keeps are not listed."""
    layout, chain, subs = _ifds(data)
    first = chain[0]
    exif = Image.Exif()
    exif.load(data)  # Pillow's reader names and words the EXIF-style tags
    for tag in (*_DNG_KEPT, *_DNG_NAMES, _SUB_IFDS):
        exif.pop(tag, None)
    found = exif_fields(exif, ifd1_is_thumbnail=False)
    for tag, (category, name) in _DNG_NAMES.items():
        entry = first.get(tag)
        if entry is not None:
            text = entry.raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
            found.append(
                MetaField(category, name, text if entry.kind == 2 else f"{entry.count} bytes")
            )
    sensor = _sensor_ifd(layout, [first, *subs])
    if _cut_short(data, layout, sensor):
        raise CorruptInput("the DNG is cut short: its sensor data runs past the end of the file")
    pictures = [e for e in (*chain, *subs) if e is not sensor and (273 in e or 324 in e)]
    if pictures:
        found.append(_PREVIEW)
    return found


class DngHandler(FormatHandler):
    name = "DNG"
    extensions = (".dng",)
    pil_formats = ("DNG",)

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:4] in (b"II*\x00", b"MM\x00*")

    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        rawpy = _rawpy()
        try:
            metadata = dng_fields(data)
        except DECODE_ERRORS as exc:
            raise CorruptInput(f"the DNG's tags do not read: {_reason(exc)}") from exc
        rgb = _develop(rawpy, data, max_pixels)
        return Decoded([rgb], self.name, "RGB", metadata=metadata, source=data)

    def strip(self, decoded: Decoded) -> bytes | None:
        try:
            stripped = strip_dng(decoded.source)
        except (CorruptInput, *DECODE_ERRORS):
            return None
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def same_pixels(self, data: bytes, decoded: Decoded) -> bool:
        """Whether LibRaw reads the same sensor data and colour from ``data`` as from the
        source: every sensor value, pattern, levels and matrices."""
        rawpy = _rawpy()
        try:
            return _sensor(rawpy, data) == _sensor(rawpy, decoded.source)
        except (CorruptInput, *DECODE_ERRORS):
            return False

    def cannot_obscure(self, decoded: Decoded) -> str | None:
        return _REFUSED

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        if len(frames) != 1 or not same_array(frames[0], decoded.frames[0]):
            raise UnsupportedFormat(_REFUSED)
        stripped = self.strip(decoded)
        if stripped is None:
            raise EncodeFailed(
                "this DNG's sensor data cannot be copied without its metadata (compressed in a "
                "way veil does not copy, or damaged): export a TIFF and clean that"
            )
        return stripped

    def reread(self, data: bytes, decoded: Decoded) -> None:
        # LibRaw's sizes (sensor, margins, flip) decide the developed picture's: the same
        # sizes as the source's say it develops to the same size, without developing it again.
        rawpy = _rawpy()
        try:
            left = dng_fields(data)
            same_size = _sizes(rawpy, data) == _sizes(rawpy, decoded.source)
        except (CorruptInput, *DECODE_ERRORS) as exc:
            raise VerificationFailed(f"the output does not read back: {exc}") from exc
        if not same_size:
            raise VerificationFailed("the output's sensor data is not the size of the source's")
        if left:
            names = ", ".join(sorted({f.name for f in left}))
            raise VerificationFailed(f"identifying metadata survived encoding: {names}")


def _develop(rawpy: ModuleType, data: bytes, max_pixels: int) -> Pixels:
    """The sensor data developed as LibRaw does by default (camera white balance, upright,
    8 bits), with bilinear demosaicing: faces are found as well in it, and it is faster."""
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            if sizes.width * sizes.height > max_pixels:
                mp, limit = sizes.width * sizes.height / 1e6, max_pixels / 1e6
                raise TooLarge(f"{sizes.width}x{sizes.height} = {mp:.0f} MP exceeds {limit:.0f} MP")
            rgb = raw.postprocess(
                use_camera_wb=True,
                output_bps=8,
                demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR,
            )
    except (rawpy.LibRawError, *DECODE_ERRORS) as exc:
        raise CorruptInput(f"the DNG's sensor data does not develop: {_reason(exc)}") from exc
    pixels: Pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    pixels.flags.writeable = False
    return pixels


def _sizes(rawpy: ModuleType, data: bytes) -> Any:
    """LibRaw's sizes of a DNG (sensor, visible area, margins, flip), read without unpacking
    the sensor data."""
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            return raw.sizes
    except rawpy.LibRawError as exc:
        raise CorruptInput(_reason(exc)) from exc


def _sensor(rawpy: ModuleType, data: bytes) -> tuple[Any, ...]:
    """What LibRaw reads of a DNG's sensor data and colour, comparable with ``==``."""
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            return (
                raw.raw_image_visible.tobytes(),
                raw.raw_pattern.tobytes() if raw.raw_pattern is not None else b"",
                raw.color_desc,
                tuple(raw.black_level_per_channel),
                raw.white_level,
                raw.rgb_xyz_matrix.tobytes(),
                tuple(raw.camera_whitebalance),
                raw.sizes,
            )
    except rawpy.LibRawError as exc:
        raise CorruptInput(_reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
