"""WebP: lossless stays lossless; lossy is re-encoded at a high fixed quality because the
container does not record the quality it was made with."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import FormatHandler

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
        lossless = b"VP8L" in _first_chunks(im)
        options.update(lossless=lossless, quality=100 if lossless else LOSSY_QUALITY)
        if lossless:
            options["exact"] = True  # keep colour under transparent pixels, as the input had
        if "loop" in im.info:
            options["loop"] = im.info["loop"]
        return options


def _first_chunks(im: Image.Image) -> bytes:
    fp = getattr(im, "fp", None)
    if fp is None:
        return b""
    position = fp.tell()
    try:
        fp.seek(0)
        return bytes(fp.read(64))
    finally:
        fp.seek(position)
