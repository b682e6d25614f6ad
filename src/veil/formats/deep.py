"""16 bits a sample kept through obscuring (PNG, TIFF).

Faces are found and obscured on 8-bit frames, so a 16-bit still would come out 8-bit: every
sample of the picture would lose its low byte. Instead the source is read again at full
depth and only the pixels the 8-bit picture changed take new samples (`merge`); the format
handler then writes the result with its own container.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..pixels import Pixels

#: Height x width (grey) or height x width x 3 or 4 (RGB, RGBA), uint16, as stored.
Wide = npt.NDArray[np.uint16]
# An 8-bit value v widened so that its top byte is v again and 0 and 255 stay the ends of
# the range: v * 257 (v in both bytes).
_WIDEN = 257


def read_wide(data: bytes) -> Wide | None:
    """The first picture of an encoded PNG or TIFF at full depth, channels in RGB(A) order, as
    stored (no orientation applied); None unless it is 16-bit unsigned grey, RGB or RGBA."""
    import cv2  # here: most pictures are 8-bit and never need it

    try:
        wide = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if wide is None or wide.dtype != np.uint16:
        return None
    if wide.ndim == 3:
        if wide.shape[2] not in (3, 4):
            return None
        return swap_red_blue(wide)
    return wide if wide.ndim == 2 else None


def swap_red_blue(wide: Wide) -> Wide:
    """RGB(A) to OpenCV's BGR(A) order, or back: the same swap either way."""
    swapped: Wide = wide[..., [2, 1, 0, *range(3, wide.shape[2])]]  # a new, contiguous array
    return swapped


def merge(wide: Wide, new: Pixels, old: Pixels) -> Wide | None:
    """The source's samples ``wide`` where the 8-bit picture did not change (``new`` equal
    to ``old`` in every channel), the new 8-bit values times 257 where it did.

    A whole pixel is replaced, alpha included, when any of its channels changed: keeping a
    channel's low byte inside an obscured face would keep a trace of the face. Grey given as
    RGB (the decoders widen grey to RGB, the obscurers paint in colour) is merged as grey
    when the new picture is still grey. None where the shapes do not fit (e.g. grey with
    alpha, given as RGBA) or the picture turned colour.
    """
    if wide.ndim == 2 and new.ndim == 3:
        if not (new == new[..., :1]).all():
            return None
        new, old = new[..., 0], old[..., 0]
    if new.shape != wide.shape or old.shape != new.shape:
        return None
    changed = new != old
    if changed.ndim == 3:
        changed = changed.any(axis=2)
    out = wide.copy()
    out[changed] = new[changed].astype(np.uint16) * _WIDEN
    return out
