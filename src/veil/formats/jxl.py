"""JPEG XL: a bare codestream, or the ISO BMFF-style container whose boxes carry EXIF, XMP,
JUMBF (C2PA) and the original JPEG's markers (``jbrd``), some of them Brotli-compressed
(``brob``). Pillow has no JPEG XL plug-in; veil registers a small one over ``imagecodecs``
(BSD-3, its wheel bundles libjxl), which decodes and encodes the codestream.

When no pixel changed, only the boxes that draw the picture are kept (`strip_jxl`) and the
codestream is copied as it was: samples, bit depth and the colour profile it carries stay.
Otherwise the picture is encoded again at distance 1.0 (about JPEG quality 90); libjxl takes
no ICC profile from imagecodecs, so such an output is sRGB.

An animation is decoded frame by frame (as libjxl shows them, composited) so that faces are
searched in every one. With nothing obscured it is cleaned like a still: the codestream holds
each frame's duration and the loop count itself, so copying it keeps them. Once a frame
changed it cannot be written: imagecodecs's encoder gives every frame of an animation the same
0.1 s and takes no durations, and its decoder reports none to keep, so veil refuses the file
rather than change its timing (`JxlHandler.encode`).
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile

from ..errors import CorruptInput, EncodeFailed, TooLarge, UnsupportedFormat, VerificationFailed
from ..extras import install_command
from ..fields import OTHER, MetaField
from ..pixels import Pixels
from .base import Decoded, FormatHandler, plain_reason, same_array
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
_ANIMATION_REFUSED = (
    "a face or text was obscured in an animated JPEG XL, and veil cannot write JPEG XL "
    "animations yet (their frame timing would be lost): convert it to GIF, WebP or MP4 and "
    "clean that"
)


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
    """Pillow's view of a JPEG XL file: every frame decoded by imagecodecs when opened (an
    animation's as `seek` picks them), samples brought to 8 bits (veil's pixels are 8-bit),
    EXIF and XMP boxes in ``info``. No frame has a ``duration``: imagecodecs reports none."""

    format = "JXL"
    format_description = "JPEG XL"

    def _open(self) -> None:
        assert self.fp is not None  # Pillow opens a plug-in's file before _open
        data = self.fp.read()
        pixels = _decode_frames(data)
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        elif pixels.dtype != np.uint8:
            pixels = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
        if pixels.ndim == 4 and pixels.shape[3] == 1:
            pixels = pixels[..., 0]
        self._pixels = np.ascontiguousarray(pixels)
        self._frame, self._loaded = 0, False
        self.n_frames = len(pixels)
        self.is_animated = self.n_frames > 1
        bands = 1 if pixels.ndim == 3 else pixels.shape[3]
        self._mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bands]
        self._size = (pixels.shape[2], pixels.shape[1])
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

    def seek(self, frame: int) -> None:
        if self._seek_check(frame):
            self._frame, self._loaded = frame, False

    def tell(self) -> int:
        return self._frame

    def load(self) -> Any:
        if not self._loaded:
            self.load_prepare()
            self.frombytes(self._pixels[self._frame].tobytes(), "raw", self.mode)
            self._loaded = True
        return super().load()


def _decode_frames(data: bytes) -> npt.NDArray[Any]:
    """Every frame of a JPEG XL file as imagecodecs decodes it, frames first: (frames,
    height, width) or (frames, height, width, samples).

    A file cut short between two frames decodes without an error, to fewer frames (libjxl
    counts the frames it has seen): only the codestream's last frame is marked as the last,
    so a decoder asked to skip every frame decoded finishes only when that frame was there.
    The same call tells a grey animation (frames, height, width) from a still with samples
    (height, width, samples): it gives one frame's shape.
    """
    import imagecodecs

    try:
        pixels = imagecodecs.jpegxl_decode(data)
        frame = imagecodecs.jpegxl_decode(data, index=len(pixels)).shape
    except Exception as exc:  # imagecodecs raises its own error types
        if "NEED_MORE_INPUT" in str(exc):  # libjxl's word for data that ends early
            # Veil's own error: Pillow would turn an EOFError into "cannot identify".
            raise CorruptInput(plain_reason(EOFError(), JxlHandler.name)) from exc
        raise SyntaxError(f"not a readable JPEG XL file: {exc}") from exc
    return pixels[None] if pixels.shape == frame else pixels


# The aspect ratios a SizeHeader can name instead of a width (ISO/IEC 18181-1, D.2).
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def picture_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the codestream's SizeHeader (ISO/IEC 18181-1, D.2), read before
    anything is decoded; None where the codestream's start is not found."""
    start = data if data.startswith(_BARE) else None
    for box in _boxes(data) or []:
        if box.type in (b"jxlc", b"jxlp") and start is None:
            body = data[box.body : box.end]  # a jxlp part begins with its 4-byte index
            start = body if box.type == b"jxlc" else body[4:]
    if start is None or len(start) < 2 + 12 or not start.startswith(_BARE):
        return None
    bits = int.from_bytes(start[2:14], "little")  # fields are packed from the lowest bit
    at = 0

    def take(count: int) -> int:
        nonlocal at
        value = (bits >> at) & ((1 << count) - 1)
        at += count
        return value

    def dimension() -> int:  # U32(Bits(9) + 1, Bits(13) + 1, Bits(18) + 1, Bits(30) + 1)
        return take((9, 13, 18, 30)[take(2)]) + 1

    small = take(1)
    height = (take(5) + 1) * 8 if small else dimension()
    ratio = take(3)
    if ratio:
        numerator, denominator = _RATIOS[ratio]
        return height * numerator // denominator, height
    width = (take(5) + 1) * 8 if small else dimension()
    return width, height


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
    #: Every frame of an animation is decoded and searched; see `encode` for what is written.
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return _accept(prefix)

    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        if not available():
            raise UnsupportedFormat(f"JPEG XL needs its decoder: {install_command('jxl')}")
        size = picture_size(data)
        if size is not None and size[0] * size[1] > max_pixels:
            # Said before decoding: libjxl would make the whole picture first, and a file of
            # a few bytes can claim a billion pixels.
            width, height = size
            raise TooLarge(
                f"{width}x{height} = {width * height / 1e6:.0f} MP exceeds the limit of "
                f"{max_pixels / 1e6:.0f} MP"
            )
        decoded = super().decode(data, max_pixels)
        found = _boxes(data)
        if data.startswith(_CONTAINER) and found is None:
            raise CorruptInput("the JPEG XL container is damaged (a box runs past the file)")
        for box in found or []:
            if box.type in _BOXES:
                decoded.metadata.append(MetaField(OTHER, *_BOXES[box.type]))
        return decoded

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        if len(decoded.frames) == 1:
            return super().encode(decoded, frames)
        # An animation is only ever copied (`strip`): re-encoding it through imagecodecs would
        # give every frame 0.1 s, whatever the source's timing was.
        if not all(same_array(a, b) for a, b in zip(frames, decoded.frames, strict=True)):
            raise UnsupportedFormat(_ANIMATION_REFUSED)
        stripped = self.strip(decoded)
        if stripped is None:
            raise EncodeFailed(
                "the animated JPEG XL could not be copied without its metadata boxes (the "
                "copy did not show the same frames), and veil cannot write JPEG XL animations"
            )
        return stripped

    def cannot_obscure(self, decoded: Decoded) -> str | None:
        return _ANIMATION_REFUSED if len(decoded.frames) > 1 else None

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_jxl(decoded.source)
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def reread(self, data: bytes, decoded: Decoded) -> None:
        super().reread(data, decoded)
        left = sorted({box.type for box in _boxes(data) or [] if box.type not in _KEEP})
        if left:
            names = ", ".join(k.decode("latin-1").strip() for k in left)
            raise VerificationFailed(f"identifying metadata survived encoding: {names} box")
