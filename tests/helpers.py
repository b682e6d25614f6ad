"""Builders and measures shared by the tests: images with faces, metadata blocks, oracles.

Everything is made at test time in memory or in ``tmp_path``; no binary fixture is committed.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, ImageOps, PngImagePlugin
from skimage import data as skdata
from skimage.metrics import structural_similarity

Array = npt.NDArray[np.uint8]

# Where CenterFace puts the astronaut's face (x1, y1, x2, y2) is about (181, 58, 270, 178);
# this is an inner box, all face, used as ground truth so the tests do not trust the detector.
ASTRONAUT_FACE = (190, 70, 260, 170)
# Lat/lon planted in test EXIF (Amsterdam, Dam square) and how `veil scan` words it.
GPS_LAT, GPS_LON = 52.3731, 4.8926
SERIAL = "SN-0042-VEIL-TEST"
OWNER = "Jane Q. Photographer"
ARTIST = "Artist Person"
MAKE, MODEL = "VeilCam", "Spy 3000"
COMMENT = "secret comment: taken at Jane's house"
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">'
    b"<dc:creator><rdf:Seq><rdf:li>Jane Q. Photographer</rdf:li></rdf:Seq></dc:creator>"
    b"<photoshop:City>Amsterdam</photoshop:City>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def xmp_packet(marker: bytes) -> bytes:
    """An XMP packet whose dc:creator is ``marker``, to find again in bytes (or not)."""
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator><rdf:Seq><rdf:li>'
        + marker
        + b"</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


# -- pictures ------------------------------------------------------------------------------
@cache
def astronaut() -> Array:
    """skimage's astronaut, 512x512 RGB, one face at `ASTRONAUT_FACE`."""
    pixels: Array = skdata.astronaut()
    pixels.setflags(write=False)
    return pixels


def backdrop(height: int, width: int) -> Array:
    """A smooth, faceless background (gradients), easy on lossy codecs."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack(
        [40 + 150 * x / max(width - 1, 1), 60 + 120 * y / max(height - 1, 1), 0 * x + 150], axis=2
    )
    return rgb.round().astype(np.uint8)


def textured(height: int, width: int, seed: int = 1) -> Array:
    """A faceless gradient with fixed grain: re-encoding it as JPEG visibly changes pixels."""
    grain = np.random.default_rng(seed).normal(0.0, 25.0, (height, width, 3))
    return np.clip(backdrop(height, width) + grain, 0, 255).astype(np.uint8)


def scene() -> Array:
    """768x512 (wider than tall): the astronaut on the left, a faceless gradient on the right."""
    canvas = backdrop(512, 768)
    canvas[:, :512] = astronaut()
    return canvas


# Pixels of `scene()` far from any face: the gradient strip on the right.
FAR_FROM_FACE = (560, 0, 768, 512)


def crop(pixels: npt.NDArray[Any], box: tuple[int, int, int, int]) -> npt.NDArray[Any]:
    x1, y1, x2, y2 = box
    return pixels[y1:y2, x1:x2]


def mean_abs_diff(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def grey(pixels: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    rgb = pixels[..., :3].astype(np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def ssim_grey(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """SSIM of the grey levels (as in METRICS.md) of two same-shaped patches."""
    ga, gb = grey(a), grey(b)
    side = min(ga.shape[0], ga.shape[1])
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(ga, gb, data_range=255.0, win_size=window))


def central(box: tuple[int, int, int, int], share: float = 0.6) -> tuple[int, int, int, int]:
    """The central ``share`` of a box (METRICS.md judges obscuring over the central 60%)."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * (1 - share) / 2, (y2 - y1) * (1 - share) / 2
    return (round(x1 + mx), round(y1 + my), round(x2 - mx), round(y2 - my))


def decoded(path: Path, mode: str = "RGB", frame: int = 0) -> Array:
    """Pixels of a file as displayed (EXIF orientation applied), converted to ``mode``."""
    with Image.open(path) as im:
        im.seek(frame)
        return np.asarray(ImageOps.exif_transpose(im).convert(mode))


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# -- EXIF built by hand (Pillow cannot write an IFD1 thumbnail) -----------------------------
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 1, 2, 3, 4, 5, 7, 10
Entry = tuple[int, int, Any]  # tag, type, value


def _encode_value(kind: int, value: Any) -> tuple[int, bytes]:
    if kind == _ASCII:
        raw = value.encode() + b"\x00"
        return len(raw), raw
    if kind in (_BYTE, _UNDEFINED):
        return len(value), bytes(value)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if kind == _SHORT:
        return len(values), b"".join(struct.pack("<H", v) for v in values)
    if kind == _LONG:
        return len(values), b"".join(struct.pack("<I", v) for v in values)
    if kind in (_RATIONAL, _SRATIONAL):
        code = "<II" if kind == _RATIONAL else "<ii"
        return len(values), b"".join(struct.pack(code, n, d) for n, d in values)
    raise ValueError(kind)


def _ifd(entries: list[Entry], offset: int, next_ifd: int = 0) -> bytes:
    """One little-endian IFD placed at ``offset``, its out-of-line values right after it."""
    entries = sorted(entries, key=lambda e: e[0])
    table = struct.pack("<H", len(entries))
    heap = b""
    heap_at = offset + 2 + 12 * len(entries) + 4
    for tag, kind, value in entries:
        count, raw = _encode_value(kind, value)
        if len(raw) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHII", tag, kind, count, heap_at + len(heap))
            heap += raw + (b"\x00" if len(raw) % 2 else b"")
    return table + struct.pack("<I", next_ifd) + heap


def _dms(value: float) -> list[tuple[int, int]]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 10000)
    return [(degrees, 1), (minutes, 1), (seconds, 10000)]


MAKER_SERIAL = "MN-SERIAL-7731"


def maker_note() -> bytes:
    """A Nikon type-3 maker note (own TIFF header, so offsets are self-contained) holding a
    serial number; exiftool decodes it, so the oracle can see whether it survived."""
    entries: list[Entry] = [(0x0001, _UNDEFINED, b"0210"), (0x001D, _ASCII, MAKER_SERIAL)]
    return b"Nikon\x00\x02\x10\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + _ifd(entries, 8)


def thumbnail_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut()).resize((64, 64)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def exif_block(
    orientation: int | None = None,
    *,
    identifying: bool = True,
    thumbnail: bool = True,
    header: bool = True,
) -> bytes:
    """A TIFF-structured EXIF block (with ``Exif\\0\\0`` when ``header``).

    With ``identifying``: Make, Model, Artist, DateTime in IFD0; BodySerialNumber,
    CameraOwnerName, a MakerNote and DateTimeOriginal in the Exif IFD; a full GPS position;
    and (with ``thumbnail``) an IFD1 carrying a JPEG thumbnail of the face.
    """
    ifd0: list[Entry] = [(0x011A, _RATIONAL, [(72, 1)]), (0x011B, _RATIONAL, [(72, 1)])]
    if orientation is not None:
        ifd0.append((0x0112, _SHORT, orientation))
    exif_ifd: list[Entry] = [(0x9000, _UNDEFINED, b"0232")]
    gps_ifd: list[Entry] = []
    if identifying:
        ifd0 += [
            (0x010F, _ASCII, MAKE),
            (0x0110, _ASCII, MODEL),
            (0x013B, _ASCII, ARTIST),
            (0x0132, _ASCII, "2021:06:15 13:45:10"),
        ]
        exif_ifd += [
            (0xA431, _ASCII, SERIAL),
            (0xA430, _ASCII, OWNER),
            (0x927C, _UNDEFINED, maker_note()),
            (0x9003, _ASCII, "2021:06:15 13:45:10"),
        ]
        gps_ifd = [
            (0x0000, _BYTE, b"\x02\x03\x00\x00"),  # GPSVersionID
            (0x0001, _ASCII, "N"),
            (0x0002, _RATIONAL, _dms(GPS_LAT)),
            (0x0003, _ASCII, "E"),
            (0x0004, _RATIONAL, _dms(GPS_LON)),
        ]
    thumb = thumbnail_jpeg() if identifying and thumbnail else b""

    def build(offsets: dict[str, int]) -> tuple[bytes, dict[str, int]]:
        pointers = list(ifd0)
        pointers.append((0x8769, _LONG, offsets.get("exif", 0)))
        if gps_ifd:
            pointers.append((0x8825, _LONG, offsets.get("gps", 0)))
        at = 8
        found: dict[str, int] = {}
        blob0 = _ifd(pointers, at, offsets.get("ifd1", 0) if thumb else 0)
        at += len(blob0)
        found["exif"] = at
        blob_exif = _ifd(exif_ifd, at)
        at += len(blob_exif)
        blob_gps = b""
        if gps_ifd:
            found["gps"] = at
            blob_gps = _ifd(gps_ifd, at)
            at += len(blob_gps)
        blob1 = b""
        if thumb:
            found["ifd1"] = at
            ifd1_entries: list[Entry] = [
                (0x0103, _SHORT, 6),
                (0x0201, _LONG, offsets.get("thumb", 0)),
                (0x0202, _LONG, len(thumb)),
            ]
            blob1 = _ifd(ifd1_entries, at)
            at += len(blob1)
            found["thumb"] = at
        body = b"II*\x00" + struct.pack("<I", 8) + blob0 + blob_exif + blob_gps + blob1 + thumb
        return body, found

    _, offsets = build({})
    body, again = build(offsets)
    assert again == offsets
    return (b"Exif\x00\x00" + body) if header else body


DNG_ORIGINAL_NAME = "IMG_0042.CR2"


def mosaic(rgb: Array, white: int = 4095) -> npt.NDArray[np.uint16]:
    """``rgb`` as a camera sensor behind an RGGB colour filter sees it: one linear sample a
    pixel, up to ``white``."""
    linear = (rgb.astype(np.float64) / 255) ** 2.2 * white
    raw = np.empty(rgb.shape[:2], np.uint16)
    raw[0::2, 0::2] = linear[0::2, 0::2, 0]
    raw[0::2, 1::2] = linear[0::2, 1::2, 1]
    raw[1::2, 0::2] = linear[1::2, 0::2, 1]
    raw[1::2, 1::2] = linear[1::2, 1::2, 2]
    return raw


def dng_file(rgb: Array, *, in_subifd: bool = True, orientation: int = 1) -> bytes:
    """A little-endian DNG 1.4 of ``rgb``: uncompressed 12-bit RGGB sensor data with identity
    colour calibration (so LibRaw develops it back to about ``rgb``), as a camera writes it.

    It carries what a phone's or converter's DNG does: Make, Model, Artist and a date in
    IFD0, a camera serial, the maker's private data, the raw file's unique id and original
    name, XMP naming the author, an EXIF IFD (date, body serial, owner) and a GPS position.
    With ``in_subifd`` the sensor data lies in a SubIFD and IFD0 is a 32x32 RGB preview (the
    usual layout); otherwise IFD0 holds the sensor data itself.
    """
    raw = mosaic(rgb)
    height, width = raw.shape
    sensor_data = raw.astype("<u2").tobytes()
    preview = np.asarray(Image.fromarray(rgb).resize((32, 32))).tobytes()
    one, zero = (1, 1), (0, 1)
    describing: list[Entry] = [
        (0x010F, _ASCII, MAKE),
        (0x0110, _ASCII, MODEL),
        (0x013B, _ASCII, ARTIST),
        (0x0132, _ASCII, "2021:06:15 13:45:10"),
        (0x0112, _SHORT, orientation),
        (0x02BC, _BYTE, XMP),
        (50706, _BYTE, b"\x01\x04\x00\x00"),  # DNGVersion
        (50708, _ASCII, "VeilCam Spy"),  # UniqueCameraModel
        (50721, _SRATIONAL, [one, zero, zero, zero, one, zero, zero, zero, one]),  # ColorMatrix1
        (50728, _RATIONAL, [one, one, one]),  # AsShotNeutral
        (50778, _SHORT, 21),  # CalibrationIlluminant1: D65
        (50735, _ASCII, SERIAL),  # CameraSerialNumber
        (50740, _BYTE, b"Adobe\x00MakN" + MAKER_SERIAL.encode()),  # DNGPrivateData
        (50781, _BYTE, bytes(range(1, 17))),  # RawDataUniqueID
        (50827, _ASCII, DNG_ORIGINAL_NAME),  # OriginalRawFileName
    ]

    def sensor(offsets: dict[str, int]) -> list[Entry]:
        return [
            (0x00FE, _LONG, 0),  # NewSubfileType: the full-size picture
            (0x0100, _LONG, width),
            (0x0101, _LONG, height),
            (0x0102, _SHORT, 16),
            (0x0103, _SHORT, 1),
            (0x0106, _SHORT, 32803),  # colour filter array
            (0x0111, _LONG, offsets.get("data", 0)),
            (0x0115, _SHORT, 1),
            (0x0116, _LONG, height),
            (0x0117, _LONG, len(sensor_data)),
            (33421, _SHORT, [2, 2]),  # CFARepeatPatternDim
            (33422, _BYTE, b"\x00\x01\x01\x02"),  # CFAPattern: RGGB
            (50714, _LONG, 0),  # BlackLevel
            (50717, _LONG, 4095),  # WhiteLevel
        ]

    def build(offsets: dict[str, int]) -> tuple[bytes, dict[str, int]]:
        pointers: list[Entry] = [
            (0x8769, _LONG, offsets.get("exif", 0)),
            (0x8825, _LONG, offsets.get("gps", 0)),
        ]
        if in_subifd:
            first = [
                (0x00FE, _LONG, 1),  # a reduced-resolution preview
                (0x0100, _LONG, 32),
                (0x0101, _LONG, 32),
                (0x0102, _SHORT, [8, 8, 8]),
                (0x0103, _SHORT, 1),
                (0x0106, _SHORT, 2),
                (0x0111, _LONG, offsets.get("preview", 0)),
                (0x0115, _SHORT, 3),
                (0x0116, _LONG, 32),
                (0x0117, _LONG, len(preview)),
                (0x014A, _LONG, offsets.get("sensor", 0)),  # SubIFDs
            ]
        else:
            first = sensor(offsets)
        found: dict[str, int] = {}
        blob0 = _ifd([*first, *describing, *pointers], 8)
        at = 8 + len(blob0)
        found["exif"] = at
        exif_entries: list[Entry] = [
            (0x9003, _ASCII, "2021:06:15 13:45:10"),
            (0xA430, _ASCII, OWNER),
            (0xA431, _ASCII, SERIAL),
        ]
        blob_exif = _ifd(exif_entries, at)
        at += len(blob_exif)
        found["gps"] = at
        gps_entries: list[Entry] = [
            (0x0001, _ASCII, "N"),
            (0x0002, _RATIONAL, _dms(GPS_LAT)),
            (0x0003, _ASCII, "E"),
            (0x0004, _RATIONAL, _dms(GPS_LON)),
        ]
        blob_gps = _ifd(gps_entries, at)
        at += len(blob_gps)
        blob_sensor = b""
        if in_subifd:
            found["sensor"] = at
            blob_sensor = _ifd(sensor(offsets), at)
            at += len(blob_sensor)
            found["preview"] = at
            at += len(preview)
        found["data"] = at
        tail = (preview if in_subifd else b"") + sensor_data
        header = b"II*\x00" + struct.pack("<I", 8)
        return header + blob0 + blob_exif + blob_gps + blob_sensor + tail, found

    _, offsets = build({})
    body, again = build(offsets)
    assert again == offsets
    return body


def iptc_block() -> bytes:
    """An APP13 Photoshop 3.0 payload holding an IPTC IIM record (by-line, city, caption)."""

    def dataset(number: int, text: str) -> bytes:
        raw = text.encode()
        return b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(raw)) + raw

    iim = dataset(80, OWNER) + dataset(90, "Amsterdam") + dataset(120, "caption naming people")
    if len(iim) % 2:
        iim += b"\x00"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim))
    return b"Photoshop 3.0\x00" + resource + iim


def jpeg_with_segments(jpeg: bytes, segments: Iterable[tuple[int, bytes]]) -> bytes:
    """``jpeg`` with extra marker segments (e.g. 0xED APP13, 0xFE COM) right after SOI/APP0."""
    assert jpeg[:2] == b"\xff\xd8"
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # keep JFIF first
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    extra = b"".join(
        b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload
        for marker, payload in segments
    )
    return jpeg[:at] + extra + jpeg[at:]


# -- saving pictures in each format --------------------------------------------------------
@dataclass(frozen=True)
class Fmt:
    """How to write a test picture in one format, and what to expect back."""

    id: str
    ext: str
    pil_format: str
    mode: str
    lossless: bool
    save: Callable[[Image.Image, Path], None]
    #: Mean absolute difference allowed far from faces (lossy formats re-encode).
    far_tolerance: float = 0.0


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if mode == "P":
        return im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    if mode == "RGBA":
        rgba = im.convert("RGBA")
        alpha = np.full((im.height, im.width), 255, np.uint8)
        alpha[-40:, -60:] = 0  # a transparent corner, far from the face
        alpha[-40:, -120:-60] = 128
        rgba.putalpha(Image.fromarray(alpha))
        return rgba
    return im.convert(mode)


def _saver(fmt: str, mode: str, **options: Any) -> Callable[[Image.Image, Path], None]:
    def save(im: Image.Image, path: Path) -> None:
        _to_mode(im, mode).save(path, fmt, **options)

    return save


FORMATS: list[Fmt] = [
    Fmt("jpeg", ".jpg", "JPEG", "RGB", False, _saver("JPEG", "RGB", quality=92), 4.0),
    Fmt("png-rgb", ".png", "PNG", "RGB", True, _saver("PNG", "RGB")),
    Fmt("png-rgba", ".png", "PNG", "RGBA", True, _saver("PNG", "RGBA")),
    Fmt("png-l", ".png", "PNG", "L", True, _saver("PNG", "L")),
    Fmt("png-p", ".png", "PNG", "P", True, _saver("PNG", "P")),
    Fmt("webp-lossy", ".webp", "WEBP", "RGB", False, _saver("WEBP", "RGB", quality=90), 4.0),
    Fmt("webp-lossless", ".webp", "WEBP", "RGBA", True, _saver("WEBP", "RGBA", lossless=True)),
    Fmt("tiff", ".tif", "TIFF", "RGB", True, _saver("TIFF", "RGB", compression="tiff_lzw")),
    Fmt("heic", ".heic", "HEIF", "RGB", False, _saver("HEIF", "RGB", quality=90), 4.0),
    Fmt("avif", ".avif", "AVIF", "RGB", False, _saver("AVIF", "RGB", quality=90), 4.0),
    Fmt("bmp", ".bmp", "BMP", "RGB", True, _saver("BMP", "RGB")),
    Fmt("ppm", ".ppm", "PPM", "RGB", True, _saver("PPM", "RGB")),
    Fmt("pgm", ".pgm", "PPM", "L", True, _saver("PPM", "L")),
    Fmt("jxl", ".jxl", "JXL", "RGB", False, _saver("JXL", "RGB"), 4.0),
]
FORMAT_IDS = [f.id for f in FORMATS]


def save_png_with_text(im: Image.Image, path: Path, **options: Any) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", OWNER)
    info.add_text("Comment", COMMENT)
    info.add_text("Location", "52.3731 N 4.8926 E", zip=True)  # zTXt
    info.add_itxt("Description", "Jane at home", lang="en", tkey="Beschreibung")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    im.save(path, "PNG", pnginfo=info, **options)


# -- exiftool as an independent oracle ------------------------------------------------------
def exiftool_path() -> str | None:
    return shutil.which("exiftool")


def exiftool_read(*paths: Path) -> list[dict[str, Any]]:
    """``exiftool -j -G0:1 -a -n -ee``: every tag, keyed ``Family0:Family1:Tag``.

    -G0:1 (rather than -G1) also names the family-0 group, so maker notes read as
    ``MakerNotes:<Maker>:...`` whatever the camera maker.
    """
    tool = exiftool_path()
    assert tool is not None
    proc = subprocess.run(
        [tool, "-j", "-G0:1", "-a", "-n", "-ee", "--", *map(str, paths)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if not proc.stdout.strip():
        return [{"SourceFile": str(p)} for p in paths]
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return rows


# METRICS.md, "3. Metadata": what counts as identifying.
_IDENTIFYING_GROUPS = {"MakerNotes", "XMP", "IPTC", "Photoshop"}
_IDENTIFYING_NAMES = re.compile(
    r"^(GPS.*|.*Location.*|City|Country|.*Serial.*|Artist|Creator|Owner.*|.*OwnerName|Author|"
    r"By-line|Copyright|Rights|Credit|Contact.*|UserComment|ImageDescription|Caption.*|"
    r"Keywords|PersonInImage|Region.*|Make|Model|Lens(Make|Model|Info|ID)|Software|"
    r"HostComputer|ImageUniqueID|DocumentID|InstanceID|ContentIdentifier|.*UUID|History.*|"
    r"Thumbnail.*|PreviewImage|PreviewTIFF|PreviewPICT|JpgFromRaw|OtherImage|Comment|"
    r"(Description|Title)(-[\w-]+)?|MakerNote.*)$"
)
_DATE = re.compile(r"\d{4}[:-]\d\d[:-]\d\d")
# Groups about exiftool itself or the colour profile (kept on purpose: METRICS.md, fidelity).
_NEUTRAL_GROUPS = {"ExifTool", "ICC_Profile"}


def identifying_tags(row: dict[str, Any]) -> list[str]:
    """Keys of an exiftool row that METRICS.md counts as identifying (ICC profile excluded)."""
    found = []
    for key, value in row.items():
        parts = key.split(":")
        if len(parts) == 2:  # exiftool writes "G:Tag" when family 0 and 1 agree
            parts.insert(1, parts[0])
        if len(parts) != 3:
            continue
        group0, group1, name = parts
        if group0 in _NEUTRAL_GROUPS or (group0, group1) == ("File", "System"):
            continue
        named = group0 in _IDENTIFYING_GROUPS or group1 == "GPS" or _IDENTIFYING_NAMES.match(name)
        dated = isinstance(value, str) and _DATE.search(value) and re.search(r"[1-9]", value)
        if named or dated:
            found.append(key)
    return found


def exiftool_names(row: dict[str, Any]) -> set[str]:
    """Tag names of an exiftool row without their groups."""
    return {key.rsplit(":", 1)[-1] for key in row if ":" in key}


def file_hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(root: Path) -> list[Path]:
    """Temporary files veil might have left behind."""
    return sorted(p for p in root.rglob("*") if p.name.endswith(".veil-tmp"))


#: Statuses of an input whose output was written: ``unchanged`` when the output is byte for
#: byte the input (no face, nothing to strip), which plain test images often are.
WRITTEN = ("cleaned", "unchanged")


# -- hostile files --------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb() -> bytes:
    """A 100-byte PNG whose header declares 20000x20000 RGB pixels (1.2 GB decoded)."""
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


@dataclass
class CliRun:
    """What an in-process ``veil`` run (the ``cli`` fixture) returned and printed."""

    code: int
    out: str
    err: str


def read_report(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a report; each line must parse on its own."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- processes (Linux /proc), for the tests that kill veil ------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (dead, not yet reaped)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] != "Z":
            parents[int(entry.name)] = stat[1]
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    return sorted(p for p in descendants(pid) if (_proc_stat(p) or ("", 0))[1] == pid)


def cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def make_shards(
    root: Path, shards: int, per: int, side: int = 256, fields: dict[str, Any] | None = None
) -> None:
    """WebDataset tar shards of faceless ``side``-px JPEGs, each with identifying EXIF and a
    JSON sidecar (``{"n": index}`` plus ``fields``)."""
    root.mkdir(parents=True)
    for s in range(shards):
        with tarfile.open(root / f"{s:06d}.tar", "w") as tar:
            for j in range(per):
                i = s * per + j
                image = io.BytesIO()
                Image.fromarray(textured(side, side, seed=i)).save(
                    image, "JPEG", quality=90, exif=exif_block()
                )
                for name, data in (
                    (f"{i:06d}.jpg", image.getvalue()),
                    (f"{i:06d}.json", json.dumps({"n": i, **(fields or {})}).encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


# -- plates and text -----------------------------------------------------------------------
PLATE_TEXT = "BA 302 OZ"
SIGN_TEXT = "Main Street"
Box = tuple[int, int, int, int]


def plate_scene(height: int = 480, width: int = 640) -> tuple[Array, Box, Box]:
    """A faceless street-like picture holding an EU-style licence plate (white, black border,
    blue band, black characters) and a street sign in mixed case; returns the picture and the
    boxes (x1, y1, x2, y2) of the plate and of the sign."""
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(backdrop(height, width))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=34)
    plate: Box = (200, 300, 420, 350)
    draw.rectangle(plate, fill="white", outline="black", width=3)
    draw.rectangle((plate[0] + 3, plate[1] + 3, plate[0] + 22, plate[3] - 3), fill=(0, 51, 153))
    draw.text((plate[0] + 32, plate[1] + 5), PLATE_TEXT, fill="black", font=font)
    sign: Box = (40, 40, 280, 90)
    draw.rectangle(sign, fill=(250, 240, 200))
    draw.text((sign[0] + 12, sign[1] + 5), SIGN_TEXT, fill=(20, 20, 90), font=font)
    return np.asarray(image), plate, sign


def us_plate_scene(scale: float = 1.0) -> tuple[Array, Box]:
    """A US-style plate (twice as wide as tall; characters half its height, the state's name
    above them and a web address below) on a faceless background; the picture and the
    plate's box. The characters' own box covers under 70% of such a plate."""
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(backdrop(480, 640))
    draw = ImageDraw.Draw(image)
    width, height, x, y = int(240 * scale), int(120 * scale), 200, 250
    plate: Box = (x, y, x + width, y + height)
    draw.rounded_rectangle(plate, radius=int(8 * scale), fill=(245, 245, 240), outline=(40, 40, 40),
                           width=max(1, int(3 * scale)))  # fmt: skip
    big, small = (ImageFont.load_default(size=int(s * scale)) for s in (56, 20))
    for text, font, top, colour in (
        ("7ABC123", big, 0.28, (20, 30, 110)),
        ("California", small, 0.06, (190, 20, 20)),
        ("dmv.ca.gov", small, 0.8, (20, 30, 110)),
    ):
        left = x + (width - draw.textlength(text, font=font)) / 2
        draw.text((left, y + height * top), text, fill=colour, font=font)
    return np.asarray(image), plate
