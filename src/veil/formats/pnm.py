"""PNM (Netpbm: PBM, PGM, PPM, plain and raw): no metadata blocks, but ``#`` comments in the
header, where scanners and converters write who made the file, from what and when.

When no pixel changed, the header is written again without its comments and the raster is
copied byte for byte (`strip_pnm`): samples, bit depth and the plain or raw variant stay as
they were. Otherwise Pillow writes the picture (raw, 8 bits a sample).
"""

from __future__ import annotations

import re

from ..errors import VerificationFailed
from ..fields import TEXT, MetaField
from .base import Decoded, FormatHandler

#: Magic number: (channels, has a maxval, raw), P1-P3 plain (ASCII), P4-P6 raw.
_KINDS = {
    b"P1": (1, False, False),
    b"P2": (1, True, False),
    b"P3": (3, True, False),
    b"P4": (1, False, True),
    b"P5": (1, True, True),
    b"P6": (3, True, True),
}
_SPACE = b" \t\r\n\v\f"
_COMMENT = re.compile(rb"#[^\r\n]*")


class PnmHandler(FormatHandler):
    name = "PNM"
    extensions = (".ppm", ".pgm", ".pbm", ".pnm")
    pil_formats = ("PPM",)

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:2] in _KINDS and len(prefix) > 2 and (prefix[2] in _SPACE + b"#")

    def decode(self, data: bytes, max_pixels: int) -> Decoded:
        decoded = super().decode(data, max_pixels)
        header = _header(data)
        comments = header.comments if header is not None else []
        decoded.metadata += [MetaField(TEXT, "PNM comment", c[:80]) for c in comments if c]
        return decoded

    def strip(self, decoded: Decoded) -> bytes | None:
        stripped = strip_pnm(decoded.source)
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def reread(self, data: bytes, decoded: Decoded) -> None:
        super().reread(data, decoded)
        header = _header(data)
        if header is None or header.comments:
            raise VerificationFailed("identifying metadata survived encoding: PNM comment")


class _Header:
    """A PNM header: its fields as written, its comments, where the raster starts."""

    def __init__(self, fields: list[bytes], comments: list[str], end: int) -> None:
        self.fields, self.comments, self.end = fields, comments, end


def _header(data: bytes) -> _Header | None:
    """The header of the first picture in ``data``; None when it is not a whole PNM header."""
    kind = _KINDS.get(data[:2])
    if kind is None:
        return None
    wanted = 4 if kind[1] else 3  # magic, width, height[, maxval]
    fields, comments, at = [data[:2]], [], 2
    while len(fields) < wanted:
        if at >= len(data):
            return None
        if data[at] in _SPACE:
            at += 1
        elif data[at : at + 1] == b"#":
            match = _COMMENT.match(data, at)
            assert match is not None  # "#" always matches
            comments.append(match.group()[1:].decode("latin-1").strip())
            at = match.end()
        else:
            start = at
            while at < len(data) and data[at] not in _SPACE and data[at : at + 1] != b"#":
                at += 1
            if not data[start:at].isdigit():
                return None
            fields.append(data[start:at])
    # One whitespace character ends the header of a raw file; the raster follows.
    if at >= len(data) or data[at] not in _SPACE:
        return None
    return _Header(fields, comments, at + 1)


def strip_pnm(data: bytes) -> bytes | None:
    """``data``'s first picture without its comments: the header written again, the raster
    copied (a raw one cut to its size, so that pictures appended after it go too; a plain one
    without its comments). None when the header or the raster is not whole."""
    header = _header(data)
    if header is None:
        return None
    channels, has_max, raw = _KINDS[header.fields[0]]
    width, height = int(header.fields[1]), int(header.fields[2])
    body = data[header.end :]
    if raw:
        if has_max:
            sample = 1 if int(header.fields[3]) < 256 else 2
            size = width * height * channels * sample
        else:
            size = (width + 7) // 8 * height
        if len(body) < size:
            return None
        body = body[:size]
    else:
        body = _COMMENT.sub(b"", body)
    magic, dimensions, maxval = header.fields[0], b" ".join(header.fields[1:3]), header.fields[3:]
    return b"\n".join([magic, dimensions, *maxval]) + b"\n" + body
