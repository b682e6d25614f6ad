"""PNG and APNG: lossless, so only chunks change; text, eXIf and tIME chunks are not written."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import FormatHandler


class PngHandler(FormatHandler):
    name = "PNG"
    extensions = (".png", ".apng")
    pil_formats = ("PNG",)
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:8] == b"\x89PNG\r\n\x1a\n"

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        for key in ("dpi", "gamma", "loop"):
            if key in im.info:
                options[key] = im.info[key]
        return options
