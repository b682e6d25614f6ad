"""Proof of protection: an independent check of what an output still gives away.

Three questions per output (``veil verify``, ``veil clean --verify``):

1. Is there a face the cleaning did not obscure? A second opinion (dlib's HOG detector and a
   CenterFace pass at a scale no preset uses) looks for faces in the output.
2. Can a recognizer still tell who it is? At every face the cleaning found, and at every face
   the second opinion finds, dlib's ResNet recognizer compares the output with the original at
   the same place, aligned with the original's landmarks. Closer than dlib's 0.6, and closer
   than the same place blanked grey by `BLANK_MARGIN`, is a leak.
3. Is identifying metadata left? The output's metadata is read again from its bytes.

The second opinion cannot see every face (`beyond_reach`: faces under `JUDGE_MIN_PX`, or
turned away and under `JUDGE_MIN_TURNED_PX`). Where the cleaning found such faces, one it
missed beside them would go unseen too, so the verdict is then ``unconfirmed``, not
``protected``, and ``unjudged`` counts them.

The recognizer is the expensive part (about 4 ms per crop), so it runs only where the output
still correlates with the original (|r| >= `CORRELATION_GATE` at 16 or 48 px across). A crop
that correlates with nothing (veil's grey fill) keeps nothing a recognizer could use; a crop
that is merely darkened, inverted, blurred or pixelated correlates strongly and is compared.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from ..detectors.centerface import CenterFace
from ..faces import Faces
from ..fields import MetaField
from ..pixels import Pixels, rgb_view
from ..result import Leak, Verdict, Verification
from ..tracking import iou
from .models import (
    INSTALL_HINT,
    JUDGE_MIN_PX,
    JUDGE_MIN_TURNED_PX,
    Recognizer,
    SecondOpinion,
    VerifyUnavailable,
    beyond_reach,
)

#: Below this absolute correlation at both sizes, a crop of the output is taken to keep
#: nothing of the original. Independent noise over a 16x16 grid exceeds it with odds under
#: 1 in 10^4 (4 standard deviations); on faces of at least 16 px of the face set, veil's fill
#: has a median of 0.05 (0.8% of faces reach the gate: the edges of clipped regions), its
#: pixelate 0.54 and blur 0.57 (85% reach it), a 5x5 blur about 1.
CORRELATION_GATE = 0.25
#: The output must also be this much nearer the original than a blank is (see
#: `Recognizer.distances`): a grey blank over a 20 px face in a crowd can itself come out
#: under 0.6, from the hair and surroundings the two share.
BLANK_MARGIN = 0.1
#: A second-opinion face that overlaps a face the cleaning found this much is the same face.
SAME_FACE_IOU = 0.5
_GATE_SIZES = (16, 48)


def _luma(rgb: Pixels) -> npt.NDArray[np.float32]:
    return np.asarray(rgb[..., :3], np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def correlation(original: Pixels, output: Pixels) -> float:
    """The largest absolute Pearson correlation of two same-sized crops' brightness, compared
    at 16 and 48 px across (or their own size, if smaller); 0 where either is flat."""
    a, b = _luma(original), _luma(output)
    height, width = a.shape
    best = 0.0
    for size in _GATE_SIZES:
        dims = (min(size, width), min(size, height))
        x = cv2.resize(a, dims, interpolation=cv2.INTER_AREA).ravel()
        y = cv2.resize(b, dims, interpolation=cv2.INTER_AREA).ravel()
        x, y = x - x.mean(), y - y.mean()
        norm = float(np.sqrt((x @ x) * (y @ y)))
        if norm > 1e-6:
            best = max(best, abs(float(x @ y)) / norm)
    return best


def _centres_inside(faces: Faces, regions: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """For each face, whether its box centre lies in any of ``regions``."""
    cx = (faces.xyxy[:, 0] + faces.xyxy[:, 2])[:, None] / 2
    cy = (faces.xyxy[:, 1] + faces.xyxy[:, 3])[:, None] / 2
    x1, y1, x2, y2 = (regions[:, i][None, :] for i in range(4))
    inside = (x1 <= cx) & (cx <= x2) & (y1 <= cy) & (cy <= y2)
    return np.asarray(inside.any(axis=1), np.bool_)


class Verifier:
    """Loads the second opinion and the recognizer once; `check` one output at a time."""

    def __init__(self, threads: int | None = None, centerface: CenterFace | None = None) -> None:
        self.second_opinion = SecondOpinion(threads, centerface)
        self.recognizer = Recognizer(threads)

    def check(
        self,
        originals: list[Pixels],
        outputs: list[Pixels],
        found: list[Faces],
        metadata_left: list[MetaField],
        shown: Faces | None = None,
    ) -> Verification:
        """Compare each output frame with its original. ``found`` holds, per frame, the faces
        the cleaning found (what it meant to obscure); ``metadata_left`` is what a re-read of
        the output's bytes still finds; ``shown``: faces a person chose to leave visible."""
        numbers = range(len(originals)) if len(originals) > 1 else [None]
        frames = zip(numbers, originals, outputs, found, strict=True)
        return self.check_frames(frames, metadata_left, shown)

    def check_frames(
        self,
        frames: Iterable[tuple[int | None, Pixels, Pixels, Faces]],
        metadata_left: list[MetaField],
        shown: Faces | None = None,
    ) -> Verification:
        """`check` over (frame number, original, output, faces found) taken one at a time, so
        that a video's frames need not all be in memory."""
        leaks: list[Leak] = []
        checked = recognized = unjudged = 0
        for frame, original, output, faces in frames:
            rgb = rgb_view(output)
            boxes, sources = self._places(rgb, faces, shown)
            checked += len(boxes)
            frame_leaks, runs = self._compare(rgb_view(original), rgb, boxes, sources, frame)
            leaks += frame_leaks
            recognized += runs
            # The most in one frame: a video's face is in many of the checked frames.
            unjudged = max(unjudged, int(beyond_reach(faces).sum()))
        if metadata_left:
            names = sorted({f.name for f in metadata_left})
            leaks.append(Leak("metadata", "still in the file: " + ", ".join(names)))
        verdict: Verdict = "leak" if leaks else ("unconfirmed" if unjudged else "protected")
        return Verification(verdict, leaks, checked, recognized, unjudged)

    def _places(
        self, output: Pixels, faces: Faces, shown: Faces | None
    ) -> tuple[npt.NDArray[np.float32], list[str]]:
        """Boxes to check: the cleaning's faces, then the second opinion's new ones, except
        those that are a face left visible on purpose (centre inside its grown region)."""
        second = self.second_opinion.detect(output)
        if len(faces) and len(second):
            second = second[iou(second.xyxy, faces.xyxy).max(axis=1) < SAME_FACE_IOU]
        if shown is not None and len(shown) and len(second):
            second = second[~_centres_inside(second, shown.regions(*output.shape[1::-1]))]
        boxes = np.concatenate([faces.xyxy, second.xyxy]).reshape(-1, 4)
        sources = ["a face the cleaning found"] * len(faces)
        sources += ["a face the second detector found in the output"] * len(second)
        return boxes, sources

    def _compare(
        self,
        original: Pixels,
        output: Pixels,
        boxes: npt.NDArray[np.float32],
        sources: list[str],
        frame: int | None,
    ) -> tuple[list[Leak], int]:
        ints = np.round(boxes).astype(int)
        keep = [
            i
            for i, (x1, y1, x2, y2) in enumerate(ints.tolist())
            if x2 - x1 >= 2
            and y2 - y1 >= 2  # narrower than that is no face anyone sees
            and correlation(original[y1:y2, x1:x2], output[y1:y2, x1:x2]) >= CORRELATION_GATE
        ]
        to_output, to_blank = self.recognizer.distances(original, output, boxes[keep])
        leaks = []
        for i, distance, blank in zip(keep, to_output.tolist(), to_blank.tolist(), strict=True):
            if distance >= Recognizer.SAME_PERSON or distance > blank - BLANK_MARGIN:
                continue
            x1, y1, x2, y2 = ints[i].tolist()
            untouched = np.array_equal(original[y1:y2, x1:x2], output[y1:y2, x1:x2])
            what = "not obscured at all" if untouched else "still recognisable"
            leaks.append(
                Leak(
                    "face",
                    f"{sources[i]}, {what}: recognizer distance {distance:.2f} to the original "
                    f"(same person under {Recognizer.SAME_PERSON}; a blank there: {blank:.2f})",
                    frame,
                    [x1, y1, x2, y2],
                )
            )
        return leaks, len(keep)


__all__ = [
    "CORRELATION_GATE",
    "INSTALL_HINT",
    "JUDGE_MIN_PX",
    "JUDGE_MIN_TURNED_PX",
    "Verifier",
    "VerifyUnavailable",
    "beyond_reach",
    "correlation",
]
