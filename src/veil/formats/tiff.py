"""TIFF and BigTIFF: rebuilt from pixels with the source compression; no private or EXIF tags
written. Reduced-resolution pages (previews a scanner or camera stored next to the picture)
are dropped: they would carry a small un-obscured copy."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import Decoded, FormatHandler, Pixels, source_bytes

# Compressions Pillow can write; anything else (e.g. old-style JPEG) falls back to LZW, lossless.
_WRITABLE = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "jpeg"}
_CLASSIC = (b"II*\x00", b"MM\x00*")
_BIG = (b"II+\x00", b"MM\x00+")
# TIFF 6.0 section 8: NewSubfileType bit 0 marks a reduced-resolution version of another page;
# the older SubfileType says the same with the value 2.
_NEW_SUBFILE_TYPE = 254
_SUBFILE_TYPE = 255
_REDUCED_RESOLUTION = 1
_OLD_REDUCED_RESOLUTION = 2


class TiffHandler(FormatHandler):
    name = "TIFF"
    extensions = (".tif", ".tiff", ".btf")
    pil_formats = ("TIFF",)
    animated = True  # multi-page TIFFs keep every full-size page

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:4] in _CLASSIC + _BIG

    def keep_frame(self, frame: Image.Image) -> bool:
        tags = getattr(frame, "tag_v2", None)
        if tags is None:
            return True
        reduced = int(tags.get(_NEW_SUBFILE_TYPE, 0)) & _REDUCED_RESOLUTION
        return not reduced and tags.get(_SUBFILE_TYPE) != _OLD_REDUCED_RESOLUTION

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        im = super().to_pil(pixels, decoded)
        # CMYK stays CMYK (print files), so a CMYK colour profile still describes the pixels.
        return im.convert("CMYK") if decoded.mode == "CMYK" and im.mode == "RGB" else im

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        compression = im.info.get("compression", "raw")
        options["compression"] = compression if compression in _WRITABLE else "tiff_lzw"
        if compression == "jpeg":
            options["quality"] = 90
        if "dpi" in im.info:
            options["dpi"] = im.info["dpi"]
        if source_bytes(im, 4) in _BIG:
            options["big_tiff"] = True  # a BigTIFF input may be too large for classic offsets
        return options
