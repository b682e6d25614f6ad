"""BMP: no metadata blocks at all; re-written from pixels."""

from __future__ import annotations

from .base import FormatHandler


class BmpHandler(FormatHandler):
    name = "BMP"
    extensions = (".bmp", ".dib")
    pil_formats = ("BMP", "DIB")

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:2] == b"BM"
