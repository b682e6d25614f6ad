"""Face detectors. Each loads its model once and answers ``detect(rgb) -> Faces``."""

from __future__ import annotations

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


def default_detector(threshold: float, threads: int | None = None) -> Detector:
    from .centerface import CenterFace

    return CenterFace(threshold=threshold, threads=threads)


__all__ = ["Detector", "default_detector", "nms"]
