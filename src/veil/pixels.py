"""The pixel array every part of veil passes around: upright, uint8, grey, RGB or RGBA."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Height x width (grey) or height x width x 3 or 4 (RGB, RGBA), uint8, already upright.
Pixels = npt.NDArray[np.uint8]


def rgb_view(pixels: Pixels) -> Pixels:
    """Three contiguous colour channels of a grey, RGB or RGBA frame (what detectors take)."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])
