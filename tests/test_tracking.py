"""The tracker: which boxes fill the frames where a face was not detected."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import astronaut, textured
from veil.faces import Faces
from veil.tracking import SceneCuts, Tracker


def face(x: float, y: float = 20.0, size: float = 40.0) -> Faces:
    return Faces(np.array([[x, y, x + size, y + size]]), np.array([0.9]))


def run(tracker: Tracker, frames: list[Faces | None], cuts: set[int] = frozenset()) -> None:
    for index, found in enumerate(frames):
        tracker.update(index, found or Faces.empty(), index in cuts)


def test_gap_between_detections_is_interpolated() -> None:
    tracker = Tracker(hold=5)
    run(tracker, [face(0), None, None, None, face(20)])
    for frame, x in [(1, 5), (2, 10), (3, 15)]:
        assert tracker.filled(frame).tolist() == [[x, 20, x + 40, 60]]
    assert len(tracker.filled(0)) == 0 and len(tracker.filled(4)) == 0  # detected there


def test_lost_face_is_held_for_hold_frames_then_released() -> None:
    tracker = Tracker(hold=3)
    run(tracker, [face(100), face(100), None, None, None, None, None])
    for frame in (2, 3, 4):
        assert tracker.filled(frame).tolist() == [[100, 20, 140, 60]]
    assert len(tracker.filled(5)) == 0


def test_held_box_grows_with_the_face_motion() -> None:
    tracker = Tracker(hold=3)
    run(tracker, [face(0), face(10), face(20), None])
    ((x1, _, x2, _),) = tracker.filled(3).tolist()
    assert x1 == 20 and x2 > 60  # covers the last box and where the face was heading


def test_face_is_covered_before_its_first_detection() -> None:
    tracker = Tracker(hold=2)
    run(tracker, [None, None, None, face(50), face(50)])
    assert len(tracker.filled(0)) == 0
    assert tracker.filled(1).tolist() == tracker.filled(2).tolist() == [[50, 20, 90, 60]]


def test_gap_longer_than_hold_is_filled_from_both_ends_only() -> None:
    tracker = Tracker(hold=2)
    run(tracker, [face(0), None, None, None, None, None, face(0)])
    filled = [len(tracker.filled(frame)) for frame in range(7)]
    assert filled == [0, 1, 1, 0, 1, 1, 0]
    assert len(tracker.tracks) == 2  # too far apart to be one track


def test_scene_cut_stops_holding_and_lead_in() -> None:
    tracker = Tracker(hold=5)
    run(tracker, [face(0), face(0), None, None, face(200), None], cuts={2})
    assert [len(tracker.filled(frame)) for frame in range(6)] == [0, 0, 1, 1, 0, 1]
    assert tracker.filled(2).tolist() == [[200, 20, 240, 60]]  # the new shot's face only


def test_two_faces_are_two_tracks() -> None:
    tracker = Tracker(hold=2)
    both = Faces.merge([face(0), face(300)])
    run(tracker, [both, face(0), both])
    assert len(tracker.tracks) == 2
    assert tracker.filled(1).tolist() == [[300, 20, 340, 60]]


def test_frames_become_final_after_hold_more_frames() -> None:
    tracker = Tracker(hold=2)
    run(tracker, [None, None, None])
    assert tracker.final(0) and not tracker.final(1)
    ended = tracker.forget(10)
    assert ended == []


def test_ended_tracks_are_returned_once() -> None:
    tracker = Tracker(hold=1)
    run(tracker, [face(0), None, None, None])
    assert [t.frames for t in tracker.forget(2)] == [[0]]
    assert tracker.forget(3) == []


def test_zero_hold_fills_nothing() -> None:
    tracker = Tracker(hold=0)
    run(tracker, [face(0), None, face(0)])
    assert len(tracker.filled(1)) == 0


def test_frames_must_come_in_order() -> None:
    tracker = Tracker()
    tracker.update(0, Faces.empty())
    with pytest.raises(ValueError, match="in order"):
        tracker.update(2, Faces.empty())


def test_scene_cuts_between_different_pictures_only() -> None:
    cuts = SceneCuts()
    picture = astronaut()
    other = textured(*picture.shape[:2], seed=7)
    shifted = np.roll(picture, 4, axis=1)  # camera moving a little
    assert [cuts.is_cut(p) for p in (picture, shifted, other, other)] == [
        False,
        False,
        True,
        False,
    ]
