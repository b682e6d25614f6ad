"""What a file reveals, in human terms: read from Pillow's view of the container.

Used by ``veil scan`` to explain and by ``veil clean`` to report ``metadata_removed`` and to
verify its own output. Everything found here is identifying or at least not needed by a
viewer; the allowlist of what survives cleaning (colour profile, orientation baked into the
pixels, animation timing, resolution) lives in each format's encoder, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image

# Categories shown by `veil scan`, in the order a person cares about them.
PLACE, PERSON, DEVICE, SERIAL, TIME, PICTURE, TEXT, OTHER = (
    "place",
    "person",
    "device",
    "serial",
    "time",
    "embedded picture",
    "text",
    "other",
)
CATEGORIES = (PLACE, PERSON, DEVICE, SERIAL, TIME, PICTURE, TEXT, OTHER)


@dataclass(frozen=True)
class MetaField:
    """One identifying item: ``name`` is stable (it goes into reports), ``value`` is for people."""

    category: str
    name: str
    value: str


# EXIF tag id -> (category, report name). Tags not listed still count, as OTHER.
_EXIF_TAGS: dict[int, tuple[str, str]] = {
    0x010E: (TEXT, "ImageDescription"),
    0x010F: (DEVICE, "Make"),
    0x0110: (DEVICE, "Model"),
    0x0131: (DEVICE, "Software"),
    0x0132: (TIME, "DateTime"),
    0x013B: (PERSON, "Artist"),
    0x013C: (DEVICE, "HostComputer"),
    0x8298: (PERSON, "Copyright"),
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
# Structural EXIF tags a viewer may need or that only point elsewhere; never reported alone.
_EXIF_STRUCTURAL = {
    0x0100,
    0x0101,
    0x0102,
    0x0103,
    0x0106,
    0x0111,
    0x0112,
    0x0115,
    0x0116,
    0x0117,
    0x011A,
    0x011B,
    0x011C,
    0x0128,
    0x0201,
    0x0202,
    0x0211,
    0x0212,
    0x0213,
    0x0214,
    0x8769,
    0x8825,
    0xA005,
    0x8773,
    0xA001,
    0xA002,
    0xA003,
    0x9000,
    0xA000,
    0x9101,
}


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


def exif_fields(exif: Image.Exif) -> list[MetaField]:
    """Identifying items of an EXIF block (IFD0, Exif IFD, GPS IFD, thumbnail IFD)."""
    found: list[MetaField] = []
    ifds: list[dict[int, Any]] = [dict(exif)]
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.Interop):
        try:
            ifds.append(dict(exif.get_ifd(ifd)))
        except (KeyError, ValueError, TypeError, OSError):  # malformed pointers in odd files
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
    except (KeyError, ValueError, TypeError, OSError):
        gps = {}
    if gps:
        found.append(MetaField(PLACE, "GPS", gps_in_words(gps)))
    try:
        thumb = dict(exif.get_ifd(ExifTags.IFD.IFD1))
    except (KeyError, ValueError, TypeError, OSError):
        thumb = {}
    if thumb:
        found.append(
            MetaField(PICTURE, "Thumbnail", "EXIF thumbnail (may show the un-obscured original)")
        )
    return found


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
}


def read_fields(im: Image.Image) -> list[MetaField]:
    """Every identifying item Pillow can see in an opened (not necessarily loaded) image."""
    found: list[MetaField] = []
    try:
        exif = im.getexif()
    except (OSError, ValueError, TypeError, SyntaxError):
        exif = None
        found.append(MetaField(OTHER, "EXIF", "EXIF block present but unreadable"))
    if exif is not None:
        found.extend(exif_fields(exif))
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
        found.append(
            MetaField(PICTURE, "Thumbnail", f"embedded thumbnail {getattr(thumb, 'size', '')}")
        )
        break
    found.extend(_jpeg_segments(im))
    return _unique(found)


def _jpeg_segments(im: Image.Image) -> list[MetaField]:
    """APPn segments Pillow keeps in ``applist`` that are not already reported."""
    found: list[MetaField] = []
    for marker, data in getattr(im, "applist", []):
        if marker == "APP1" and data.startswith(b"Exif\x00"):
            continue  # read through getexif()
        if marker == "APP1" and b"ns.adobe.com/xap" in data[:64]:
            found.append(_packet_field("xmp", data))
        elif marker == "APP13":
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
