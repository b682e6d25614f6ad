"""GIF: every frame decoded, obscured and re-written with its timing and looping; comment and
application extensions (XMP rides in one) are not written."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import Decoded, FormatHandler, Pixels


class GifHandler(FormatHandler):
    name = "GIF"
    extensions = (".gif",)
    pil_formats = ("GIF",)
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:6] in (b"GIF87a", b"GIF89a")

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options: dict[str, Any] = {"optimize": False}
        if "loop" in im.info:
            options["loop"] = im.info["loop"]
        if getattr(im, "n_frames", 1) == 1 and "duration" in im.info:
            options["duration"] = im.info["duration"]
        return options

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        # Frames arrive fully composited, so each one is written whole (disposal 1: keep).
        return Image.fromarray(pixels)
