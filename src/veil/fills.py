"""Telling veil's own grey fills from faces still visible, for `veil scan` of a cleaned file.

The detector's threshold is low on purpose (a missed face costs more than an obscured patch
of wall), so in a cleaned picture it also fires, weakly, on the grey ellipses `Fill` left and
where their edges meet hair or a collar. Each face scan finds is marked:

- ``obscured``: its centre is veil's fill: mid-grey, colourless, a grain with no structure;
- ``edge``: a weak hit reaching into such a fill (the fill's outline against the background);
- ``visible``: anything else, which `veil clean` would obscure.

Only `Fill`, the default, is recognised: `Pixelate` and `Blur` keep the region's coarse
colours, which nothing tells from a picture's own blurry parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from .faces import Faces
from .obscurers import Fill
from .pixels import Pixels
from .result import FaceRecord

Seen = Literal["visible", "obscured", "edge"]
SEEN: tuple[Seen, ...] = ("visible", "obscured", "edge")

# What the centre of a face box must look like to be taken for a fill (`Fill.colour`, with
# `Fill.noise_sigma` of grain), and when a hit beside it is the fill's edge. Measured on 79
# photos of the face set (every tenth), cleaned, saved as PNG and as JPEG (quality 80) and
# searched again: of 1060 and 1105 hits, 322 and 293 are marked obscured and 107 and 102
# edge. Of the 2294 faces found in the originals, none is taken for a fill; with the photos
# turned grey under film grain (sigma 14), 4 are, all 25-27 px. With every other face left
# visible, of the 239 and 248 hits on those faces none is marked obscured and 7 and 1 edge,
# each a sliver of fill between two fills (looked at one by one).
#: Colourless: the grain is the same in every channel (JPEG's and H.264's chroma stay near).
MAX_SPREAD = 12.0
#: Its mean is `Fill.colour`: noise averages out; lossy coding shifts it a level or two.
MAX_MEAN_OFF = 4.0
#: No structure: after a 5x5 average, the grain (sigma 24) leaves a spread of about 5; any
#: face, even under film grain, keeps its eyes, brows and mouth there.
MAX_SMOOTH_SD = 8.0
#: The grain is white: neighbouring pixels differ as much as any two (ratio about 1); in a
#: photo they are alike (about 0.1), so the ratio tells grain from a face's own shading.
MIN_WHITENESS = 0.45
#: Smaller boxes are never taken for a fill: their middle is a few pixels, too few to tell
#: grain from a small grey face under film grain.
MIN_HEIGHT_PX = 20
#: An edge hit: at most this score (a face the detector is sure of is not an artefact), at
#: least this share of its box inside the region of a hit marked obscured (it leans on that
#: fill, not merely near it), and at least this share of its own box on fill-like pixels.
EDGE_MAX_SCORE = 0.5
EDGE_MIN_OVERLAP = 0.5
EDGE_MIN_SHARE = 0.15


@dataclass(frozen=True)
class ScannedFace(FaceRecord):
    """A face `veil scan` found, and whether it is still visible (module docstring)."""

    seen: Seen = "visible"


def _centre(box: npt.NDArray[np.float32], width: int, height: int) -> tuple[slice, slice]:
    """The middle half of ``box`` (each way), clipped to the picture: where a face's eyes,
    nose and mouth are, and the part of a fill farthest from its outline."""
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    w, h = x2 - x1, y2 - y1
    return slice(y1 + h // 4, y2 - h // 4), slice(x1 + w // 4, x2 - w // 4)


def is_fill(pixels: Pixels) -> bool:
    """Whether ``pixels`` (H, W, 3 or grey; at least 6 px each way) look like `Fill`'s."""
    if pixels.shape[0] < 6 or pixels.shape[1] < 6:
        return False
    rgb = np.asarray(pixels, np.float32)
    if rgb.ndim == 3:
        spread = float(np.median(rgb[..., :3].max(axis=2) - rgb[..., :3].min(axis=2)))
        grey = rgb[..., :3].mean(axis=2)
    else:
        spread, grey = 0.0, rgb
    if spread > MAX_SPREAD or abs(float(grey.mean()) - Fill.colour) > MAX_MEAN_OFF:
        return False
    smooth = cv2.blur(grey, (5, 5))[2:-2, 2:-2]
    if float(smooth.std()) > MAX_SMOOTH_SD:
        return False
    steps = np.diff(grey, axis=1)
    whiteness = float(np.mean(steps**2)) / (2 * float(grey.var()) + 1e-3)
    return whiteness >= MIN_WHITENESS


def _fill_share(pixels: Pixels, box: npt.NDArray[np.float32]) -> float:
    """The share of ``box`` on a fill: where 15x15 windows find colourless grain around
    mid-grey."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return 0.0
    pad = 15  # the windows see past the box, as they would in the whole picture
    top, left = max(0, y1 - pad), max(0, x1 - pad)
    crop = np.asarray(pixels[top : min(height, y2 + pad), left : min(width, x2 + pad)], np.float32)
    if crop.ndim == 3:
        spread = crop[..., :3].max(axis=2) - crop[..., :3].min(axis=2)
        grey = crop[..., :3].mean(axis=2)
    else:
        spread, grey = np.zeros_like(crop), crop
    window = (15, 15)
    mean = cv2.blur(grey, window)
    var = np.maximum(cv2.blur(grey * grey, window) - mean * mean, 0)
    steps = np.zeros_like(grey)
    steps[:, 1:] = grey[:, 1:] - grey[:, :-1]
    white = cv2.blur(steps * steps, window) / (2 * var + 1e-3)
    like = (
        (cv2.blur(spread, window) <= MAX_SPREAD)
        & (np.abs(mean - Fill.colour) <= 10)
        & (white >= MIN_WHITENESS)
    )
    # A window that reaches past a fill's outline fails, so the windows found lie half a
    # window inside it: grown back by as much, they cover the fill itself.
    found = (cv2.blur(like.astype(np.float32), window) >= 0.5).astype(np.uint8)
    area = cv2.dilate(found, np.ones(window, np.uint8))
    return float(area[y1 - top : y2 - top, x1 - left : x2 - left].mean())


def judge(
    pixels: Pixels, faces: Faces, regions: npt.NDArray[np.int32], frame: int | None = None
) -> list[ScannedFace]:
    """``faces`` found in ``pixels`` as scan rows, each marked visible, obscured or edge."""
    height, width = pixels.shape[:2]
    boxes = faces.xyxy
    on_fill = [
        bool(box[3] - box[1] >= MIN_HEIGHT_PX and is_fill(pixels[_centre(box, width, height)]))
        for box in boxes
    ]
    # Where veil obscured a face, the fill is the grown region, so a hit on the fill is boxed
    # about the size of the fill, and its region reaches past it, over the fill's edges.
    fills = np.asarray(regions, np.float32)[np.asarray(on_fill, bool)] if len(boxes) else boxes
    rows = []
    for record, box, filled in zip(faces.records(regions, frame), boxes, on_fill, strict=True):
        seen: Seen = "obscured" if filled else "visible"
        if (
            not filled
            and record.score < EDGE_MAX_SCORE
            and _overlap(box, fills) >= EDGE_MIN_OVERLAP
            and _fill_share(pixels, box) >= EDGE_MIN_SHARE
        ):
            seen = "edge"
        rows.append(ScannedFace(**vars(record), seen=seen))
    return rows


def _overlap(box: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> float:
    """The largest share of ``box``'s area inside one of ``others`` (N, 4)."""
    if len(others) == 0:
        return 0.0
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    return float((np.clip(w, 0, None) * np.clip(h, 0, None)).max()) / area


__all__ = ["SEEN", "ScannedFace", "Seen", "is_fill", "judge"]
