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
import struct
import sys
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
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from ..errors import CorruptInput, EncodeFailed, TooLarge, VerificationFailed
from .metadata import PICTURE, MetaField, neutral_icc, orientation_of, read_fields

Pixels = npt.NDArray[np.uint8]


def rgb_view(pixels: Pixels) -> Pixels:
    """Three contiguous colour channels of a grey, RGB or RGBA frame (what detectors take)."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


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


def open_image(data: bytes) -> Image.Image:
    """Open (not decode) image bytes with Pillow; failures become `CorruptInput`."""
    with _pillow_bomb_check_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd-but-readable files warn; we verify pixels instead
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:  # its message names only our in-memory buffer
            msg = "cannot read image: no decoder accepts it (damaged or truncated header)"
            raise CorruptInput(msg) from exc
        except DECODE_ERRORS as exc:
            raise CorruptInput(f"cannot read image: {exc}") from exc


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
        im = open_image(data)
        if im.format not in self.pil_formats:
            raise CorruptInput(f"not a valid {self.name} file (reads as {im.format})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # damaged-but-readable files warn; judged below
                decoded = self._decode(im, max_pixels)
        except DECODE_ERRORS as exc:
            raise CorruptInput(f"cannot decode {self.name}: {exc}") from exc
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
        sources = ImageSequence.Iterator(im) if frame_count > 1 else iter([im])
        for index, frame in enumerate(sources):
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

    def keep_frame(self, frame: Image.Image) -> bool:
        """Whether a frame is part of the picture; False drops it (e.g. a stored preview)."""
        return True

    def _to_array(self, frame: Image.Image) -> Pixels:
        frame.load()
        upright = ImageOps.exif_transpose(frame)
        if upright.mode in _WIDE_GREY_MODES:
            # Pillow's 8-bit conversion clips 16-bit samples (most turn white); keep the top byte.
            wide = np.clip(np.asarray(upright, dtype=np.int64), 0, 65535)
            grey = (wide >> 8).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
            upright.mode in ("P", "L", "RGB") and "transparency" in upright.info
        )
        return np.asarray(upright.convert("RGBA" if has_alpha else "RGB"))

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

    def same_pixels(self, data: bytes, decoded: Decoded) -> bool:
        """Whether ``data`` decodes to exactly ``decoded``'s frames, orientation applied.

        Every `strip` ends with this check: a container walk that skipped damaged bytes, or
        resynchronised in the wrong place, must fall back to re-encoding, never change a pixel.
        """
        try:
            again = self.decode(data, max_pixels=sys.maxsize)  # same format, every frame
        except (CorruptInput, TooLarge, *DECODE_ERRORS):
            return False
        return len(again.frames) == len(decoded.frames) and all(
            np.array_equal(a, b) for a, b in zip(again.frames, decoded.frames, strict=True)
        )

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        # Nothing obscured: rewrite the container rather than re-encode a lossy format, so the
        # picture keeps every pixel (METRICS.md, fidelity).
        if len(frames) == len(decoded.frames) and all(
            np.array_equal(a, b) for a, b in zip(frames, decoded.frames, strict=True)
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
    def verify(self, data: bytes, decoded: Decoded) -> None:
        """Re-read an encoded output: same format, size and frame count, nothing identifying."""
        try:
            im = open_image(data)
        except CorruptInput as exc:
            raise VerificationFailed(f"output does not decode: {exc}") from exc
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
            raise VerificationFailed(f"output does not decode: {exc}") from exc
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
    return bool(
        np.array_equal(pixels[..., 0], pixels[..., 1])
        and np.array_equal(pixels[..., 1], pixels[..., 2])
    )


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
    from ..files import read_regular

    return read_regular(path, size)
