"""`FormatHandler`: decode with orientation applied, re-encode with no metadata.

Handlers for Pillow-readable stills share this base; each format module adds its magic-byte
check and the encoder options that keep the output close to the input (quality, chroma
subsampling, lossless flag, compression, animation timing). Nothing from the source's
``info`` is passed to the encoder except the allowlist each handler names, so EXIF, XMP,
IPTC, comments and text chunks cannot ride along. When no pixel changed, a handler may instead
rewrite the container without re-encoding (`FormatHandler.strip`; JPEG does).
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import struct
import threading
import warnings
from abc import ABC
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageSequence, UnidentifiedImageError

from ..errors import CorruptInput, EncodeFailed, TooLarge, VerificationFailed
from ..fields import PICTURE, MetaField
from ..files import read_regular
from ..pixels import Pixels
from .metadata import neutral_icc, orientation_of, read_fields

_PIL_LIMIT_LOCK = threading.Lock()
# What Pillow and its plug-ins raise on damaged data; libavif and libheif failures arrive as
# RuntimeError, truncated TIFF and EXIF structures as struct.error.
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    struct.error,
)
# Single-channel modes wider than 8 bits (16-bit TIFF and PNG); decoded to 8 bits.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_GREY_MODES = ("1", "L", "LA", *_WIDE_GREY_MODES)
# ICC.1 header bytes 16-19 name the colour space a profile describes; a profile for another
# space than the written pixels makes a viewer show wrong colours, so it is not written.
_ICC_SPACE = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY", "CMYK": b"CMYK"}
_PREVIEW_DROPPED = MetaField(
    PICTURE, "Thumbnail", "reduced-resolution preview page (a small un-obscured copy); dropped"
)
# Pixels are converted, turned upright and compared this many at a time, so that a 200 MP
# picture is never held twice more in Pillow's 4 bytes a pixel or as an 8-byte wide array.
_BAND_PIXELS = 4_000_000
# EXIF orientation 2-8 (CIPA DC-008, 4.6.4) and the turn that shows the picture upright, as
# Pillow's ImageOps.exif_transpose does it.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = (5, 6, 7, 8)  # rows of the upright picture are columns of the stored one
_FROM_THE_END = (3, 4, 7, 8)  # the first upright rows are the last stored rows (or columns)


@dataclass
class Decoded:
    """A decoded still or animation: frames as RGB or RGBA uint8, upright as displayed."""

    frames: list[Pixels]
    format: str
    mode: str
    options: dict[str, Any] = field(default_factory=dict)
    metadata: list[MetaField] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    #: The file as read, for `FormatHandler.strip`.
    source: bytes = b""

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    """veil applies its own, configurable pixel limit; Pillow's fixed one would pre-empt it."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# Pillow logs some refusals (a TIFF with more samples per pixel than it decodes) as errors; with
# no handler, Python's last resort prints them on stderr, beside veil's own message about the
# same file. An application that configures logging still receives them.
logging.getLogger("PIL").addHandler(logging.NullHandler())

# What the decoders say when a file ends early (Pillow, libtiff, libheif, libavif, struct).
_CUT_SHORT = re.compile(
    r"truncat|end of (the )?file|unexpected end|premature|not enough data|unpack requires"
    r"|buffer is not large enough|no more images|early end",
    re.IGNORECASE,
)
# Messages that name only the library's own failure (a status code, a decoder it could not
# make, an errno): they say nothing about the file that "damaged" does not.
_LIBRARY_ONLY = re.compile(
    r"decod|encod|object|errno|\berror\b|-\d+\b|0x[0-9a-f]|broken data"
    r"|invalid (argument|data|input)|^\W*$",
    re.IGNORECASE,
)
_DETAIL_CHARS = 160


def plain_reason(exc: BaseException, kind: str) -> str:
    """What a decoder's failure says about a ``kind`` ("PNG") file, in plain words.

    >>> plain_reason(OSError("image file is truncated (70 bytes not processed)"), "JPEG")
    'the JPEG file is truncated (part of its image data is missing)'
    >>> plain_reason(OSError("decoder error -2"), "TIFF")
    'the TIFF image data is damaged or in a form veil cannot read'

    The library's own words follow in parentheses only where they add something and hold no
    jargon; a Python error's text (a missing key, an index) never does.
    """
    detail = " ".join(str(exc).split())  # one line: libheif's messages end in a newline
    if isinstance(exc, EOFError) or _CUT_SHORT.search(detail):
        return f"the {kind} file is truncated (part of its image data is missing)"
    plain = f"the {kind} image data is damaged or in a form veil cannot read"
    if isinstance(exc, (KeyError, IndexError, TypeError)) or _LIBRARY_ONLY.search(detail):
        return plain
    return f"{plain} ({detail[:_DETAIL_CHARS]})"


def open_image(data: bytes, kind: str = "image") -> Image.Image:
    """Open (not decode) image bytes with Pillow; failures become `CorruptInput`.
    ``kind`` ("PNG") names the format in messages."""
    with _pillow_bomb_check_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd-but-readable files warn; we verify pixels instead
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:  # its message names only our in-memory buffer
            msg = f"not a readable {kind} file: its header is damaged or cut short"
            raise CorruptInput(msg) from exc
        except DECODE_ERRORS as exc:
            raise CorruptInput(plain_reason(exc, kind)) from exc


class FormatHandler(ABC):
    """One container family. Subclasses set the class attributes and may refine the hooks."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    pil_formats: ClassVar[tuple[str, ...]]
    #: Whether all frames are kept (animations, multi-page files).
    animated: ClassVar[bool] = False

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        """Whether the first bytes of a file are this format's signature."""
        raise NotImplementedError

    # -- decoding --------------------------------------------------------------------------
    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        im = open_image(data, self.name)
        if im.format not in self.pil_formats:
            raise CorruptInput(f"not a valid {self.name} file (reads as {im.format})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # damaged-but-readable files warn; judged below
                decoded = self._decode(im, max_pixels)
        except DECODE_ERRORS as exc:
            raise CorruptInput(plain_reason(exc, self.name)) from exc
        decoded.source = data
        return decoded

    def _decode(self, im: Image.Image, max_pixels: int) -> Decoded:
        frame_count = getattr(im, "n_frames", 1) if self.animated else 1
        pixels = im.width * im.height * frame_count
        if pixels > max_pixels:
            raise TooLarge(
                f"{im.width}x{im.height}"
                + (f" x {frame_count} frames" if frame_count > 1 else "")
                + f" = {pixels / 1e6:.0f} MP exceeds the limit of {max_pixels / 1e6:.0f} MP"
            )
        metadata = read_fields(im)
        options = self.encode_options(im)
        frames: list[Pixels] = []
        durations: list[int] = []
        for index, frame in enumerate(self._frames(im)):
            if index:  # pages and frames carry their own tags (TIFF IFDs)
                metadata += [f for f in read_fields(frame) if f not in metadata]
            if not self.keep_frame(frame):
                if _PREVIEW_DROPPED not in metadata:
                    metadata.append(_PREVIEW_DROPPED)
                continue
            frames.append(self._to_array(frame))
            # after loading: WebP and AVIF set a frame's duration when it is decoded
            durations.append(int(frame.info.get("duration", 0) or 0))
        if not frames or frames[0].size == 0:
            raise CorruptInput(f"{self.name} file holds no pixels")
        return Decoded(frames, self.name, im.mode, options, metadata, durations)

    def _frames(self, im: Image.Image) -> Iterator[Image.Image]:
        """Every frame or page of an opened image (the first only, unless `animated`)."""
        frame_count = getattr(im, "n_frames", 1) if self.animated else 1
        return ImageSequence.Iterator(im) if frame_count > 1 else iter([im])

    def keep_frame(self, frame: Image.Image) -> bool:
        """Whether a frame is part of the picture; False drops it (e.g. a stored preview)."""
        return True

    def _to_array(self, frame: Image.Image) -> Pixels:
        shape, bands = _upright_bands(frame)
        pixels = np.empty(shape, np.uint8)
        for top, band in bands:
            pixels[top : top + len(band)] = band
        pixels.flags.writeable = False  # the decoded original; obscurers work on copies
        return pixels

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        """Encoder keywords read from the source; only viewer-needed data (the allowlist)."""
        options: dict[str, Any] = {}
        icc = im.info.get("icc_profile")
        if icc:
            options["icc_profile"] = neutral_icc(icc)
        return options

    # -- encoding --------------------------------------------------------------------------
    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        """The array as a Pillow image in a mode this format writes, close to the source mode."""
        im = Image.fromarray(pixels)
        # Grey stays grey, but per frame: a multi-page TIFF can mix grey and colour pages.
        if decoded.mode in _GREY_MODES and im.mode in ("RGB", "RGBA") and _is_grey(pixels):
            return im.convert("LA" if im.mode == "RGBA" else "L")
        return im

    def strip(self, decoded: Decoded) -> bytes | None:
        """The source rewritten without its metadata, pixel data untouched; None where this
        format cannot do that safely, and then `encode` re-encodes."""
        return None

    def cannot_obscure(self, decoded: Decoded) -> str | None:
        """Why this file cannot be written with anything obscured in it (its `encode` then
        refuses changed frames with this reason, and `veil scan` says so); None for most."""
        return None

    def same_pixels(self, data: bytes, decoded: Decoded) -> bool:
        """Whether ``data`` decodes to exactly ``decoded``'s frames, orientation applied.

        Every `strip` ends with this check: a container walk that skipped damaged bytes, or
        resynchronised in the wrong place, must fall back to re-encoding, never change a pixel.
        """
        try:
            im = open_image(data)
            if im.format not in self.pil_formats:
                return False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # as `decode`
                pages = (f for f in self._frames(im) if self.keep_frame(f))
                for expected, frame in itertools.zip_longest(decoded.frames, pages):
                    if expected is None or frame is None or not _draws(frame, expected):
                        return False
        except (CorruptInput, *DECODE_ERRORS):
            return False
        return True

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        # Nothing obscured: rewrite the container rather than re-encode a lossy format, so the
        # picture keeps every pixel (METRICS.md, fidelity).
        if len(frames) == len(decoded.frames) and all(
            same_array(a, b) for a, b in zip(frames, decoded.frames, strict=True)
        ):
            stripped = self.strip(decoded)
            if stripped is not None:
                return stripped
        images = [self.to_pil(f, decoded) for f in frames]
        out = io.BytesIO()
        options = dict(decoded.options)
        icc = options.get("icc_profile")
        if isinstance(icc, bytes) and icc[16:20] != _ICC_SPACE.get(images[0].mode, icc[16:20]):
            del options["icc_profile"]  # e.g. a CMYK profile on pixels now written as RGB
        if len(images) > 1:
            options.update(save_all=True, append_images=images[1:])
            if any(decoded.durations):
                options["duration"] = decoded.durations
        try:
            images[0].save(out, format=self.pil_formats[0], **options)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise EncodeFailed(f"cannot write {self.name}: {exc}") from exc
        return out.getvalue()

    # -- verification ----------------------------------------------------------------------
    def reread(self, data: bytes, decoded: Decoded) -> None:
        """Re-read an encoded output: same format, size and frame count, nothing identifying."""
        try:
            im = open_image(data, self.name)
        except CorruptInput as exc:
            raise VerificationFailed(f"the output does not read back: {exc}") from exc
        if im.format not in self.pil_formats:
            raise VerificationFailed(f"output is {im.format}, expected {self.name}")
        if displayed_size(im) != (decoded.width, decoded.height):
            raise VerificationFailed(
                f"output shows as {displayed_size(im)}, expected {(decoded.width, decoded.height)}"
            )
        frames = getattr(im, "n_frames", 1) if self.animated else 1
        if frames != len(decoded.frames):
            raise VerificationFailed(f"output has {frames} frames, expected {len(decoded.frames)}")
        # Every frame must decode and be clean: a TIFF page or an animation frame has its own
        # tags and ``info``.
        left: list[MetaField] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for index in range(frames):
                    im.seek(index)
                    im.load()
                    left += read_fields(im)
        except DECODE_ERRORS as exc:
            msg = f"the output does not read back: {plain_reason(exc, self.name)}"
            raise VerificationFailed(msg) from exc
        if left:
            names = ", ".join(sorted({f.name for f in left}))
            raise VerificationFailed(f"identifying metadata survived encoding: {names}")


def displayed_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as a viewer shows the image: an orientation of 5-8 turns it a quarter.
    Pillow's TIFF reader already reports pages upright."""
    if im.format != "TIFF" and orientation_of(im) >= 5:
        return im.height, im.width
    return im.size


def _is_grey(pixels: Pixels) -> bool:
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return same_array(red, green) and same_array(green, blue)


def same_array(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """``np.array_equal`` a band of rows at a time: it would otherwise build a boolean array
    the size of the picture (600 MB for 200 MP)."""
    if a.shape != b.shape:
        return False
    rows = _band_rows(a)
    return all(np.array_equal(a[y : y + rows], b[y : y + rows]) for y in range(0, len(a), rows))


def _band_rows(pixels: npt.NDArray[Any]) -> int:
    per_row = int(np.prod(pixels.shape[1:])) or 1
    return max(1, _BAND_PIXELS // per_row)


def _upright_bands(frame: Image.Image) -> tuple[tuple[int, int, int], Iterator[tuple[int, Pixels]]]:
    """The shape of a frame as displayed (EXIF orientation applied, as RGB or RGBA uint8) and
    its rows as (first row, band) pairs, converted a band at a time.

    Band by band because Pillow holds a picture in 4 bytes a pixel: turning or converting a
    200 MP frame whole would take another 800 MB beside it (and 16-bit grey 1.6 GB as int64).
    Each band is cut from the stored frame where the displayed rows come from, then turned.
    """
    frame.load()
    orientation = frame.getexif().get(ExifTags.Base.Orientation, 1)
    turn = _UPRIGHT.get(orientation)
    width, height = frame.size
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    wide = frame.mode in _WIDE_GREY_MODES
    has_alpha = frame.mode in ("RGBA", "LA", "PA") or (
        frame.mode in ("P", "L", "RGB") and "transparency" in frame.info
    )
    mode = "RGBA" if has_alpha and not wide else "RGB"
    rows = max(1, _BAND_PIXELS // max(width, 1))

    def bands() -> Iterator[tuple[int, Pixels]]:
        for top in range(0, height, rows):
            bottom = min(top + rows, height)
            band = frame
            if rows < height or turn is not None:
                band = frame.crop(_stored_box(orientation, frame.size, top, bottom))
            if turn is not None:
                band = band.transpose(turn)
            if wide:
                # Pillow's 8-bit conversion clips 16-bit samples (most turn white); keep the
                # top byte.
                grey = (np.clip(np.asarray(band, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
                yield top, np.repeat(grey[:, :, None], 3, axis=2)
            else:
                yield top, np.asarray(band if band.mode == mode else band.convert(mode))

    return (height, width, len(mode)), bands()


def _stored_box(
    orientation: int, size: tuple[int, int], top: int, bottom: int
) -> tuple[int, int, int, int]:
    """The area of the stored frame (``size`` as stored) that shows as displayed rows
    ``top`` to ``bottom`` once turned upright."""
    width, height = size
    extent = width if orientation in _QUARTER_TURNS else height
    start, stop = (extent - bottom, extent - top) if orientation in _FROM_THE_END else (top, bottom)
    return (start, 0, stop, height) if orientation in _QUARTER_TURNS else (0, start, width, stop)


def _draws(frame: Image.Image, expected: Pixels) -> bool:
    """Whether a frame decodes to exactly ``expected`` (`same_pixels`, a band at a time)."""
    shape, bands = _upright_bands(frame)
    if shape != expected.shape:
        return False
    return all(np.array_equal(band, expected[top : top + len(band)]) for top, band in bands)


def source_bytes(im: Image.Image, size: int = -1) -> bytes:
    """The first ``size`` bytes (default: all) of the file an opened image reads from."""
    fp = getattr(im, "fp", None)
    if fp is None:
        return b""
    position = fp.tell()
    try:
        fp.seek(0)
        return bytes(fp.read(size))
    finally:
        fp.seek(position)


def read_prefix(path: Path, size: int = 64) -> bytes:
    """The first bytes of a file; a FIFO or device is refused instead of blocking forever."""
    return read_regular(path, size)
