"""PNG and APNG: lossless, so only chunks change; text, eXIf and tIME chunks are not written."""

from __future__ import annotations

import struct
from typing import Any

from PIL import Image, PngImagePlugin

from .base import FormatHandler

# PNG 1.2 stores gamma and chromaticities as unsigned integers times 100000 (sections 4.2.2.1-2).
_PNG_SCALE = 100_000


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
        for key in ("dpi", "loop"):
            if key in im.info:
                options[key] = im.info[key]
        colour = _colour_chunks(im.info)
        if colour is not None:
            options["pnginfo"] = colour
        return options


def _colour_chunks(info: dict[str | tuple[int, int], Any]) -> PngImagePlugin.PngInfo | None:
    """sRGB, gAMA and cHRM, which Pillow reads but does not write: colour, not identity."""
    chunks = PngImagePlugin.PngInfo()
    if "srgb" in info:
        chunks.add(b"sRGB", bytes([int(info["srgb"])]))
    if "gamma" in info:
        chunks.add(b"gAMA", struct.pack(">I", round(float(info["gamma"]) * _PNG_SCALE)))
    if "chromaticity" in info and len(info["chromaticity"]) == 8:
        values = (round(float(v) * _PNG_SCALE) for v in info["chromaticity"])
        chunks.add(b"cHRM", struct.pack(">8I", *values))
    return chunks if chunks.chunks else None
