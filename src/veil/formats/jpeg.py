"""JPEG: re-encoded at the estimated source quality with the source chroma subsampling."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from .base import Decoded, FormatHandler, Pixels

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
    sums = {q: float(_ijg_table(q).sum()) for q in range(1, 101)}
    return min(sums, key=lambda q: (abs(sums[q] - total), -q))


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

    def to_pil(self, pixels: Pixels, decoded: Decoded) -> Image.Image:
        im = super().to_pil(pixels, decoded)
        if decoded.mode == "CMYK":
            return im.convert("CMYK")
        return im.convert("L") if im.mode in ("L", "LA") else im.convert("RGB")
