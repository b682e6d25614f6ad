"""Face detectors. Each loads its model once and answers ``detect(rgb) -> Faces``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..faces import Faces


class Detector(Protocol):
    """What the pipeline needs of a detector."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> Faces: ...


def nms(
    xyxy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float
) -> npt.NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        iy1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        ix2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        iy2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-6)
        order = rest[overlap < iou]
    return np.asarray(keep, dtype=np.intp)


@dataclass(frozen=True)
class Strategy:
    """Which passes of the detector run over one image, and from which score a face counts.

    Every field is justified by a row of the face benchmark (docs/benchmarks.md).
    """

    #: Image scale of each pass: 1 is full resolution, 0.5 half size (large faces, whose
    #: scores drop at full resolution), 2 double size (faces a few pixels tall).
    scales: tuple[float, ...] = (1.0,)
    #: Also run the full-resolution pass on the mirror image (batched with it).
    flip: bool = False
    #: Heatmap score above which a detection is kept.
    threshold: float = 0.2
    #: Video: frames are shrunk to this long side before the passes (every frame is a
    #: detection, so video trades some reach on small faces for speed; the tracker fills the
    #: frames where a face was missed). Photos are always detected at full resolution.
    video_side: int = 960


#: Detection presets (``--preset``), chosen on the face benchmark (coverage of faces >= 16 /
#: >= 32 px, median image share obscured outside faces; docs/benchmarks.md has the full runs).
#: Threshold is the strongest lever: 0.1 instead of 0.2 lifts faces >= 16 px from 98.0% to
#: 99.4% at no cost in time. A half-size pass rescues large faces whose score drops at full
#: resolution (>= 32 px: 99.3% to 99.7%); mirrored and 2x passes rescue faces under 16 px
#: (84% to 97%) at about 5x the time. Weighted box fusion and score voting measured no better
#: than NMS, so NMS it is. ``fast`` is one pass at three-quarter size: against one full-size
#: pass at 0.15 it protects more faces >= 16 px (98.8% against 98.3%) in 20% less time, the
#: lower threshold making up for the smaller faces.
PRESETS: dict[str, Strategy] = {
    "fast": Strategy(scales=(0.75,), threshold=0.1, video_side=640),
    "balanced": Strategy(scales=(1.0, 0.5), threshold=0.1, video_side=960),
    "thorough": Strategy(scales=(1.0, 0.5, 2.0), flip=True, threshold=0.1, video_side=1920),
}


def default_detector(strategy: Strategy, threads: int | None = None) -> Detector:
    from .centerface import CenterFace

    return CenterFace(strategy, threads=threads)


__all__ = ["PRESETS", "Detector", "Strategy", "default_detector", "nms"]
