"""The ``made`` corpus of benchmarks/metadata.py: files the benchmark makes itself, each with
identifying metadata planted in it, for the containers the real camera corpora hold no real
sample of (DNG, JPEG XL, WMV and WMA, PNM, animated AVIF, 16-bit TIFF and PNG, SVG) and for content
that lies about its extension (a HEIF photo and a PNG, each named ``.jpg``).

They are not camera files: each is as small as will do (256x192, a faceless textured gradient
from ``tests/helpers.textured``) and carries what its builder planted (a name, a serial, an
owner, a GPS position, a date), so the tables say how each tool treats the container's
metadata, not how common any of it is in the wild. `MADE` lists each file with the container
it really is and what was planted, for the report.
"""

from __future__ import annotations

import base64
import io
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
from helpers import OWNER, SERIAL, XMP, dng_file, exif_block, textured  # noqa: E402

CORPUS = "made"
HEIGHT, WIDTH = 192, 256
PERSON = "Jane Doe"
#: A date in the tags, as the oracle counts dates (a day a person was somewhere).
WHEN = "2021-06-15T13:45:10Z"


@dataclass(frozen=True)
class Made:
    """One made file: its name in the corpus, what it really is, and what it carries."""

    name: str
    container: str
    planted: str
    build: Callable[[Path], None]


def _picture(seed: int = 1) -> np.ndarray:
    return textured(HEIGHT, WIDTH, seed)


def _exif() -> bytes:
    """EXIF with Make, Model, Artist, body serial, owner, a maker note, dates, a GPS position
    and a thumbnail (tests/helpers.exif_block), ``Exif\\0\\0`` first."""
    return exif_block()


# -- DNG -------------------------------------------------------------------------------------
def _dng(in_subifd: bool, orientation: int) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(dng_file(_picture(), in_subifd=in_subifd, orientation=orientation))

    return build


# -- JPEG XL ---------------------------------------------------------------------------------
_JXL_SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def _box(kind: bytes, body: bytes) -> bytes:
    """An ISO BMFF box (ISO/IEC 18181-2: the JPEG XL container is one)."""
    return (len(body) + 8).to_bytes(4, "big") + kind + body


def _jxl(path: Path) -> None:
    """A JPEG XL container as a phone or an editor writes it: EXIF (after its 4-byte offset
    to the TIFF header), XMP naming the author, a JUMBF (C2PA) box, then the codestream."""
    import imagecodecs

    codestream = bytes(imagecodecs.jpegxl_encode(_picture(), lossless=True))
    tiff = _exif().removeprefix(b"Exif\x00\x00")
    path.write_bytes(
        _JXL_SIGNATURE
        + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
        + _box(b"Exif", bytes(4) + tiff)
        + _box(b"xml ", XMP)
        + _box(b"jumb", f"c2pa: edited by {PERSON}".encode())
        + _box(b"jxlc", codestream)
    )


# -- ASF: WMV and WMA ------------------------------------------------------------------------
_ASF_TAGS = {
    "title": f"Holiday with {PERSON}",
    "author": PERSON,
    "copyright": f"(c) {PERSON}",
    "comment": "filmed at Jane's house",
    "creation_time": WHEN,
}


def _asf(video: bool) -> Callable[[Path], None]:
    """One second of WMV2 video (8 fps) and WMA2 sound, or the sound alone, in an ASF file
    tagged by FFmpeg's muxer: Content Description (title, author, copyright, comment) and
    the File Properties creation date."""

    def build(path: Path) -> None:
        import av

        rate, fps = 16_000, 8
        with av.open(str(path), "w", format="asf") as out:
            out.metadata.update(_ASF_TAGS)
            picture = None
            if video:
                picture = out.add_stream("wmv2", rate=fps)
                picture.width, picture.height, picture.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            sound = out.add_stream("wmav2", rate=rate)
            sound.layout, sound.bit_rate = "mono", 32_000
            if picture is not None:
                for index in range(fps):
                    frame = av.VideoFrame.from_ndarray(_picture(index + 1), format="rgb24")
                    frame.pts, frame.time_base = index, Fraction(1, fps)
                    out.mux(picture.encode(frame))
                out.mux(picture.encode())
            t = np.arange(rate, dtype=np.float32) / rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            samples = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            samples.sample_rate, samples.pts = rate, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode())

    return build


# -- PNM -------------------------------------------------------------------------------------
def _pnm(grey: bool) -> Callable[[Path], None]:
    """Binary PPM (P6) or PGM (P5) whose header comments name a person and a place, as
    scanners and converters write them (Netpbm allows ``#`` comments in the header)."""

    def build(path: Path) -> None:
        rgb = _picture()
        pixels = rgb.mean(axis=2).astype(np.uint8) if grey else rgb
        magic = b"P5" if grey else b"P6"
        header = (
            magic
            + f"\n# Author: {PERSON}\n# Scanned at Jane's house, serial {SERIAL}\n"
            f"{WIDTH} {HEIGHT}\n255\n".encode()
        )
        path.write_bytes(header + pixels.tobytes())

    return build


# -- animated AVIF ---------------------------------------------------------------------------
def _avif_animation(path: Path) -> None:
    """Three frames (Pillow's libavif writer, an image sequence) with EXIF and XMP."""
    frames = [Image.fromarray(_picture(seed)) for seed in (1, 2, 3)]
    frames[0].save(
        path, "AVIF", save_all=True, append_images=frames[1:], duration=[100, 200, 300],
        quality=90, exif=_exif(), xmp=XMP,
    )  # fmt: skip


# -- content that lies about its extension ---------------------------------------------------
def _heif_as_jpg(path: Path) -> None:
    """A HEIF photo (pillow-heif, HEVC) with EXIF and XMP, saved under a ``.jpg`` name, as a
    phone's export or a careless rename leaves it."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(_picture()).save(buf, "HEIF", quality=90, exif=_exif(), xmp=XMP)
    path.write_bytes(buf.getvalue())


def _png_as_jpg(path: Path) -> None:
    """A PNG with tEXt Author and Comment chunks and an eXIf chunk, named ``.jpg``."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", PERSON)
    info.add_text("Comment", f"taken at Jane's house, camera {SERIAL}")
    buf = io.BytesIO()
    Image.fromarray(_picture()).save(buf, "PNG", pnginfo=info, exif=_exif())
    path.write_bytes(buf.getvalue())


# -- 16 bits a sample ------------------------------------------------------------------------
def _deep() -> np.ndarray:
    """The picture at 16 bits with detail in the low byte, which an 8-bit round trip loses."""
    rgb = _picture().astype(np.uint16) * 257
    return rgb + (np.arange(WIDTH, dtype=np.uint16) % 199)[None, :, None]


def _tiff16(path: Path) -> None:
    """A 16-bit RGB TIFF (tifffile) with Make, Model, Artist, Copyright, a description, a date
    and XMP in its IFD."""
    import tifffile

    tifffile.imwrite(
        path, _deep(), photometric="rgb", description=f"portrait of {PERSON}",
        datetime="2021:06:15 13:45:10", software="VeilCam firmware 1.0",
        extratags=[
            (271, "s", 0, "VeilCam", True), (272, "s", 0, "Spy 3000", True),
            (315, "s", 0, PERSON, True), (33432, "s", 0, f"(c) {OWNER}", True),
            (700, "B", len(XMP), XMP, True),
        ],
    )  # fmt: skip


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(path: Path) -> None:
    """A 16-bit RGB PNG (imagecodecs; Pillow writes no 16-bit colour PNG) with an eXIf chunk,
    XMP in iTXt and a tEXt Author, put after IHDR."""
    import imagecodecs

    data = bytes(imagecodecs.png_encode(_deep()))
    ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR's length, type, 13 bytes and CRC
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP
    extra = (
        _png_chunk(b"eXIf", _exif().removeprefix(b"Exif\x00\x00"))
        + _png_chunk(b"iTXt", itxt)
        + _png_chunk(b"tEXt", b"Author\x00" + PERSON.encode())
    )
    path.write_bytes(data[:ihdr_end] + extra + data[ihdr_end:])


# -- SVG ----------------------------------------------------------------------------------
def _svg(path: Path) -> None:
    """An SVG as Inkscape writes one: a comment, RDF/Dublin Core metadata (creator, date,
    rights), a title, Inkscape's and Sodipodi's attributes (the document's name, the folder
    it was exported to) and an embedded JPEG carrying EXIF (GPS, serial, owner, ...)."""
    photo = io.BytesIO()
    Image.fromarray(_picture(2)).resize((128, 96)).save(photo, "JPEG", quality=90, exif=_exif())
    embedded = base64.b64encode(photo.getvalue()).decode()
    text = f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape by {PERSON} -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
   xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
   xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
   xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://creativecommons.org/ns#"
   xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
   width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" inkscape:version="1.3"
   sodipodi:docname="march-{PERSON.split()[0].lower()}.svg"
   inkscape:export-filename="/home/jane/Pictures/march.png">
  <title>The march, {WHEN}</title>
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:creator><cc:Agent><dc:title>{PERSON}</dc:title></cc:Agent></dc:creator>
    <dc:date>{WHEN}</dc:date><dc:rights><cc:Agent><dc:title>{PERSON}</dc:title></cc:Agent></dc:rights>
  </cc:Work></rdf:RDF></metadata>
  <sodipodi:namedview pagecolor="#ffffff" inkscape:window-width="1920"/>
  <rect x="8" y="8" width="100" height="60" fill="#c33" inkscape:label="banner"/>
  <circle cx="60" cy="140" r="30" fill="#36c"/>
  <image x="120" y="20" width="128" height="96" xlink:href="data:image/jpeg;base64,{embedded}"/>
</svg>
"""
    path.write_text(text, encoding="utf-8")


MADE: tuple[Made, ...] = (
    Made("dng-sensor-in-subifd.dng", "DNG 1.4, sensor data in a SubIFD, RGB preview in IFD0",
         "Make/Model/Artist, CameraSerialNumber, DNGPrivateData, RawDataUniqueID, "
         "OriginalRawFileName, XMP, EXIF owner/serial, GPS", _dng(True, 1)),
    Made("dng-sensor-in-ifd0-rotated.dng", "DNG 1.4, sensor data in IFD0, Orientation 6",
         "as above", _dng(False, 6)),
    Made("jxl-container.jxl", "JPEG XL container (lossless codestream in jxlc)",
         "Exif box (GPS, serial, owner, maker note, thumbnail), xml box, jumb box", _jxl),
    Made("wmv-video.wmv", "ASF: WMV2 video + WMA2 sound",
         "title, author, copyright, comment, creation date", _asf(video=True)),
    Made("wma-sound.wma", "ASF: WMA2 sound only",
         "title, author, copyright, comment, creation date", _asf(video=False)),
    Made("pnm-colour.ppm", "PPM (P6, 8-bit)", "header comments: author, place, serial",
         _pnm(grey=False)),
    Made("pnm-grey.pgm", "PGM (P5, 8-bit)", "header comments: author, place, serial",
         _pnm(grey=True)),
    Made("avif-animated.avif", "AVIF image sequence, 3 frames",
         "EXIF (GPS, serial, owner, maker note, thumbnail), XMP", _avif_animation),
    Made("heif-named-jpg.jpg", "HEIF (HEVC) named .jpg", "EXIF (GPS, serial, ...), XMP",
         _heif_as_jpg),
    Made("png-named-jpg.jpg", "PNG named .jpg", "tEXt Author and Comment, eXIf", _png_as_jpg),
    Made("tiff-16bit.tif", "TIFF, RGB 16 bits a sample",
         "Make, Model, Artist, Copyright, description, date, software, XMP", _tiff16),
    Made("png-16bit.png", "PNG, RGB 16 bits a sample", "eXIf (GPS, serial, ...), XMP, tEXt Author",
         _png16),
    Made("inkscape.svg", "SVG as Inkscape writes it, with an embedded JPEG",
         "comment, RDF creator/date/rights, title, docname, export path; EXIF in the JPEG", _svg),
)  # fmt: skip


def build_corpus(folder: Path) -> list[Made]:
    """Every `MADE` file written afresh into ``folder`` (removed first if it holds others)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file():
            stale.unlink()
    for made in MADE:
        made.build(folder / made.name)
    return list(MADE)
