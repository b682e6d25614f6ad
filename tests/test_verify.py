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

from conftest import read_report
from helpers import ASTRONAUT_FACE, astronaut, crop, exif_block, scene
from veil import Pipeline, Settings
from veil.obscurers import OBSCURERS, Obscurer

dlib = pytest.importorskip("dlib", reason="the verify extra (dlib-bin) is not installed")
pytest.importorskip("face_recognition_models", reason="the verify extra is not installed")

from veil.result import Verification  # noqa: E402
from veil.verify import CORRELATION_GATE, correlation  # noqa: E402
from veil.verify.models import Recognizer  # noqa: E402


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
    assert "verified: 0 protected, 1 leaking" in run.err
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
        assert "pip install 'veil[verify]'" in run.err
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
