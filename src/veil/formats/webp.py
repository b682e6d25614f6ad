"""WebP: lossless stays lossless; lossy is re-encoded at a high fixed quality because the
container does not record the quality it was made with. When no pixel changed, the RIFF
container is rewritten chunk by chunk instead (`strip_webp`), image data untouched."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import Decoded, FormatHandler, open_image, source_bytes
from .metadata import neutral_icc, orientation_exif, orientation_of

LOSSY_QUALITY = 90
# Chunks of the WebP container spec a viewer needs: the extended header, colour profile,
# animation header and frames, alpha and the bitstreams. EXIF, XMP and unknown chunks go.
_KEEP = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})
# VP8X flag bits (byte 0 of its payload).
_ICC_FLAG, _EXIF_FLAG, _XMP_FLAG = 0x20, 0x08, 0x04


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

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_webp(decoded.source, orientation_of(open_image(decoded.source)))
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(fourcc, payload) of each top-level chunk; None when the structure is damaged."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    chunks = []
    position = 12
    while position + 8 <= end:
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        stop = position + 8 + size
        if stop > end:
            return None
        chunks.append((data[position : position + 4], data[position + 8 : stop]))
        position = stop + (size & 1)
    return chunks


def strip_webp(data: bytes, orientation: int = 1) -> bytes | None:
    """The WebP with only the chunks in `_KEEP` (ICC date zeroed), the VP8X flags telling the
    truth about what is left and, when it is not 1, an EXIF chunk holding only the orientation.
    None when the container is damaged, or when an orientation would need a VP8X header the
    file does not have (only an extended file can carry EXIF; one never lacked it validly)."""
    chunks = _riff_chunks(data)
    if chunks is None:
        return None
    kept = [(fourcc, payload) for fourcc, payload in chunks if fourcc in _KEEP]
    extended = bool(kept) and kept[0][0] == b"VP8X" and len(kept[0][1]) >= 10
    if orientation != 1 and not extended:
        return None
    body = []
    for fourcc, payload in kept:
        if fourcc == b"VP8X":
            flags = payload[0] & ~(_EXIF_FLAG | _XMP_FLAG | _ICC_FLAG)
            if any(f == b"ICCP" for f, _ in kept):
                flags |= _ICC_FLAG
            if orientation != 1:
                flags |= _EXIF_FLAG
            payload = bytes([flags]) + payload[1:]
        elif fourcc == b"ICCP":
            payload = neutral_icc(payload)
        body.append(_riff_chunk(fourcc, payload))
    if orientation != 1:  # the spec puts EXIF after the image data
        body.append(_riff_chunk(b"EXIF", orientation_exif(orientation)))
    content = b"WEBP" + b"".join(body)
    return b"RIFF" + len(content).to_bytes(4, "little") + content


def _riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    padding = b"\x00" if len(payload) & 1 else b""
    return fourcc + len(payload).to_bytes(4, "little") + payload + padding


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
