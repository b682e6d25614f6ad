"""Detection strategy: presets, passes (scales, mirror, tiles, reduced), threshold override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import veil
from helpers import ASTRONAUT_FACE, astronaut
from veil.detectors import PRESETS, Strategy
from veil.detectors.centerface import CenterFace, _resized
from veil.errors import UsageError
from veil.faces import Faces


@pytest.fixture(scope="module")
def detectors() -> dict[str, CenterFace]:
    return {name: CenterFace(strategy) for name, strategy in PRESETS.items()}


def _covers(faces: Faces, box: tuple[int, int, int, int], dx: int = 0, dy: int = 0) -> bool:
    x1, y1, x2, y2 = box
    return any(
        b[0] <= x1 + dx and b[1] <= y1 + dy and b[2] >= x2 + dx and b[3] >= y2 + dy
        for b, _ in faces
    ) or any(  # or at least overlaps it by most of its area
        (min(b[2], x2 + dx) - max(b[0], x1 + dx)) * (min(b[3], y2 + dy) - max(b[1], y1 + dy))
        > 0.5 * (x2 - x1) * (y2 - y1)
        for b, _ in faces
    )


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_finds_the_face(preset: str, detectors: dict[str, CenterFace]) -> None:
    faces = detectors[preset].detect(astronaut())
    assert _covers(faces, ASTRONAUT_FACE)
    assert (faces.scores >= PRESETS[preset].threshold).all()


def test_presets_are_ordered_by_effort() -> None:
    fast, balanced, thorough = (PRESETS[n] for n in ("fast", "balanced", "thorough"))
    assert fast.threshold >= balanced.threshold >= thorough.threshold
    assert len(thorough.scales) + thorough.flip > len(balanced.scales) + balanced.flip


def test_mirrored_pass_maps_boxes_back(detectors: dict[str, CenterFace]) -> None:
    """A face found only through the mirror image must land where the face is, not mirrored."""
    image = np.zeros((512, 1024, 3), np.uint8)
    image[:, 512:] = astronaut()  # the face sits in the right half
    mirror_only = CenterFace(Strategy(scales=(1.0,), flip=True))
    found = mirror_only._pass(image, flip=True, threshold=mirror_only.threshold)
    assert _covers(found, ASTRONAUT_FACE, dx=512)
    assert not _covers(found, ASTRONAUT_FACE)  # nothing in the empty left half


def test_faces_mirrored_is_an_involution() -> None:
    faces = Faces(np.array([[10, 20, 50, 80]], np.float32), np.array([0.9], np.float32))
    once = faces.mirrored(200)
    np.testing.assert_allclose(once.xyxy, [[150, 20, 190, 80]])
    np.testing.assert_allclose(once.mirrored(200).xyxy, faces.xyxy)


def test_upscaled_pass_finds_small_faces_and_is_skipped_on_big_images() -> None:
    small = np.asarray(Image.fromarray(astronaut()).resize((96, 96)))
    single = CenterFace(Strategy(scales=(1.0,), threshold=0.3)).detect(small)
    doubled = CenterFace(Strategy(scales=(1.0, 2.0), threshold=0.3)).detect(small)
    assert len(doubled) >= len(single)
    face = tuple(round(v * 96 / 512) for v in ASTRONAUT_FACE)
    assert _covers(doubled, face)  # type: ignore[arg-type]
    assert _resized(np.zeros((4000, 3000, 3), np.uint8), 2.0) is None  # 48 MP: not worth it
    assert _resized(np.zeros((100, 100, 3), np.uint8), 0.5) is None  # 50 px finds nothing


def test_large_image_is_tiled_and_faces_across_tiles_survive() -> None:
    """A face on the seam between two 2048 px tiles is still found (tiles overlap)."""
    image = np.full((600, 2700, 3), 90, np.uint8)
    image[40:552, 1860:2372] = astronaut()  # the face straddles x = 2048
    faces = CenterFace(Strategy()).detect(image)
    assert _covers(faces, ASTRONAUT_FACE, dx=1860, dy=40)
    assert (faces.xyxy[:, 2] <= 2700).all() and (faces.xyxy[:, 3] <= 600).all()


def test_settings_threshold_overrides_the_preset() -> None:
    settings = veil.Settings(preset="thorough", threshold=0.35)
    assert settings.strategy.threshold == 0.35
    assert settings.strategy.scales == PRESETS["thorough"].scales
    assert veil.Settings(preset="fast").strategy == PRESETS["fast"]


@pytest.mark.parametrize("bad", [{"preset": "turbo"}, {"threshold": 0.0}, {"threshold": 1.5}])
def test_bad_detection_settings_are_usage_errors(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        veil.Settings(**bad)  # type: ignore[arg-type]


def test_cli_preset_flag(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(astronaut()).save(src)
    assert cli("clean", src, "-o", tmp_path / "out", "--preset", "fast").code == 0
    assert cli("clean", src, "-o", tmp_path / "o2", "--preset", "turbo").code == 2
