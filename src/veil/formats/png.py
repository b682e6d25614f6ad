"""PNG and APNG: lossless, so only chunks change; text, eXIf and tIME chunks are not written.

When no pixel changed the file is rewritten chunk by chunk (`strip_png`), keeping the encoded
image data as it was; otherwise Pillow re-encodes it with the same allowlist."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..pixels import Pixels
from .base import Decoded, FormatHandler, open_image
from .deep import merge, read_wide, swap_red_blue
from .metadata import neutral_icc, orientation_exif, orientation_of

# PNG 1.2 stores gamma and chromaticities as unsigned integers times 100000 (sections 4.2.2.1-2).
_PNG_SCALE = 100_000
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks a viewer needs to show the picture as it was (PNG 3rd edition, APNG, HDR): layout,
# palette, transparency, colour space, pixel size and animation. Everything else, known or not
# (tEXt, zTXt, iTXt, eXIf, tIME, private chunks), is left out.
_KEEP = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"cHRM",
        b"gAMA",
        b"sRGB",
        b"sBIT",
        b"cICP",
        b"mDCV",
        b"cLLI",
        b"pHYs",
        b"bKGD",
        b"hIST",
        b"acTL",
        b"fcTL",
        b"fdAT",
    }
)


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

    def encode(self, decoded: Decoded, frames: list[Pixels]) -> bytes:
        # 16 bits a sample stay 16 bits: only the obscured pixels take new values.
        deep = _deep_encode(decoded, frames)
        return deep if deep is not None else super().encode(decoded, frames)

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_png(decoded.source, orientation_of(open_image(decoded.source)))
        if stripped is None:
            return None
        # Same check as JPEG's: the rewritten file must decode to exactly the same frames.
        return stripped if self.same_pixels(stripped, decoded) else None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def strip_png(data: bytes, orientation: int = 1) -> bytes | None:
    """The PNG with only the chunks in `_KEEP`, its ICC profile (date zeroed, under a neutral
    name) and, when it is not 1, an eXIf chunk holding only the orientation. None when the
    chunk structure is damaged, so that the caller re-encodes instead."""
    chunks = _chunks(data) if data.startswith(_SIGNATURE) else []
    if not chunks:
        return None  # damaged, or no IEND: truncated
    out = [_SIGNATURE]
    for kind, chunk in chunks:
        if kind in _KEEP:
            out.append(chunk)
        elif kind == b"iCCP":
            icc = _iccp_chunk(chunk[8:-4])
            if icc is None:
                return None
            out.append(icc)
        if kind == b"IHDR" and orientation != 1:
            out.append(_chunk(b"eXIf", orientation_exif(orientation)))
    return b"".join(out)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk) of each chunk of a PNG up to IEND; [] when the structure is damaged."""
    found, position = [], len(_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            return []
        kind = data[position + 4 : position + 8]
        found.append((kind, data[position:end]))
        if kind == b"IEND":
            return found
        position = end
    return []


def _deep_encode(decoded: Decoded, frames: list[Pixels]) -> bytes | None:
    """A 16-bit PNG with pixels obscured, still 16 bits a sample: the source's samples where
    the picture did not change, the new 8-bit values times 257 where it did, and the source's
    kept chunks (`strip_png`) around the new image data. None where this does not apply (8
    bits, an animation, a palette, a turned picture, nothing changed) or cannot be done."""
    import cv2  # here: most PNGs are 8-bit and never need it

    source = decoded.source
    chunks = _chunks(source)
    ihdr = next((c for k, c in chunks if k == b"IHDR"), b"")
    if len(ihdr) < 25 or ihdr[16] != 16 or len(frames) != 1 or any(k == b"acTL" for k, _ in chunks):
        return None
    if orientation_of(open_image(source)) != 1 or np.array_equal(frames[0], decoded.frames[0]):
        return None
    wide = read_wide(source)
    out = None if wide is None else merge(wide, frames[0], decoded.frames[0])
    if out is None:
        return None
    if out.ndim == 3:  # OpenCV's channel order is BGR(A)
        out = swap_red_blue(out)
    written, encoded = cv2.imencode(".png", out)
    fresh = _chunks(encoded.tobytes()) if written else []
    fresh_ihdr = next((c for k, c in fresh if k == b"IHDR"), b"")
    if fresh_ihdr[8:18] != ihdr[8:18]:  # size, depth and colour type as the source's
        return None
    kept = strip_png(source)
    if kept is None:
        return None
    image = b"".join(c for k, c in fresh if k == b"IDAT")
    # The new IHDR: the source's may say interlaced, which the new image data is not.
    parts = [fresh_ihdr, *(c for k, c in _chunks(kept) if k not in (b"IHDR", b"IDAT", b"IEND"))]
    return _SIGNATURE + b"".join(parts) + image + _chunk(b"IEND", b"")


def _iccp_chunk(payload: bytes) -> bytes | None:
    """iCCP is a name (which can be any text), a compression byte and a deflated profile."""
    name_end = payload.find(b"\x00")
    if not 0 < name_end < 80 or name_end + 2 > len(payload):
        return None
    try:
        profile = zlib.decompress(payload[name_end + 2 :])
    except zlib.error:
        return None
    return _chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(neutral_icc(profile)))


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
