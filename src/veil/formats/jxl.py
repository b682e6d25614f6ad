"""JPEG XL: a bare codestream, or the ISO BMFF-style container whose boxes carry EXIF, XMP,
JUMBF (C2PA) and the original JPEG's markers (``jbrd``), some of them Brotli-compressed
(``brob``). Pillow has no JPEG XL plug-in; veil registers a small one over ``imagecodecs``
(BSD-3, its wheel bundles libjxl), which decodes and encodes the codestream.

When no pixel changed, only the boxes that draw the picture are kept (`strip_jxl`) and the
codestream is copied as it was: samples, bit depth and the colour profile it carries stay.
Otherwise the picture is encoded again at distance 1.0 (about JPEG quality 90); libjxl takes
no ICC profile from imagecodecs, so such an output is sRGB. Animations are refused for now:
imagecodecs gives no frame timing to write back.
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np
from PIL import ExifTags, Image, ImageFile

from ..errors import CorruptInput, UnsupportedFormat, VerificationFailed
from ..extras import install_command
from ..fields import OTHER, MetaField
from .base import Decoded, FormatHandler
from .isobmff import Box, boxes

_BARE = b"\xff\x0a"
_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
#: Boxes that draw the picture (ISO/IEC 18181-2): signature, file type, level, the codestream
#: (whole or in parts) and the frame index. Everything else (Exif, xml, jumb, brob, jbrd, ...)
#: is left out.
_KEEP = frozenset({b"JXL ", b"ftyp", b"jxll", b"jxlc", b"jxlp", b"jxli"})
#: What the other boxes are, for `scan`.
_BOXES = {
    b"jumb": ("JUMBF", "JUMBF box (C2PA content credentials: who made and edited the picture)"),
    b"brob": ("CompressedMetadata", "Brotli-compressed metadata box"),
    b"jbrd": ("JPEGReconstruction", "JPEG reconstruction data (the original JPEG's markers)"),
}
DISTANCE = 1.0


def available() -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.JPEGXL.available)


def _accept(prefix: bytes) -> bool:
    return prefix[:2] == _BARE or prefix[:12] == _CONTAINER


def _boxes(data: bytes) -> list[Box] | None:
    """The top-level boxes of a container (ISO BMFF's layout); None for a bare codestream or a
    damaged box structure."""
    if not data.startswith(_CONTAINER):
        return None
    try:
        return list(boxes(data))
    except CorruptInput:
        return None


def strip_jxl(data: bytes) -> bytes | None:
    """``data`` with only the boxes in `_KEEP`, byte for byte; a bare codestream as it is
    (it has nowhere to hold metadata). None when the boxes are damaged."""
    if data.startswith(_BARE):
        return data
    found = _boxes(data)
    if found is None:
        return None
    return b"".join(data[box.start : box.end] for box in found if box.type in _KEEP)


class JxlImageFile(ImageFile.ImageFile):
    """Pillow's view of a JPEG XL file: decoded whole by imagecodecs when opened, samples
    brought to 8 bits (veil's pixels are 8-bit), EXIF and XMP boxes in ``info``."""

    format = "JXL"
    format_description = "JPEG XL"

    def _open(self) -> None:
        import imagecodecs

        assert self.fp is not None  # Pillow opens a plug-in's file before _open
        data = self.fp.read()
        try:
            pixels = imagecodecs.jpegxl_decode(data)
        except Exception as exc:  # imagecodecs raises its own error types
            raise SyntaxError(f"not a readable JPEG XL file: {exc}") from exc
        if pixels.ndim == 4 and pixels.shape[0] > 1:
            why = "its frames' timing cannot be kept"
            raise UnsupportedFormat(f"animated JPEG XL is not cleaned yet: {why}")
        pixels = pixels.reshape(pixels.shape[-3:] if pixels.ndim == 4 else pixels.shape)
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        elif pixels.dtype != np.uint8:
            pixels = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        self._pixels, self._loaded = np.ascontiguousarray(pixels), False
        bands = 1 if pixels.ndim == 2 else pixels.shape[2]
        self._mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bands]
        self._size = (pixels.shape[1], pixels.shape[0])
        for box in _boxes(data) or []:
            if box.type == b"Exif" and box.end - box.body > 4:
                # four bytes of offset to the TIFF header come first (ISO/IEC 18181-2, 9.2)
                offset = int.from_bytes(data[box.body : box.body + 4], "big")
                self.info["exif"] = b"Exif\x00\x00" + data[box.body + 4 + offset : box.end]
            elif box.type == b"xml ":
                self.info["xmp"] = data[box.body : box.end]
        self.tile = []

    def getexif(self) -> Image.Exif:
        exif = super().getexif()
        # The decoder has applied the codestream's orientation, the picture's own; an EXIF
        # orientation beside it is not applied again (ISO/IEC 18181-2: the codestream rules).
        exif.pop(ExifTags.Base.Orientation, None)
        return exif

    def load(self) -> Any:
        if not self._loaded:
            self.load_prepare()
            self.frombytes(self._pixels.tobytes(), "raw", self.mode)
            self._loaded = True
        return super().load()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    import imagecodecs

    pixels = np.asarray(im.convert(im.mode if im.mode in ("L", "LA", "RGB", "RGBA") else "RGB"))
    fp.write(imagecodecs.jpegxl_encode(pixels, distance=DISTANCE))


def register_jxl() -> None:
    """Teach Pillow to open and write JPEG XL where imagecodecs can; idempotent."""
    if available():
        Image.register_open(JxlImageFile.format, JxlImageFile, _accept)
        Image.register_save(JxlImageFile.format, _save)
        Image.register_extension(JxlImageFile.format, ".jxl")


class JxlHandler(FormatHandler):
    name = "JPEG XL"
    extensions = (".jxl",)
    pil_formats = ("JXL",)

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return _accept(prefix)

    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        if not available():
            raise UnsupportedFormat(f"JPEG XL needs its decoder: {install_command('jxl')}")
        decoded = super().decode(data, max_pixels)
        found = _boxes(data)
        if data.startswith(_CONTAINER) and found is None:
            raise CorruptInput("the JPEG XL container is damaged (a box runs past the file)")
        for box in found or []:
            if box.type in _BOXES:
                decoded.metadata.append(MetaField(OTHER, *_BOXES[box.type]))
        return decoded

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_jxl(decoded.source)
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def reread(self, data: bytes, decoded: Decoded) -> None:
        super().reread(data, decoded)
        left = sorted({box.type for box in _boxes(data) or [] if box.type not in _KEEP})
        if left:
            names = ", ".join(k.decode("latin-1").strip() for k in left)
            raise VerificationFailed(f"identifying metadata survived encoding: {names} box")
