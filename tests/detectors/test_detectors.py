"""Detection strategy: presets, passes (scales, mirror, tiles, reduced), threshold override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import veil
from helpers import ASTRONAUT_FACE, astronaut
from veil.detectors import PRESETS, Strategy, nms
from veil.detectors.centerface import CenterFace, _resized, _zoom_areas, int8_model_bytes
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
    strategy = PRESETS[preset]
    assert (faces.scores >= min(strategy.threshold, strategy.zoom_threshold)).all()


def test_presets_are_ordered_by_effort() -> None:
    fast, balanced, thorough = (PRESETS[n] for n in ("fast", "balanced", "thorough"))
    assert fast.threshold >= balanced.threshold >= thorough.threshold
    assert balanced.zoom_threshold >= thorough.zoom_threshold
    assert not fast.zoom and balanced.zoom and thorough.flip and not balanced.flip


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
    thorough = PRESETS["thorough"]
    expected = 0.35 * thorough.zoom_threshold / thorough.threshold
    assert settings.strategy.zoom_threshold == pytest.approx(expected)
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


def _crowd(side: int, rows: int = 5, cols: int = 6) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """A crowd: the astronaut shrunk to ``side`` px, ``rows`` x ``cols`` times, and where
    each face is (the face is about a fifth of ``side`` tall)."""
    person = np.asarray(Image.fromarray(astronaut()).resize((side, side), Image.LANCZOS))
    canvas = np.full((side * rows, side * cols, 3), 120, np.uint8)
    k = side / 512
    boxes = []
    for r in range(rows):
        for c in range(cols):
            canvas[r * side : (r + 1) * side, c * side : (c + 1) * side] = person
            x1, y1, x2, y2 = (v * k for v in ASTRONAUT_FACE)
            boxes.append((c * side + x1, r * side + y1, c * side + x2, r * side + y2))
    return canvas, boxes


def _found(faces: Faces, boxes: list[tuple[float, ...]]) -> int:
    """How many of ``boxes`` hold the centre of some detection."""
    cx = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2
    cy = (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2
    inside = [(x1 <= cx) & (cx <= x2) & (y1 <= cy) & (cy <= y2) for x1, y1, x2, y2 in boxes]
    return sum(bool(hit.any()) for hit in inside)


def test_zoom_pass_finds_a_crowd_of_tiny_faces_the_full_size_pass_misses() -> None:
    crowd, boxes = _crowd(44)  # faces about 9 px tall
    full_size = CenterFace(Strategy(scales=(1.0,), threshold=0.1)).detect(crowd)
    zoomed = CenterFace(Strategy(scales=(1.0,), zoom=(2.0,), threshold=0.1)).detect(crowd)
    assert _found(full_size, boxes) < 20
    assert _found(zoomed, boxes) == len(boxes)
    assert _found(CenterFace(PRESETS["balanced"]).detect(crowd), boxes) == len(boxes)


def test_zoom_runs_only_where_small_faces_may_be(monkeypatch: pytest.MonkeyPatch) -> None:
    """A portrait has no small candidates: no enlarged pass runs, and balanced costs what
    its whole-image passes cost."""
    detector = CenterFace(PRESETS["balanced"])
    shapes: list[tuple[int, ...]] = []
    infer = detector._infer

    def counting(session: object, images: list[np.ndarray], threshold: float) -> list[Faces]:
        shapes.append(images[0].shape)
        return infer(session, images, threshold)

    monkeypatch.setattr(detector, "_infer", counting)
    detector.detect(astronaut())
    assert all(max(shape) <= 512 for shape in shapes)  # nothing enlarged
    shapes.clear()
    crowd, _ = _crowd(44)
    detector.detect(crowd)
    assert any(max(shape) > max(crowd.shape) for shape in shapes)


def test_zoom_areas_join_touching_candidates_and_take_the_whole_image_when_crowded() -> None:
    image = np.zeros((400, 600, 3), np.uint8)
    assert _zoom_areas(image, Faces.empty()) == []
    two_apart = Faces(np.array([[20, 20, 30, 32], [500, 300, 510, 312]], np.float32), [0.1, 0.1])
    areas = _zoom_areas(image, two_apart)
    assert len(areas) == 2
    for (x, y, crop), (x1, y1, x2, y2) in zip(areas, two_apart.xyxy.tolist(), strict=True):
        # each candidate sits inside its own area with a margin of at least 12 px around it
        assert x <= x1 - 12 and y <= y1 - 12
        assert x + crop.shape[1] >= x2 + 12 and y + crop.shape[0] >= y2 + 12
    neighbours = Faces(np.array([[20, 20, 30, 32], [45, 22, 55, 34]], np.float32), [0.1, 0.1])
    assert len(_zoom_areas(image, neighbours)) == 1  # margins touch: one area
    grid = [[x, y, x + 10, y + 12] for x in range(0, 600, 40) for y in range(0, 400, 40)]
    everywhere = Faces(np.array(grid, np.float32), np.full(len(grid), 0.1, np.float32))
    (whole,) = _zoom_areas(image, everywhere)
    assert whole[:2] == (0, 0) and whole[2].shape == image.shape


def test_int8_model_matches_fp32_on_a_face_and_is_built_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path / "cache"))
    first = int8_model_bytes()
    (cached,) = (tmp_path / "cache").glob("centerface-int8-*.onnx")
    assert cached.read_bytes()[32:] == first  # behind its checksum
    assert int8_model_bytes() == first  # read back, not rebuilt
    cached.write_bytes(cached.read_bytes()[:100_000])  # damaged: rebuilt, never loaded
    assert int8_model_bytes() == first
    assert cached.read_bytes()[32:] == first
    detector = CenterFace(Strategy(scales=(1.0,), threshold=0.3))
    int8 = detector.detect(astronaut())
    fp32 = detector._infer(detector._session, [astronaut()], 0.3)[0]
    assert detector._session_for(1.0) is not detector._session  # int8 at full size
    assert detector._session_for(0.5) is detector._session  # fp32 for large faces
    assert _covers(int8, ASTRONAUT_FACE) and _covers(fp32, ASTRONAUT_FACE)
    best = int8.xyxy[int(np.argmax(int8.scores))]
    ref = fp32.xyxy[int(np.argmax(fp32.scores))]
    np.testing.assert_allclose(best, ref, atol=8)


def test_int8_model_builds_without_a_writable_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(blocker / "cache"))
    assert len(int8_model_bytes()) > 100_000


def _greedy(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Textbook greedy NMS, to check the OpenCV-backed one against."""
    order, keep = list(np.argsort(-scores, kind="stable")), []
    area = lambda b: max(b[2] - b[0], 0) * max(b[3] - b[1], 0)  # noqa: E731
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            w = max(min(xyxy[i, 2], xyxy[j, 2]) - max(xyxy[i, 0], xyxy[j, 0]), 0)
            h = max(min(xyxy[i, 3], xyxy[j, 3]) - max(xyxy[i, 1], xyxy[j, 1]), 0)
            if w * h / (area(xyxy[i]) + area(xyxy[j]) - w * h) <= iou:
                rest.append(j)
        order = rest
    return keep


def test_nms_keeps_what_greedy_suppression_keeps() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(1, 80))
        xy = rng.uniform(0, 200, (n, 2))
        xyxy = np.concatenate([xy, xy + rng.uniform(4, 50, (n, 2))], axis=1).astype(np.float32)
        scores = rng.uniform(0.01, 1, n).astype(np.float32)
        assert sorted(nms(xyxy, scores, 0.3).tolist()) == sorted(_greedy(xyxy, scores, 0.3))
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).size == 0
