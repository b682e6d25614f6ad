"""TIFF: rebuilt from pixels with the source compression; no private or EXIF tags written."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import FormatHandler

# Compressions Pillow can write; anything else (e.g. old-style JPEG) falls back to LZW, lossless.
_WRITABLE = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "jpeg"}


class TiffHandler(FormatHandler):
    name = "TIFF"
    extensions = (".tif", ".tiff")
    pil_formats = ("TIFF",)
    animated = True  # multi-page TIFFs keep every page

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:4] in (b"II*\x00", b"MM\x00*")

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        compression = im.info.get("compression", "raw")
        options["compression"] = compression if compression in _WRITABLE else "tiff_lzw"
        if compression == "jpeg":
            options["quality"] = 90
        if "dpi" in im.info:
            options["dpi"] = im.info["dpi"]
        return options
