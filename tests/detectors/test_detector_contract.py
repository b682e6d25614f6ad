"""What every registered face detector must do (`veil.detectors.DETECTORS`): a new detector is
one module and one registration line, and these tests run it without being told about it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import av
import numpy as np
import pytest

from helpers import ASTRONAUT_FACE, astronaut, backdrop
from veil.detectors import DEFAULT_DETECTOR, DETECTORS, PRESETS, Detector, default_detector
from veil.faces import Faces
from veil.pipeline import Pipeline
from veil.settings import Settings
from veil.tracking import iou


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def detector(request: pytest.FixtureRequest) -> Iterator[Detector]:
    yield default_detector(PRESETS["balanced"], threads=1, name=request.param)


def _one_face(found: Faces, box: tuple[int, int, int, int], width: int) -> None:
    assert len(found) == 1, found.xyxy
    assert iou(found.xyxy[:1], np.array([box], np.float32))[0, 0] > 0.4
    x1, y1, x2, y2 = found.xyxy[0].tolist()
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2


def test_the_default_is_registered() -> None:
    assert DEFAULT_DETECTOR in DETECTORS


def test_finds_a_face_where_it_is_and_nothing_on_a_bare_wall(detector: Detector) -> None:
    _one_face(detector.detect(astronaut()), ASTRONAUT_FACE, 512)
    assert len(detector.detect(backdrop(480, 640))) == 0
    found = detector.detect(astronaut())
    assert found.scores.dtype == np.float32 and ((found.scores > 0) & (found.scores <= 1)).all()


def test_same_image_same_faces(detector: Detector) -> None:
    first, second = detector.detect(astronaut()), detector.detect(astronaut())
    np.testing.assert_array_equal(first.xyxy, second.xyxy)


def test_a_given_strategy_is_followed(detector: Detector) -> None:
    """The verifier's second pass gives its own strategy: its passes and threshold count."""
    whole = detector.detect(astronaut(), replace(PRESETS["balanced"], zoom=()))
    _one_face(whole, ASTRONAUT_FACE, 512)
    picky = replace(PRESETS["balanced"], threshold=0.999, zoom_threshold=0.999)
    assert len(detector.detect(astronaut(), picky)) == 0


def test_odd_sizes(detector: Detector) -> None:
    """Tiny, one-pixel-wide and non-contiguous images: answered, not raised."""
    for image in (astronaut()[:7, :9], astronaut()[:, :1], astronaut()[:, ::-1]):
        assert len(detector.detect(image)) <= 1


def test_the_pipeline_and_the_video_cleaner_run_it(detector: Detector) -> None:
    """The doors reach a detector only through `Pipeline` (photos) and `VideoCleaner` (frames)."""
    pipe = Pipeline(Settings(), detector=detector)
    cleaned = pipe.clean_array(astronaut())
    assert len(cleaned.faces) == 1
    frame = av.VideoFrame.from_ndarray(astronaut(), format="rgb24")
    _one_face(pipe.video.detect(frame), ASTRONAUT_FACE, 512)
