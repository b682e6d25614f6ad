"""Face detectors. Each loads its model once and answers ``detect(rgb) -> Faces``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from ..faces import Faces


class Detector(Protocol):
    """What the pipeline needs of a detector: the faces in an RGB uint8 image of shape
    (H, W, 3), found by its own `Strategy` or, when one is given, by that one (the verifier's
    second pass). A detector takes what of a strategy it can use (its scales,
    threshold) and ignores the rest."""

    def detect(self, rgb: npt.NDArray[np.uint8], strategy: Strategy | None = None) -> Faces: ...


def nms(
    xyxy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float
) -> npt.NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first: a box goes when it
    overlaps a better one by more than ``iou``. OpenCV's loop, 20x faster than one in numpy
    on the few hundred low-score boxes of a crowd's candidate pass."""
    if len(scores) == 0:
        return np.zeros(0, np.intp)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    ranked = np.maximum(scores.astype(np.float64), 1e-9)  # OpenCV keeps scores above 0 only
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), ranked.tolist(), 0.0, iou)
    return np.asarray(kept, dtype=np.intp).reshape(-1)


@dataclass(frozen=True)
class Strategy:
    """Which passes of the detector run over one image, and from which score a face counts.

    Every field is justified by a row of the face benchmark (docs/benchmarks.md).
    """

    #: Image scale of each whole-image pass: 1 is full resolution, 0.5 half size (large
    #: faces, whose scores drop at full resolution), 2 double size (faces a few pixels tall).
    scales: tuple[float, ...] = (1.0,)
    #: Enlargements of the zoom passes: only the areas where the full-resolution pass sees
    #: small face-like responses are enlarged (all of a crowd, none of a portrait). Needs 1.0
    #: among ``scales``; photos only (video frames are searched by ``scales``).
    zoom: tuple[float, ...] = ()
    #: Also run each zoom pass on its mirror image (batched with it).
    flip: bool = False
    #: Heatmap score above which a detection is kept.
    threshold: float = 0.2
    #: The same for the zoom passes.
    zoom_threshold: float = 0.08
    #: Video: frames are shrunk to this long side before the passes (every frame is a
    #: detection, so video trades some reach on small faces for speed; the tracker fills the
    #: frames where a face was missed). Photos are always detected at full resolution.
    video_side: int = 960


#: Detection presets (``--preset``), chosen on the face benchmark and its crowd-scale views
#: (the photos at 1/2 and 1/3 size; docs/benchmarks.md has the runs). Threshold is the
#: strongest single lever: 0.1 instead of 0.2 lifts faces >= 16 px from 98.0% to 99.4% at no
#: cost in time. A half-size pass rescues large faces whose score drops at full resolution.
#: Zoom passes enlarge only crowd areas: balanced's 2x zoom takes faces under 16 px from 84% to
#: 97% at full size and from 52% to 84% at 1/3 size, for a quarter of the picture enlarged on
#: average; thorough adds its mirror image and a lower zoom threshold (89% at 1/3 size). Weighted
#: box fusion and score voting measured no better than NMS, so NMS it is. ``fast`` is one
#: full-size pass: through the int8 model it costs what the old three-quarter-size fp32 pass
#: cost, and it does not shrink small photos, where the old one lost a quarter of the faces
#: >= 16 px at 1/3 size (75% protected against deface's 95%).
PRESETS: dict[str, Strategy] = {
    "fast": Strategy(scales=(1.0,), threshold=0.1, video_side=640),
    "balanced": Strategy(scales=(1.0, 0.5), zoom=(2.0,), threshold=0.1, video_side=960),
    "thorough": Strategy(
        scales=(1.0, 0.5),
        zoom=(2.0,),
        flip=True,
        threshold=0.1,
        zoom_threshold=0.06,
        video_side=1920,
    ),
}


def _centerface(strategy: Strategy, threads: int | None) -> Detector:
    from .centerface import CenterFace  # onnxruntime is imported only when a detector is made

    return CenterFace(strategy, threads=threads)


#: Every detector veil can run, by name, each made from a strategy and a thread count. A new
#: detector is one module and one line here; tests/detectors/test_detector_contract.py then
#: holds it to what the pipeline, the video cleaner and the verifier expect of one.
DETECTORS: dict[str, Callable[[Strategy, int | None], Detector]] = {"centerface": _centerface}
DEFAULT_DETECTOR = "centerface"


def default_detector(
    strategy: Strategy, threads: int | None = None, name: str = DEFAULT_DETECTOR
) -> Detector:
    """The detector ``name`` (`DETECTORS`), loaded for ``strategy``."""
    return DETECTORS[name](strategy, threads)


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "PRESETS",
    "Detector",
    "Strategy",
    "default_detector",
    "nms",
]
