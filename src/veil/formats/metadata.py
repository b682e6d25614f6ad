"""What a file reveals, in human terms: read from Pillow's view of the container.

Used by ``veil scan`` to explain and by ``veil clean`` to report ``metadata_removed`` and to
verify its own output. Everything found here is identifying or at least not needed by a
viewer; the allowlist of what survives cleaning (colour profile, orientation baked into the
pixels, animation timing, resolution) lives in each format's encoder, not here.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image

from ..fields import (
    DEVICE,
    OTHER,
    PERSON,
    PICTURE,
    PLACE,
    SERIAL,
    TEXT,
    TIME,
    MetaField,
)

# What Pillow raises on a damaged EXIF block or IFD pointer.
_EXIF_ERRORS = (KeyError, ValueError, TypeError, OSError, EOFError, IndexError, struct.error)

# EXIF tag id -> (category, report name). Tags not listed still count, as OTHER.
_EXIF_TAGS: dict[int, tuple[str, str]] = {
    0x010E: (TEXT, "ImageDescription"),
    0x010F: (DEVICE, "Make"),
    0x0110: (DEVICE, "Model"),
    0x0131: (DEVICE, "Software"),
    0x02BC: (OTHER, "XMP"),  # TIFF: the XMP packet as a tag
    0x0132: (TIME, "DateTime"),
    0x013B: (PERSON, "Artist"),
    0x013C: (DEVICE, "HostComputer"),
    0x8298: (PERSON, "Copyright"),
    0x83BB: (PERSON, "IPTC"),  # TIFF: IPTC-NAA record
    0x8649: (PERSON, "IPTC"),  # TIFF: Photoshop image resources, IPTC inside
    0x9003: (TIME, "DateTimeOriginal"),
    0x9004: (TIME, "DateTimeDigitized"),
    0x927C: (OTHER, "MakerNote"),
    0x9286: (TEXT, "UserComment"),
    0x9C9B: (TEXT, "XPTitle"),
    0x9C9C: (TEXT, "XPComment"),
    0x9C9D: (PERSON, "XPAuthor"),
    0x9C9E: (TEXT, "XPKeywords"),
    0x9C9F: (TEXT, "XPSubject"),
    0xA420: (SERIAL, "ImageUniqueID"),
    0xA430: (PERSON, "CameraOwnerName"),
    0xA431: (SERIAL, "BodySerialNumber"),
    0xA432: (DEVICE, "LensSpecification"),
    0xA433: (DEVICE, "LensMake"),
    0xA434: (DEVICE, "LensModel"),
    0xA435: (SERIAL, "LensSerialNumber"),
    0xC62F: (SERIAL, "CameraSerialNumber"),
}
# GeoTIFF keys (OGC GeoTIFF 1.1, section 7): they place a scanned map or aerial photo on Earth.
_GEOTIFF_TAGS = {
    0x830E: "ModelPixelScale",
    0x8482: "ModelTiepoint",
    0x85D8: "ModelTransformation",
    0x87AF: "GeoKeyDirectory",
    0x87B0: "GeoDoubleParams",
    0x87B1: "GeoAsciiParams",
}
_EXIF_TAGS.update({tag: (PLACE, name) for tag, name in _GEOTIFF_TAGS.items()})

_B = ExifTags.Base
# Tags that describe how to lay out and colour the pixels (TIFF 6.0 baseline and extensions,
# the EXIF IFD's format fields) or only point at another IFD; never reported alone. A TIFF
# page carries these in the same IFD as Make or Artist, so they must be known to be judged.
# Text, dates, device and author tags are deliberately absent: they are always reported.
_EXIF_STRUCTURAL = frozenset(
    {
        # layout and compression
        _B.NewSubfileType,
        _B.SubfileType,
        _B.ImageWidth,
        _B.ImageLength,
        _B.BitsPerSample,
        _B.Compression,
        _B.PhotometricInterpretation,
        _B.Thresholding,
        _B.CellWidth,
        _B.CellLength,
        _B.FillOrder,
        _B.StripOffsets,
        _B.Orientation,
        _B.SamplesPerPixel,
        _B.RowsPerStrip,
        _B.StripByteCounts,
        _B.PlanarConfiguration,
        _B.T4Options,
        _B.T6Options,
        _B.Predictor,
        _B.TileWidth,
        _B.TileLength,
        _B.TileOffsets,
        _B.TileByteCounts,
        _B.ExtraSamples,
        _B.SampleFormat,
        _B.PageNumber,
        _B.JPEGTables,
        _B.JPEGProc,
        _B.JpegIFOffset,
        _B.JpegIFByteCount,
        _B.JpegRestartInterval,
        _B.JpegLosslessPredictors,
        _B.JpegPointTransforms,
        _B.JpegQTables,
        _B.JpegDCTables,
        _B.JpegACTables,
        # resolution
        _B.XResolution,
        _B.YResolution,
        _B.ResolutionUnit,
        # sample values and colour
        _B.MinSampleValue,
        _B.MaxSampleValue,
        _B.SMinSampleValue,
        _B.SMaxSampleValue,
        _B.GrayResponseUnit,
        _B.GrayResponseCurve,
        _B.TransferFunction,
        _B.TransferRange,
        _B.WhitePoint,
        _B.PrimaryChromaticities,
        _B.ColorMap,
        _B.HalftoneHints,
        _B.InkSet,
        _B.NumberOfInks,
        _B.DotRange,
        _B.YCbCrCoefficients,
        _B.YCbCrSubSampling,
        _B.YCbCrPositioning,
        _B.ReferenceBlackWhite,
        _B.InterColorProfile,
        _B.Gamma,
        _B.ColorSpace,
        # EXIF IFD format fields
        _B.ExifVersion,
        _B.FlashPixVersion,
        _B.ComponentsConfiguration,
        _B.ExifImageWidth,
        _B.ExifImageHeight,
        # pointers to other IFDs, whose contents are judged on their own
        _B.ExifOffset,
        _B.GPSInfo,
        _B.ExifInteroperabilityOffset,
    }
)


def _text(value: Any, limit: int = 80) -> str:
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
        if value.startswith(("ASCII", "UNICODE")):  # UserComment's 8-byte charset prefix
            value = value[8:]
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _degrees(dms: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(Fraction(x)) if not isinstance(x, float) else x for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    return -value if str(ref).upper().startswith(("S", "W")) else value


def gps_in_words(gps: dict[int, Any]) -> str:
    """Where a GPS IFD puts the picture, e.g. ``52.37290° N, 4.89310° E, 12 m above sea level``."""
    lat = _degrees(gps.get(2), gps.get(1, "N")) if 2 in gps else None
    lon = _degrees(gps.get(4), gps.get(3, "E")) if 4 in gps else None
    if lat is None or lon is None:
        tags = ", ".join(ExifTags.GPSTAGS.get(t, hex(t)) for t in sorted(gps))
        return f"GPS tags without a full position ({tags})"
    words = (
        f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.5f}° {'E' if lon >= 0 else 'W'}"
    )
    if 6 in gps:
        try:
            alt = float(Fraction(gps[6]))
            below = gps.get(5) in (1, b"\x01")
            words += f", {alt:.0f} m {'below' if below else 'above'} sea level"
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    return words


def exif_fields(exif: Image.Exif, ifd1_is_thumbnail: bool = True) -> list[MetaField]:
    """Identifying items of an EXIF block (IFD0, Exif IFD, GPS IFD, thumbnail IFD).

    In an EXIF block (JPEG, PNG, WebP, HEIF, AVIF) IFD1 is the thumbnail; in a TIFF file it
    is the next page, so pass ``ifd1_is_thumbnail=False`` there (TIFF pages that are previews
    are marked by NewSubfileType instead, which the TIFF handler reads per page).
    """
    found: list[MetaField] = []
    ifds: list[dict[int, Any]] = [dict(exif)]
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.Interop):
        try:
            ifds.append(dict(exif.get_ifd(ifd)))
        except _EXIF_ERRORS:  # malformed pointers in odd files
            continue
    for tags in ifds:
        for tag, value in tags.items():
            if tag in _EXIF_STRUCTURAL or isinstance(value, dict):
                continue
            category, name = _EXIF_TAGS.get(tag, (OTHER, ExifTags.TAGS.get(tag, f"Tag{tag:#06x}")))
            if name == "MakerNote":
                found.append(MetaField(DEVICE, "MakerNote", f"maker notes ({len(value)} bytes)"))
                continue
            if not _text(value):
                continue
            found.append(MetaField(category, name, _text(value)))
    try:
        gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except _EXIF_ERRORS:
        gps = {}
    if gps:
        found.append(MetaField(PLACE, "GPS", gps_in_words(gps)))
    if not ifd1_is_thumbnail:
        return found
    try:
        thumb = dict(exif.get_ifd(ExifTags.IFD.IFD1))
    except _EXIF_ERRORS:
        thumb = {}
    if thumb:
        found.append(
            MetaField(PICTURE, "Thumbnail", "EXIF thumbnail (may show the un-obscured original)")
        )
    return found


def orientation_of(im: Image.Image) -> int:
    """The EXIF orientation (2-8) a viewer applies to this image; 1 when absent or invalid."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except (*_EXIF_ERRORS, SyntaxError):
        return 1
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def orientation_exif(orientation: int) -> bytes:
    """A TIFF-structured EXIF block with the orientation tag and nothing else.

    Kept where a container is rewritten without re-encoding, so the picture is still shown
    the right way up (DESIGN: what a viewer needs survives); the tag says nothing about anyone.
    Layout (TIFF 6.0, section 2): big-endian header, one IFD at offset 8 with a single SHORT
    entry, no next IFD.
    """
    entry = struct.pack(">HHIHH", ExifTags.Base.Orientation, 3, 1, orientation, 0)
    return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def _packet_field(key: str, data: Any) -> MetaField:
    size = len(data) if isinstance(data, (bytes, str)) else 0
    if key == "xmp":
        return MetaField(
            OTHER, "XMP", f"XMP packet ({size} bytes): may hold place, people, edit history"
        )
    if key in ("photoshop", "iptc"):
        return MetaField(
            PERSON, "IPTC", f"IPTC/Photoshop block ({size} bytes): captions, names, places"
        )
    if key == "comment":
        return MetaField(TEXT, "Comment", _text(data))
    return MetaField(TEXT, f"Text:{key}", _text(data))


# `info` keys Pillow fills from the container that a viewer needs or that say nothing about
# anyone; every other key is reported (PNG text chunks arrive as arbitrary keys).
_HARMLESS_INFO = {
    "dpi",
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "adobe",
    "adobe_transform",
    "progressive",
    "progression",
    "icc_profile",
    "gamma",
    "srgb",
    "chromaticity",
    "transparency",
    "aspect",
    "loop",
    "duration",
    "disposal",
    "blend",
    "background",
    "version",
    "compression",
    "resolution",
    "default_image",
    "bbox",
    "timestamp",
    "extension",
    "exif",
    "mp",
    "mpoffset",
    "quality",
    "subsampling",
    "interlace",
    "bit_depth",
    "lossless",
    "exif_offset",
    "mode",
    "dpi_x",
    "dpi_y",
    "original_orientation",
    "primary",
    "depth_images",
    "thumbnails",
    "stride",
    "unit",
    "heif",
    "palette",
    "optimize",
    # pillow-heif: colour description (ICC kind, nclx), layout and HDR light levels
    "icc_profile_type",
    "nclx_profile",
    "chroma",
    "tiling",
    "pixel_aspect_ratio",
    "content_light_level",
    "mastering_display_colour_volume",
    "ambient_viewing_environment",
    "nominal_diffuse_white_luminance",
    # pillow-heif secondary items: reported by `_heif_items`, never written
    "aux",
    "metadata",
}


def read_fields(im: Image.Image) -> list[MetaField]:
    """Every identifying item Pillow can see in an opened (not necessarily loaded) image."""
    # Damaged EXIF makes Pillow warn ("Corrupt EXIF data", "tag ... had too many entries")
    # and read what it can; the file is judged by what was read, so the warnings are noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_fields(im)


def _read_fields(im: Image.Image) -> list[MetaField]:
    found: list[MetaField] = []
    try:
        exif = im.getexif()
    except (*_EXIF_ERRORS, SyntaxError):
        exif = None
        found.append(MetaField(OTHER, "EXIF", "EXIF block present but unreadable"))
    if exif is not None:
        found.extend(exif_fields(exif, ifd1_is_thumbnail=im.format != "TIFF"))
    info = im.info
    for key in ("xmp", "photoshop", "iptc", "comment"):
        if info.get(key):
            found.append(_packet_field(key, info[key]))
    if isinstance(info.get("XML:com.adobe.xmp"), str):
        found.append(_packet_field("xmp", info["XML:com.adobe.xmp"]))
    for info_key, value in info.items():
        if not isinstance(info_key, str):
            continue
        key = info_key
        if key in _HARMLESS_INFO or key in (
            "xmp",
            "photoshop",
            "iptc",
            "comment",
            "XML:com.adobe.xmp",
        ):
            continue
        if isinstance(value, (str, bytes)) and value:
            found.append(_packet_field(key, value))
    if info.get("mp") or info.get("mpoffset"):
        found.append(MetaField(PICTURE, "MPF", "secondary images (multi-picture format)"))
    for thumb in info.get("thumbnails") or []:
        size = getattr(thumb, "size", None)  # pillow-heif lists item ids, not images
        found.append(MetaField(PICTURE, "Thumbnail", f"embedded thumbnail {size or ''}".strip()))
        break
    found.extend(_heif_items(info))
    found.extend(_gif_extension(info.get("extension")))
    icc_date = icc_profile_date(info.get("icc_profile"))
    if icc_date:
        found.append(MetaField(TIME, "ICCProfileDate", icc_date))
    found.extend(_jpeg_segments(im))
    return _unique(found)


def _heif_items(info: dict[str | tuple[int, int], Any]) -> list[MetaField]:
    """pillow-heif's secondary items: depth maps and mattes outline the people in the picture."""
    found: list[MetaField] = []
    if info.get("depth_images"):
        found.append(MetaField(PICTURE, "DepthImage", "depth map (outlines the subjects)"))
    if info.get("aux"):
        kinds = ", ".join(str(k) for k in info["aux"])
        found.append(MetaField(PICTURE, "AuxiliaryImage", f"auxiliary images ({kinds})"))
    if info.get("metadata"):
        found.append(
            MetaField(OTHER, "HEIFMetadata", f"{len(info['metadata'])} other metadata item(s)")
        )
    return found


# GIF application extensions a viewer needs: looping (Netscape, AnimExts) and the ICC profile.
_GIF_VIEWER_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _gif_extension(extension: object) -> list[MetaField]:
    """A GIF application extension Pillow noted as ``(identifier, offset)``, e.g. XMP."""
    if not isinstance(extension, tuple) or not extension or not isinstance(extension[0], bytes):
        return []
    app = extension[0][:11]
    if app in _GIF_VIEWER_APPS:
        return []
    if app == b"XMP DataXMP":
        return [MetaField(OTHER, "XMP", "XMP packet in a GIF application extension")]
    name = app.decode("latin-1", "replace")
    return [MetaField(OTHER, "GIFExtension", f"application extension {name!r}")]


# ICC.1:2010 section 7.2: the header's creation date sits at bytes 24-35 and the MD5 profile
# ID at 84-99, computed with the flags (44-47), rendering intent (64-67) and ID zeroed.
_ICC_DATE = slice(24, 36)
_ICC_ID = slice(84, 100)
_ICC_ID_MASKED = (slice(44, 48), slice(64, 68), _ICC_ID)


def icc_profile_date(profile: object) -> str | None:
    """The creation date in an ICC profile header, or None when absent or all zeros."""
    if not isinstance(profile, bytes) or len(profile) < 128 or profile[36:40] != b"acsp":
        return None
    fields = struct.unpack(">6H", profile[_ICC_DATE])
    if not any(fields):
        return None
    return "{:04d}:{:02d}:{:02d} {:02d}:{:02d}:{:02d}".format(*fields)


def neutral_icc(profile: bytes) -> bytes:
    """The profile with its creation date zeroed; colour data untouched, profile ID kept valid.

    The date says nothing about colour; a profile made for one device (a calibrated screen,
    a scanner) can date that device's set-up, so it does not travel with a cleaned picture.
    """
    if icc_profile_date(profile) is None:
        return profile
    out = bytearray(profile)
    out[_ICC_DATE] = bytes(12)
    if any(out[_ICC_ID]):
        masked = bytearray(out)
        for part in _ICC_ID_MASKED:
            masked[part] = bytes(part.stop - part.start)
        out[_ICC_ID] = hashlib.md5(masked, usedforsecurity=False).digest()
    return bytes(out)


def _jpeg_segments(im: Image.Image) -> list[MetaField]:
    """APPn segments Pillow keeps in ``applist`` that are not already reported."""
    found: list[MetaField] = []
    for marker, data in getattr(im, "applist", []):
        if marker == "APP1" and data.startswith(b"Exif\x00"):
            continue  # read through getexif()
        # Pillow also exposes these two as info["xmp"] and info["photoshop"], reported from
        # there; only a segment it did not parse is reported here, so none is listed twice.
        if marker == "APP1" and b"ns.adobe.com/xap" in data[:64]:
            if not im.info.get("xmp"):
                found.append(_packet_field("xmp", data))
        elif marker == "APP13":
            if not im.info.get("photoshop"):
                found.append(_packet_field("photoshop", data))
        elif marker in ("APP0", "APP2", "APP14"):
            continue  # JFIF, ICC/MPF (handled via info), Adobe colour transform
        else:
            found.append(MetaField(OTHER, marker, f"{marker} segment ({len(data)} bytes)"))
    return found


def _unique(found: list[MetaField]) -> list[MetaField]:
    seen: set[tuple[str, str]] = set()
    out: list[MetaField] = []
    for f in found:
        if (f.name, f.value) not in seen:
            seen.add((f.name, f.value))
            out.append(f)
    return out
