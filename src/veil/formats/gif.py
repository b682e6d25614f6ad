"""GIF: every frame decoded, obscured and re-written with its timing and looping; comment and
application extensions (XMP rides in one) are not written. When no pixel changed, the blocks
are copied instead (`strip_gif`), so palette and compression stay exactly as they were."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from ..pixels import Pixels
from .base import Decoded, FormatHandler, source_bytes
from .metadata import neutral_icc

# Application extensions a viewer needs: looping (Netscape, AnimExts). The ICC profile's is
# rebuilt with its date zeroed; every other one (XMP, editors' private data) is dropped.
_LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
_GRAPHIC_CONTROL, _APPLICATION, _IMAGE, _TRAILER = 0xF9, 0xFF, 0x2C, 0x3B

_PALETTE_SIZE = 256
# Stands for "fully transparent" among packed 0xRRGGBB colours; sorts after every colour.
_TRANSPARENT_KEY = 1 << 24
# ICC profiles in GIF: an application extension "ICCRGBG1" + "012" whose sub-blocks hold the
# profile (ICC, "Embedding ICC profiles in GIF files").
_ICC_APP = b"\x0bICCRGBG1012"
_ICC_OPTION = "veil_icc_profile"


class GifHandler(FormatHandler):
    name = "GIF"
    extensions = (".gif",)
    pil_formats = ("GIF",)
    animated = True

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:6] in (b"GIF87a", b"GIF89a")

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        # Frames arrive fully composited, so each one replaces the last whole: disposal 2
        # (restore to background) lets a pixel turn transparent again in a later frame.
        options: dict[str, Any] = {"optimize": False, "disposal": 2}
        if "loop" in im.info:
            options["loop"] = im.info["loop"]
        if getattr(im, "n_frames", 1) == 1 and "duration" in im.info:
            options["duration"] = im.info["duration"]
        icc = _read_icc(source_bytes(im))  # Pillow neither reads nor writes a GIF's profile
        if icc:
            options[_ICC_OPTION] = neutral_icc(icc)
        return options

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_gif(decoded.source)
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        return _exact_palette(pixels) or Image.fromarray(pixels)

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        options = dict(decoded.options)
        icc = options.pop(_ICC_OPTION, None)
        data = super().encode(replace(decoded, options=options), frames)
        if not icc:
            return data
        start = _first_block(data)
        return data[:start] + _icc_extension(icc) + data[start:]


def _exact_palette(pixels: Pixels) -> Image.Image | None:
    """The frame as a palette image holding exactly its colours; None past 256 colours.

    Pillow's RGB(A)-to-palette conversion quantizes even a frame that already fits in a GIF
    palette (which every single-frame GIF does), shifting colours by a few levels.
    """
    height, width = pixels.shape[:2]
    rgb = pixels[..., :3].astype(np.uint32)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3]
        if np.any((alpha != 0) & (alpha != 255)):
            return None  # GIF has no partial transparency; let Pillow decide
        keys[alpha == 0] = _TRANSPARENT_KEY
    colours, indices = np.unique(keys.ravel(), return_inverse=True)
    if len(colours) > _PALETTE_SIZE:
        return None
    im = Image.fromarray(indices.reshape(height, width).astype(np.uint8), "P")
    palette = bytearray()
    for key in colours.tolist():
        palette += bytes((key >> 16 & 255, key >> 8 & 255, key & 255))
    im.putpalette(bytes(palette))
    if colours[-1] == _TRANSPARENT_KEY:
        im.info["transparency"] = len(colours) - 1
    return im


def _first_block(data: bytes) -> int:
    """Offset of the first block after the header, screen descriptor and global colour table."""
    flags = data[10] if len(data) > 10 else 0
    return 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)


def _sub_blocks(data: bytes, position: int) -> tuple[bytes, int]:
    """The joined payload of the sub-blocks at ``position`` and the offset after them."""
    payload = bytearray()
    while position < len(data) and data[position]:
        size = data[position]
        payload += data[position + 1 : position + 1 + size]
        position += 1 + size
    return bytes(payload), position + 1


def strip_gif(data: bytes) -> bytes | None:
    """The GIF with its header, colour tables, images, graphic controls and looping, the ICC
    profile with its date zeroed, and nothing else: comments, plain-text overlays and other
    application extensions go, as does anything after the trailer. None when damaged."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return None
    start = _first_block(data)
    out = [data[:start]]
    position = start
    while position < len(data):
        kind = data[position]
        if kind == _TRAILER:
            return b"".join(out) + b"\x3b"
        if kind == 0x21 and position + 1 < len(data):
            label = data[position + 1]
            end = _sub_blocks(data, position + 2)[1]
            if label == _GRAPHIC_CONTROL:
                out.append(data[position:end])
            elif label == _APPLICATION:
                app = data[position + 3 : position + 14]
                if app in _LOOP_APPS:
                    out.append(data[position:end])
                elif b"\x0b" + app == _ICC_APP:
                    out.append(_icc_extension(neutral_icc(_sub_blocks(data, position + 14)[0])))
            position = end
        elif kind == _IMAGE and position + 10 < len(data):
            flags = data[position + 9]
            table_end = position + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            end = _sub_blocks(data, table_end + 1)[1]
            out.append(data[position:end])
            position = end
        else:
            return None
    return None  # no trailer: truncated


def _read_icc(data: bytes) -> bytes | None:
    """The ICC profile of a GIF file, walking its blocks (GIF89a spec); None when absent."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    position = _first_block(data)
    while position < len(data):
        kind = data[position]
        if kind == 0x21:  # extension: label, then sub-blocks
            if data[position + 1 : position + 2 + len(_ICC_APP)] == b"\xff" + _ICC_APP:
                return _sub_blocks(data, position + 2 + len(_ICC_APP))[0]
            position = _sub_blocks(data, position + 2)[1]
        elif kind == 0x2C and position + 9 < len(data):  # image: descriptor, table, LZW data
            flags = data[position + 9]
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            position = _sub_blocks(data, position + 1)[1]
        else:  # trailer, or damage after the last readable block
            return None
    return None


def _icc_extension(icc: bytes) -> bytes:
    chunks = [icc[i : i + 255] for i in range(0, len(icc), 255)]
    return b"\x21\xff" + _ICC_APP + b"".join(bytes([len(c)]) + c for c in chunks) + b"\x00"
