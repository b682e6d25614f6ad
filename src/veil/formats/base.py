"""`FormatHandler`: decode with orientation applied, re-encode with no metadata.

Handlers for Pillow-readable stills share this base; each format module adds its magic-byte
check and the encoder options that keep the output close to the input (quality, chroma
subsampling, lossless flag, compression, animation timing). Nothing from the source's
``info`` is passed to the encoder except the allowlist each handler names, so EXIF, XMP,
IPTC, comments and text chunks cannot ride along.
"""

from __future__ import annotations

import io
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
from .metadata import MetaField, read_fields

Pixels = npt.NDArray[np.uint8]
_PIL_LIMIT_LOCK = threading.Lock()


@dataclass
class Decoded:
    """A decoded still or animation: frames as RGB or RGBA uint8, upright as displayed."""

    frames: list[Pixels]
    format: str
    mode: str
    options: dict[str, Any] = field(default_factory=dict)
    metadata: list[MetaField] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)

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
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
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
        mode = im.mode
        frames: list[Pixels] = []
        durations: list[int] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sources = ImageSequence.Iterator(im) if frame_count > 1 else iter([im])
                for frame in sources:
                    durations.append(int(frame.info.get("duration", 0) or 0))
                    frames.append(self._to_array(frame))
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
            raise CorruptInput(f"cannot decode {self.name}: {exc}") from exc
        if not frames or frames[0].size == 0:
            raise CorruptInput(f"{self.name} file holds no pixels")
        return Decoded(frames, self.name, mode, options, metadata, durations)

    def _to_array(self, frame: Image.Image) -> Pixels:
        frame.load()
        upright = ImageOps.exif_transpose(frame)
        has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
            upright.mode in ("P", "L", "RGB") and "transparency" in upright.info
        )
        return np.asarray(upright.convert("RGBA" if has_alpha else "RGB"))

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        """Encoder keywords read from the source; only viewer-needed data (the allowlist)."""
        options: dict[str, Any] = {}
        icc = im.info.get("icc_profile")
        if icc:
            options["icc_profile"] = icc
        return options

    # -- encoding --------------------------------------------------------------------------
    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        """The array as a Pillow image in a mode this format writes, close to the source mode."""
        im = Image.fromarray(pixels)
        if decoded.mode in ("L", "LA") and im.mode in ("RGB", "RGBA"):
            return im.convert("LA" if im.mode == "RGBA" else "L")
        return im

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        images = [self.to_pil(f, decoded) for f in frames]
        out = io.BytesIO()
        options = dict(decoded.options)
        if len(images) > 1:
            options.update(save_all=True, append_images=images[1:])
            if any(decoded.durations):
                options["duration"] = decoded.durations
        try:
            images[0].save(out, format=self.pil_formats[0], **options)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncodeFailed(f"cannot write {self.name}: {exc}") from exc
        return out.getvalue()

    # -- verification ----------------------------------------------------------------------
    def verify(self, data: bytes, decoded: Decoded) -> None:
        """Re-read an encoded output: same format, size and frame count, nothing identifying."""
        try:
            im = open_image(data)
            im.load()
        except (CorruptInput, OSError) as exc:
            raise VerificationFailed(f"output does not decode: {exc}") from exc
        if im.format not in self.pil_formats:
            raise VerificationFailed(f"output is {im.format}, expected {self.name}")
        if im.size != (decoded.width, decoded.height):
            raise VerificationFailed(
                f"output is {im.size}, expected {(decoded.width, decoded.height)}"
            )
        frames = getattr(im, "n_frames", 1) if self.animated else 1
        if frames != len(decoded.frames):
            raise VerificationFailed(f"output has {frames} frames, expected {len(decoded.frames)}")
        left = read_fields(im)
        if left:
            names = ", ".join(sorted({f.name for f in left}))
            raise VerificationFailed(f"identifying metadata survived encoding: {names}")


def read_prefix(path: Path, size: int = 64) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)
