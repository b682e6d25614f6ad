"""HEIC/HEIF (through pillow-heif) and AVIF (Pillow's own plug-in).

When no pixel changed, the container is rewritten without its metadata items
(`isobmff.strip_heif`), coded image data untouched; an animated AVIF keeps its track of frames
and their timing the same way. Otherwise the picture is re-encoded;
neither container records the quality it was encoded at, so outputs use a high fixed quality.
Orientation: both decoders apply the container's rotation (irot/imir) and EXIF orientation is
applied on top only where the decoder leaves it set, via ``ImageOps.exif_transpose``. The
rewrite keeps irot/imir but drops the EXIF item, so a file whose EXIF orientation was applied
fails its pixel check and is re-encoded upright instead.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..errors import CorruptInput
from ..fields import PICTURE, MetaField
from ..pixels import Pixels
from .base import Decoded, FormatHandler
from .isobmff import boxes, strip_heif, zero_times

QUALITY = 90
# x265's "ultrafast" preset, passed through libheif: on a 12 MP iPhone photo it encodes in
# 2.6 s instead of 20 s (libheif's default preset) at the same PSNR (57.7 vs 57.3 dB against
# the decoded source) for 3% more bytes; measured in this repo with pillow-heif 1.8.1, x265 4.3.
HEIF_ENCODER_PARAMS = {"preset": "ultrafast"}
# libaom speed (0 slowest .. 10); Pillow's default is 6. Speed 9 encodes the same 12 MP photo
# in 1.2 s instead of 7.6 s for 8% more bytes and 0.4 dB less PSNR (aom 3.14, libavif 1.4).
AVIF_SPEED = 9
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


# pillow-heif decodes a HEIF's primary picture only: the frames of an image sequence beside it
# (a moov track) could not be searched, so they are not kept (strip_heif is given no frame
# count and re-encoding writes the picture alone); the report says what went.
_SEQUENCE_DROPPED = MetaField(
    PICTURE,
    "ImageSequence",
    "an image sequence beside the primary picture: not kept (veil cannot decode its frames)",
)


def _holds_sequence(data: bytes) -> bool:
    try:
        return any(found.type == b"moov" for found in boxes(data))
    except CorruptInput:
        return False  # the decoder took the file; the strip walk refuses it on its own


def _brand(prefix: bytes) -> bytes:
    return prefix[8:12] if prefix[4:8] == b"ftyp" else b""


def register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF; idempotent."""
    import pillow_heif

    pillow_heif.register_heif_opener()


class _IsoBmffHandler(FormatHandler):
    """Shared by HEIF and AVIF: one container (ISO/IEC 23008-12), two codecs."""

    def strip(self, decoded: Decoded) -> bytes | None:
        # An image sequence is kept only where every frame was decoded, so that `same_pixels`
        # checks each one: Pillow's AVIF reader decodes the track, pillow-heif reads only a
        # HEIF's primary image, so a HEIF's track is left out (the report says so).
        frames = len(decoded.frames) if self.animated else None
        stripped = strip_heif(decoded.source, frames, drop_sequence=not self.animated)
        if stripped is None:
            return None
        # The rewrite must draw exactly the picture the source drew: the rotation, mirror,
        # crop, grid and alpha it kept are all applied by the decoder.
        return stripped if self.same_pixels(stripped, decoded) else None

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        # An image sequence's encoder dates its movie and tracks with the time it wrote them.
        return zero_times(super().encode(decoded, frames))


class HeifHandler(_IsoBmffHandler):
    name = "HEIF"
    extensions = (".heic", ".heif", ".hif")
    pil_formats = ("HEIF",)

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        # AVIF files often list mif1 as major brand too; avif wins when it is the major brand.
        return _brand(prefix) in _HEIF_BRANDS and b"avif" not in prefix[8:32]

    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        decoded = super().decode(data, max_pixels)
        if _holds_sequence(data):
            decoded.metadata.append(_SEQUENCE_DROPPED)
        return decoded

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        options["quality"] = QUALITY
        options["enc_params"] = dict(HEIF_ENCODER_PARAMS)  # pillow-heif adds to the dict it gets
        return options


class AvifHandler(_IsoBmffHandler):
    name = "AVIF"
    extensions = (".avif",)
    pil_formats = ("AVIF",)
    #: An animated AVIF (an image sequence, brand avis) keeps every frame and its timing.
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return _brand(prefix) in _AVIF_BRANDS or (
            _brand(prefix) in (b"mif1", b"msf1") and b"avif" in prefix[8:32]
        )

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        options.update(quality=QUALITY, speed=AVIF_SPEED)
        return options
