"""JPEG: rewritten segment by segment when no pixel changed; otherwise re-encoded at the
estimated source quality with the source chroma subsampling."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from ..errors import CorruptInput
from ..pixels import Pixels
from .base import DECODE_ERRORS, Decoded, FormatHandler, open_image
from .metadata import neutral_icc, orientation_exif, orientation_of

# The IJG standard luminance table (ITU T.81, Annex K.1) in natural order; libjpeg scales it
# by quality, which is what lets us read the quality back.
_STD_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.float64,
)
_DEFAULT_QUALITY = 90  # when the tables are missing: err on the side of fidelity


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_STD_LUMA * scale + 50) / 100), 1, 255)


def estimate_quality(qtables: dict[int, Any] | None) -> int:
    """The IJG quality (1-100) whose luminance table is closest to the file's.

    Compared as table sums, which does not depend on zig-zag or natural order. Tables not
    made by libjpeg (some cameras) land on the nearest quality by the same measure.

    >>> estimate_quality({0: list(_ijg_table(75).astype(int))})
    75
    """
    if not qtables or 0 not in qtables:
        return _DEFAULT_QUALITY
    total = float(np.sum(np.asarray(list(qtables[0]), dtype=np.float64)))
    return min(_TABLE_SUMS, key=lambda q: (abs(_TABLE_SUMS[q] - total), -q))


# Computed once: rebuilding 100 tables per photo cost 1.4 ms, 5% of a small photo's cleaning.
_TABLE_SUMS = {q: float(_ijg_table(q).sum()) for q in range(1, 101)}


# Segments a decoder needs (ITU T.81 table B.1): frame headers SOF0-15 (C4, C8 and CC are
# other markers), Huffman and quantization tables, arithmetic-coding conditioning, restart
# interval, number of lines, and Adobe's APP14 colour transform (CMYK and YCCK files).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_DHT, _DAC, _DQT, _DNL, _DRI, _SOS, _EOI = 0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xDA, 0xD9
_TABLES = _SOF | {_DHT, _DAC, _DQT, _DNL, _DRI}
_APP0, _APP2, _APP14 = 0xE0, 0xE2, 0xEE
_ICC_TAG = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65_519  # 65,535 minus the length field, ICC_TAG and sequence bytes


def strip_jpeg(data: bytes, orientation: int = 1) -> bytes | None:
    """The JPEG with only what a decoder needs: tables, frame and scans, a JFIF header without
    its thumbnail, the ICC profile (date zeroed), Adobe's colour transform and, when it is not
    1, the orientation as the only tag of an EXIF block.

    EXIF, XMP, IPTC, comments, maker APPn segments, MPF and anything after the end-of-image
    marker (MPO secondary pictures, vendor trailers) are dropped. None when the file is not
    well formed enough to walk, so that the caller re-encodes it instead.
    """
    if data[:2] != b"\xff\xd8":
        return None
    jfif = b""
    icc: dict[int, bytes] = {}
    body: list[bytes] = []
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:  # bytes outside any segment: skip them, as libjpeg does
            position = data.find(b"\xff", position)
            if position < 0:
                return None
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            icc_segments = _icc_segments(icc)
            if icc_segments is None:
                return None
            exif = _orientation_segment(orientation)
            return b"".join([b"\xff\xd8", jfif, exif, *icc_segments, *body, b"\xff\xd9"])
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if end > len(data) or end < position + 4:
            return None
        payload = data[position + 4 : end]
        if marker == _SOS:  # scan header, then entropy-coded data up to the next marker
            end = _entropy_end(data, end)
            body.append(data[position:end])
        elif marker in _TABLES:
            body.append(data[position:end])
        elif marker == _APP14 and payload.startswith(b"Adobe") and len(payload) >= 12:
            body.append(b"\xff\xee\x00\x0e" + payload[:12])  # its fixed fields only
        elif marker == _APP0 and payload.startswith(b"JFIF\x00") and len(payload) >= 12:
            jfif = b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00"  # no thumbnail
        elif marker == _APP2 and payload.startswith(_ICC_TAG) and len(payload) > 14:
            icc[payload[12]] = payload[14:]
        position = end
    return None  # no end-of-image marker: truncated


def _orientation_segment(orientation: int) -> bytes:
    if orientation == 1:
        return b""
    payload = b"Exif\x00\x00" + orientation_exif(orientation)
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _entropy_end(data: bytes, position: int) -> int:
    """Offset of the first marker after entropy-coded data (0xFF00 is a stuffed 0xFF byte,
    0xFFD0-D7 are restart markers inside the scan)."""
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return position
        position += 2


def _icc_segments(chunks: dict[int, bytes]) -> list[bytes] | None:
    """APP2 segments for the profile reassembled from ``chunks`` (ICC.1 annex B.4)."""
    if not chunks:
        return []
    if sorted(chunks) != list(range(1, len(chunks) + 1)):
        return None  # a chunk is missing: let the re-encoder decide what Pillow made of it
    profile = neutral_icc(b"".join(chunks[i] for i in sorted(chunks)))
    parts = [profile[i : i + _ICC_CHUNK] for i in range(0, len(profile), _ICC_CHUNK)]
    return [
        b"\xff\xe2"
        + (len(part) + 16).to_bytes(2, "big")
        + _ICC_TAG
        + bytes([number, len(parts)])
        + part
        for number, part in enumerate(parts, start=1)
    ]


class JpegHandler(FormatHandler):
    name = "JPEG"
    extensions = (".jpg", ".jpeg", ".jpe", ".jfif")
    pil_formats = ("JPEG", "MPO")

    @classmethod
    def accept(cls, prefix: bytes) -> bool:
        return prefix[:3] == b"\xff\xd8\xff"

    def encode_options(self, im: Image.Image) -> dict[str, Any]:
        options = super().encode_options(im)
        options["quality"] = estimate_quality(getattr(im, "quantization", None))
        # Keep 4:4:4 / 4:2:2 / 4:2:0 as the camera chose; -1 means "not a 3-component JPEG".
        sampling = JpegImagePlugin.get_sampling(im)
        if sampling != -1:
            options["subsampling"] = sampling
        if im.info.get("progressive") or im.info.get("progression"):
            options["progressive"] = True
        return options

    def strip(self, decoded: Decoded) -> bytes | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self._strip(decoded)
        except (CorruptInput, *DECODE_ERRORS):
            return None

    def _strip(self, decoded: Decoded) -> bytes | None:
        # A rotated photo keeps its orientation tag alone: turning the pixels instead would
        # mean re-encoding, which changes them.
        stripped = strip_jpeg(decoded.source, orientation_of(open_image(decoded.source)))
        return stripped if stripped is not None and self.same_pixels(stripped, decoded) else None

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        im = super().to_pil(pixels, decoded)
        if decoded.mode == "CMYK":
            return im.convert("CMYK")
        mode = "L" if im.mode in ("L", "LA") else "RGB"
        return im if im.mode == mode else im.convert(mode)  # a copy only where one is needed
