"""WebP: lossless stays lossless; lossy is re-encoded at a high fixed quality because the
container does not record the quality it was made with."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import FormatHandler, source_bytes

LOSSY_QUALITY = 90


class WebpHandler(FormatHandler):
    name = "WebP"
    extensions = (".webp",)
    pil_formats = ("WEBP",)
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP"

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        lossless = _first_image_is_lossless(source_bytes(im))
        options.update(lossless=lossless, quality=100 if lossless else LOSSY_QUALITY)
        if lossless:
            options["exact"] = True  # keep colour under transparent pixels, as the input had
        if "loop" in im.info:
            options["loop"] = im.info["loop"]
        return options


def _first_image_is_lossless(data: bytes) -> bool:
    """Whether the first image chunk is VP8L (lossless) rather than VP8 (lossy).

    Walks the RIFF chunks (Google's WebP container spec): an ICC profile or the animation
    header can push the first image chunk far from the start of the file.
    """
    position = 12  # "RIFF", size, "WEBP"
    while position + 8 <= len(data):
        fourcc = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        if fourcc == b"ANMF":  # a frame: 16 bytes of placement, then its own chunks
            position += 8 + 16
            continue
        position += 8 + size + (size & 1)
    return False
