"""Faces through time: a tracker that keeps a face obscured in the frames its detector missed.

A detector that finds a face in 98 frames of 100 still publishes it twice, and one frame is
enough to identify someone. `Tracker` links the detections of consecutive frames into tracks
(greedy IoU matching against each track's constant-velocity prediction, as SORT/ByteTrack
do without the Kalman filter's covariances: faces in a clip move slowly against 24-60 fps),
then fills every gap of at most ``hold`` frames:

- between two detections of a track, the box is interpolated linearly;
- after a track's last detection, its last box is held (grown by its recent motion);
- before a track's first detection, its first box is held too: a face that walks into view
  or turns towards the camera is there, badly seen, a few frames before it is detected.

A scene cut ends every track: nothing is held or interpolated across it. The filling looks
``hold`` frames ahead, so a frame's boxes are final once ``hold`` later frames have been
seen (`Tracker.final`); video is written with that delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from .faces import Faces

Box = npt.NDArray[np.float32]

#: Frames a face stays obscured after (and before) its detector lost (or found) it.
DEFAULT_HOLD = 15
# A detection continues a track when it overlaps the track's predicted box this much. Low,
# because a fast head or a detector's jittery box still overlaps; two faces overlapping this
# much are rare, and a wrong link still obscures both places.
_MATCH_IOU = 0.2
# Velocity is smoothed over detections so one jittery box does not fling a held box away.
_VELOCITY_SMOOTHING = 0.5
# Mean grey-level change (0-255) of a 32x18 thumbnail above which two frames are a cut.
# Camera motion and people moving measure 3-20 on the sample clips; hard cuts 40-90.
_CUT_MEAN_DIFF = 35.0
_THUMB = (32, 18)


def iou(a: Box, b: Box) -> npt.NDArray[np.float32]:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): an (N, M) array."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(inter / np.maximum(union, 1e-6), np.float32)


@dataclass
class Track:
    """One face through time: the frames it was detected in and its box in each."""

    number: int
    scene: int
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    #: Box motion per frame (x1, y1, x2, y2), smoothed over the detections.
    velocity: Box = field(default_factory=lambda: np.zeros(4, np.float32))

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def extent(self) -> Box:
        """The box around all its boxes: where it was over its frames (for the report)."""
        boxes = np.stack(self.boxes)
        return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])

    def predict(self, frame: int) -> Box:
        return self.boxes[-1] + self.velocity * (frame - self.last)

    def add(self, frame: int, box: Box, score: float) -> None:
        if self.frames:
            step = (box - self.boxes[-1]) / (frame - self.last)
            self.velocity = (
                _VELOCITY_SMOOTHING * self.velocity + (1 - _VELOCITY_SMOOTHING) * step
            ).astype(np.float32)
        self.frames.append(frame)
        self.boxes.append(box.astype(np.float32))
        self.scores.append(score)

    def fill(self, frame: int, hold: int) -> Box | None:
        """This track's box at ``frame`` where it was not detected; None outside its reach."""
        at = int(np.searchsorted(self.frames, frame))
        if at < len(self.frames) and self.frames[at] == frame:
            return None  # detected there: the detection itself is obscured
        before = at - 1 if at > 0 else None
        after = at if at < len(self.frames) else None
        if before is not None and after is not None:
            # Consecutive detections of one track are at most hold + 1 frames apart.
            start, end = self.frames[before], self.frames[after]
            t = (frame - start) / (end - start)
            return np.asarray((1 - t) * self.boxes[before] + t * self.boxes[after], np.float32)
        if before is not None and frame - self.last <= hold:
            last = self.boxes[-1]
            moved = self.predict(frame)
            return np.concatenate([np.minimum(last, moved)[:2], np.maximum(last, moved)[2:]])
        if after is not None and self.first - frame <= hold:
            return self.boxes[0]
        return None


class SceneCuts:
    """Says whether each new frame starts a new shot (a hard cut), from tiny grey thumbnails."""

    def __init__(self) -> None:
        self._previous: npt.NDArray[np.float32] | None = None

    def is_cut(self, rgb: npt.NDArray[np.uint8]) -> bool:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        thumb = np.asarray(cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA), np.float32)
        previous, self._previous = self._previous, thumb
        return previous is not None and float(np.abs(thumb - previous).mean()) > _CUT_MEAN_DIFF


class Tracker:
    """Links per-frame detections into tracks and fills the frames in between.

    Frames must be given in order (0, 1, 2, ...). ``hold`` is how many missed frames a track
    survives and how far its boxes reach before its first and after its last detection.

    >>> tracker = Tracker(hold=2)
    >>> face = Faces(np.array([[10, 10, 50, 60]]), np.array([0.9]))
    >>> for frame, found in enumerate([face, Faces.empty(), face]):
    ...     tracker.update(frame, found)
    >>> tracker.filled(1).tolist()   # the missed frame between two detections
    [[10.0, 10.0, 50.0, 60.0]]
    """

    def __init__(self, hold: int = DEFAULT_HOLD) -> None:
        if hold < 0:
            raise ValueError(f"hold must be >= 0, got {hold}")
        self.hold = hold
        self.tracks: list[Track] = []
        self._scene = 0
        self._scenes: dict[int, int] = {}  # frame -> scene, for frames not yet forgotten
        self._latest = -1
        self._count = 0

    def update(self, frame: int, faces: Faces, cut: bool = False) -> None:
        """Add frame ``frame``'s detections; ``cut`` says a new shot starts at this frame."""
        if frame != self._latest + 1:
            raise ValueError(f"frames must come in order: got {frame} after {self._latest}")
        self._latest = frame
        if cut:
            self._scene += 1
        self._scenes[frame] = self._scene
        alive = [
            t for t in self.tracks if t.scene == self._scene and frame - t.last <= self.hold + 1
        ]
        unmatched = set(range(len(faces)))
        if alive and len(faces):
            predicted = np.stack([t.predict(frame) for t in alive])
            overlap = iou(predicted, faces.xyxy)
            # Greedy by overlap, best pairs first: enough for the few faces of a frame.
            pairs = np.unravel_index(np.argsort(-overlap, axis=None), overlap.shape)
            for ti, fi in zip(*pairs, strict=True):
                if overlap[ti, fi] < _MATCH_IOU:
                    break
                if fi in unmatched and alive[ti].last != frame:
                    alive[ti].add(frame, faces.xyxy[fi], float(faces.scores[fi]))
                    unmatched.discard(fi)
        for fi in sorted(unmatched):
            track = Track(number=self._count, scene=self._scene)
            self._count += 1
            track.add(frame, faces.xyxy[fi], float(faces.scores[fi]))
            self.tracks.append(track)

    def final(self, frame: int) -> bool:
        """Whether ``frame``'s boxes can no longer change (``hold`` later frames were seen)."""
        return self._latest - frame >= self.hold

    def filled(self, frame: int) -> Box:
        """Boxes (N, 4) to obscure at ``frame`` besides its own detections."""
        scene = self._scenes.get(frame)
        boxes = [
            box
            for t in self.tracks
            if t.scene == scene and t.first - self.hold <= frame <= t.last + self.hold
            for box in [t.fill(frame, self.hold)]
            if box is not None
        ]
        return np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)

    def covered(self, frame: int, faces: Faces) -> Faces:
        """What to obscure at ``frame``: its detections ``faces`` and the boxes the tracks fill
        in, which carry score 0 (no detection there)."""
        filled = self.filled(frame)
        return Faces.merge([faces, Faces(filled, np.zeros(len(filled), np.float32))])

    def forget(self, frame: int) -> list[Track]:
        """Drop what only frames up to ``frame`` needed; returns the tracks that can reach no
        later frame (for the report), all of them once ``frame`` is the last."""
        self._scenes = {f: s for f, s in self._scenes.items() if f > frame}
        ended = [t for t in self.tracks if t.last + self.hold <= frame]
        self.tracks = [t for t in self.tracks if t.last + self.hold > frame]
        return ended
