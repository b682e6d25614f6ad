"""Licence plates and other text (``--plates``, ``--text``): found, obscured as whole boxes,
reported without what they said, checked by reading the output again; on pictures rendered in
the test (a plate and a street sign), never on real photos."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from clips import plate_clip
from helpers import PLATE_TEXT, Box, central, plate_scene, ssim_grey, us_plate_scene
from veil import Pipeline, Settings
from veil.errors import UsageError
from veil.text import (
    GRAIN,
    PRESET_SIDES,
    Marks,
    TextFinder,
    grain,
    legible,
    plate_like,
    readable,
)
from veil.text import ocr as ocr_module
from veil.text.ocr import Reading


@pytest.fixture(scope="module")
def finder() -> TextFinder:
    return TextFinder(plates=True, text=True)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, Box, Box]:
    return plate_scene()


def covered(regions: list[list[int]] | np.ndarray, box: Box) -> float:
    """The share of ``box`` inside the union of ``regions``: at least 0.7 is the first half of
    METRICS.md's rule (the second: the central 60% changed, SSIM < 0.6)."""
    x1, y1, x2, y2 = box
    mask = np.zeros((y2, x2), bool)
    for a, b, c, d in np.asarray(regions).reshape(-1, 4):
        mask[b:d, a:c] = True
    return float(mask[y1:y2, x1:x2].mean())


# -- what counts as a plate -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("BA 302 OZ", True),
        ("M5-XSX", True),
        ("GWAGEN", True),  # a vanity plate: no digit, still a plate
        ("Main Street", False),  # lower case: a word, not a plate
        ("東京駅 出口", False),  # another script: a sign
        ("A", False),
        ("ABCDEFGHIJKL", False),  # too long
    ],
)
def test_what_reads_as_a_plate(text: str, plate: bool) -> None:
    assert plate_like(Reading(text, 0.95)) is plate


def test_an_unsure_reading_is_no_plate_and_no_text() -> None:
    """veil's own grain fill reads as a digit or three at low confidence."""
    assert not plate_like(Reading("128", 0.35))
    assert not readable(Reading("128", 0.35))
    assert readable(Reading("Exit", 0.9)) and not readable(Reading("", 0.9))


def test_legible_needs_four_characters_of_a_plate_and_three_of_text() -> None:
    assert legible(Reading("30-2O", 0.9), "plate")
    assert not legible(Reading("30", 0.9), "plate")
    assert legible(Reading("Mai", 0.9), "text")
    assert not legible(Reading("BA302", 0.4), "plate")


# -- finding -------------------------------------------------------------------------------
def test_the_plate_is_found_and_the_sign_is_not_taken_for_one(
    scene: tuple[np.ndarray, Box, Box],
) -> None:
    pixels, plate, sign = scene
    marks = TextFinder(plates=True, text=False).find(pixels)
    assert marks.kinds == ("plate",)
    regions = marks.regions(pixels.shape[1], pixels.shape[0])
    assert covered(regions, plate) >= 0.7
    assert covered(regions, sign) == 0.0


def test_text_on_finds_the_sign_as_text(
    finder: TextFinder, scene: tuple[np.ndarray, Box, Box]
) -> None:
    pixels, _, sign = scene
    marks = finder.find(pixels)
    assert sorted(marks.kinds) == ["plate", "text"]
    regions = marks.of("text").regions(pixels.shape[1], pixels.shape[0])
    assert covered(regions, sign) >= 0.7


def test_boxes_past_the_reading_cap_are_obscured_unread(
    scene: tuple[np.ndarray, Box, Box], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A picture of hundreds of words is not read word by word; what is not read is obscured."""
    import veil.text

    monkeypatch.setattr(veil.text, "MAX_READS", 0)
    pixels, plate, _ = scene
    marks = TextFinder(plates=True, text=False).find(pixels)
    assert "plate" in marks.kinds
    assert covered(marks.regions(pixels.shape[1], pixels.shape[0]), plate) >= 0.7


# -- how large the detector sees a picture -------------------------------------------------
def _grainy(pixels: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """``pixels`` with grey-level noise of standard deviation ``sigma`` (the same in R, G, B)."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, (*pixels.shape[:2], 1))
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [3.0, 8.0, 16.0])
def test_grain_measures_the_noise_of_a_flat_picture(sigma: float) -> None:
    flat = np.full((240, 320, 3), 120, np.uint8)
    assert grain(flat) == 0.0
    assert grain(_grainy(flat, sigma)) == pytest.approx(sigma, rel=0.15)


def test_a_clean_rendered_street_is_not_grainy(scene: tuple[np.ndarray, Box, Box]) -> None:
    assert grain(ocr_module.bgr(scene[0])) < GRAIN


def test_balanced_enlarges_grainy_small_pictures_more(scene: tuple[np.ndarray, Box, Box]) -> None:
    finder = TextFinder(plates=True, text=False, sides=PRESET_SIDES["balanced"])
    most, short, grainy = PRESET_SIDES["balanced"]
    assert most is not None and short < grainy
    small = np.ascontiguousarray(ocr_module.bgr(scene[0])[::2, ::2])  # 320x240
    assert finder.scale(small) == pytest.approx(short / 240)
    assert finder.scale(_grainy(small, 12)) == pytest.approx(grainy / 240)
    # A picture already as large as the grainy size is not enlarged, grainy or not; one
    # larger than the cap is shrunk to it; the check of an output takes the size it asks for.
    assert finder.scale(_grainy(np.zeros((grainy, 640, 3), np.uint8), 12)) == 1.0
    assert finder.scale(np.zeros((100, most * 2, 3), np.uint8)) == pytest.approx(0.5)
    assert finder.scale(_grainy(small, 12), 736) == pytest.approx(736 / 240)


def test_the_plate_of_a_grainy_small_picture_is_found(scene: tuple[np.ndarray, Box, Box]) -> None:
    pixels, plate, _ = scene
    small = _grainy(np.ascontiguousarray(pixels[::2, ::2]), 10)
    marks = TextFinder(plates=True, text=False).find(small)
    half = (plate[0] // 2, plate[1] // 2, plate[2] // 2, plate[3] // 2)
    assert covered(marks.of("plate").regions(small.shape[1], small.shape[0]), half) >= 0.7


def test_a_blank_picture_has_no_text(finder: TextFinder) -> None:
    assert len(finder.find(np.full((240, 320, 3), 128, np.uint8))) == 0


# -- photos --------------------------------------------------------------------------------
def _clean(tmp_path: Path, pixels: np.ndarray, **settings: Any) -> tuple[Any, np.ndarray]:
    src, dst = tmp_path / "street.png", tmp_path / "out" / "street.png"
    Image.fromarray(pixels).save(src)
    result = Pipeline(Settings(**settings)).clean_file(src, dst)
    return result, np.asarray(Image.open(dst).convert("RGB"))


def test_plates_on_obscures_the_plate_and_leaves_the_rest(
    tmp_path: Path, scene: tuple[np.ndarray, Box, Box], finder: TextFinder
) -> None:
    pixels, plate, _ = scene
    result, out = _clean(tmp_path, pixels, plates=True)
    [record] = result.plates
    assert result.text == [] and result.faces == []
    assert covered([record.region], plate) >= 0.7
    x1, y1, x2, y2 = central(plate)
    assert ssim_grey(pixels[y1:y2, x1:x2], out[y1:y2, x1:x2]) < 0.6
    # Outside the region, the picture is as it was (PNG: lossless); the sign stays.
    outside = np.ones(pixels.shape[:2], bool)
    a, b, c, d = record.region
    outside[b:d, a:c] = False
    assert np.array_equal(pixels[outside], out[outside])
    # Read back: not four characters of the plate anywhere in it.
    assert finder.still_legible(out, np.array([record.region]), ("plate",)) == []


def test_text_on_obscures_the_sign_too(tmp_path: Path, scene: tuple[np.ndarray, Box, Box]) -> None:
    pixels, _, sign = scene
    result, out = _clean(tmp_path, pixels, plates=True, text=True)
    assert len(result.plates) == 1 and len(result.text) == 1
    assert covered([result.text[0].region], sign) >= 0.7
    x1, y1, x2, y2 = central(sign)
    assert ssim_grey(pixels[y1:y2, x1:x2], out[y1:y2, x1:x2]) < 0.6


def test_plates_are_off_by_default(tmp_path: Path, scene: tuple[np.ndarray, Box, Box]) -> None:
    pixels, _, _ = scene
    assert Settings().plates is False and Settings().text is False
    result, out = _clean(tmp_path, pixels)
    assert result.plates == [] and np.array_equal(out, pixels)
    assert "plates" not in json.loads(result.to_json())


def test_the_report_says_where_never_what(
    tmp_path: Path, scene: tuple[np.ndarray, Box, Box]
) -> None:
    result, _ = _clean(tmp_path, scene[0], plates=True, text=True)
    row = result.to_json()
    assert json.loads(row)["plates"][0]["region"] == result.plates[0].region
    for word in (*PLATE_TEXT.split(), "Main", "Street"):
        assert word not in row


def test_a_legible_plate_in_an_output_is_a_leak_that_does_not_repeat_it(
    scene: tuple[np.ndarray, Box, Box],
) -> None:
    pixels, _, _ = scene
    pipe = Pipeline(Settings(plates=True))
    marks = pipe.text_finder.find(pixels)
    leaks = pipe._text_leaks(0, marks, pixels)  # the "output" still shows the plate
    assert [leak.kind for leak in leaks] == ["plate"]
    assert "legible" in leaks[0].detail and "302" not in leaks[0].detail
    obscured = pipe.clean_array(pixels).pixels
    assert pipe._text_leaks(0, marks, obscured) == []


def test_a_reviewer_s_edits_keep_the_plates_obscured(
    tmp_path: Path, scene: tuple[np.ndarray, Box, Box]
) -> None:
    from veil.pipeline import Edits

    pixels, plate, _ = scene
    src = tmp_path / "street.png"
    Image.fromarray(pixels).save(src)
    pipe = Pipeline(Settings(plates=True))
    opened = pipe.open(src)
    [cleaned] = pipe.edit(opened, Edits(add=((0, 0, 10, 10),)))
    assert len(cleaned.text_records("plate")) == 1
    x1, y1, x2, y2 = central(plate)
    assert ssim_grey(pixels[y1:y2, x1:x2], cleaned.pixels[y1:y2, x1:x2]) < 0.6


# -- the doors -----------------------------------------------------------------------------
def test_cli_clean_and_scan_with_plates(
    tmp_path: Path, cli: Any, scene: tuple[np.ndarray, Box, Box]
) -> None:
    src = tmp_path / "in" / "street.png"
    src.parent.mkdir()
    Image.fromarray(scene[0]).save(src)
    report = tmp_path / "report.jsonl"
    done = cli("clean", src.parent, "-o", tmp_path / "out", "--plates", "on", "--report", report)
    assert done.code == 0, done.err
    assert "1 plate obscured" in done.err
    assert len(json.loads(report.read_text())["plates"]) == 1
    scanned = cli("scan", src, tmp_path / "out" / "street.png", "--plates", "on")
    before, after = scanned.out.split("\n\n")[:2]
    assert "plates           1 found" in before and "would be obscured" in before
    assert "plates           none found" in after
    assert "--plates on|off" in cli("clean", "--help").out


def test_a_plate_in_a_video_is_tracked_and_obscured_in_every_frame(
    tmp_path: Path, scene: tuple[np.ndarray, Box, Box]
) -> None:
    pixels, plate, _ = scene
    src, dst = tmp_path / "street.mp4", tmp_path / "out" / "street.mp4"
    plate_clip(src, pixels)
    result = Pipeline(Settings(plates=True)).clean_file(src, dst)
    assert [r.frames for r in result.plates] == [[0, 11]]
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        pairs = zip(a.decode(video=0), b.decode(video=0), strict=True)
        for i, (before, after) in enumerate(pairs):
            x1, y1, x2, y2 = central(plate)
            x1, x2 = x1 + 4 * i, x2 + 4 * i
            original, cleaned = before.to_ndarray(format="rgb24"), after.to_ndarray(format="rgb24")
            assert ssim_grey(original[y1:y2, x1:x2], cleaned[y1:y2, x1:x2]) < 0.6, i


def test_a_dataset_record_s_plate_is_obscured_and_counted(
    tmp_path: Path, scene: tuple[np.ndarray, Box, Box]
) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="dataset mode needs veil[dataset]")
    import io

    from veil.dataset import run

    (tmp_path / "in").mkdir()
    image = io.BytesIO()
    Image.fromarray(scene[0]).save(image, "PNG")
    with tarfile.open(tmp_path / "in" / "000000.tar", "w") as tar:
        info = tarfile.TarInfo("000001.png")
        info.size = len(image.getvalue())
        tar.addfile(info, io.BytesIO(image.getvalue()))
    summary = run(tmp_path / "in", tmp_path / "out", settings=Settings(plates=True), progress=False)
    assert summary.complete
    [row] = pq.read_table(summary.manifest).to_pylist()
    assert row["status"] == "cleaned" and row["plates"] == 1 and row["text"] == 0


# -- the models ----------------------------------------------------------------------------
def test_a_model_file_that_changed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    package, name, _ = ocr_module.DETECTOR
    with pytest.raises(UsageError, match="not the one veil was measured with"):
        ocr_module.model_path(package, name, "00000000")


def test_without_the_models_the_error_says_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ocr_module.util, "find_spec", lambda name: None)
    wheels = r"--no-deps .*rapidocr_onnxruntime==1\.4\.4.*rapidocr==3\.10\.0"
    with pytest.raises(UsageError, match=wheels):
        TextFinder(plates=True, text=False)


def test_marks_of_one_kind() -> None:
    quads = np.array([[[0, 0], [40, 0], [40, 10], [0, 10]]] * 2, np.float32)
    marks = Marks(quads, np.array([0.9, 0.8], np.float32), ("plate", "text"))
    assert marks.of("text").kinds == ("text",) and len(Marks.empty()) == 0
    # Grown on every side by a tenth of the text's height for a plate (its panel reaches its
    # edge), a fifth for other text.
    assert marks.areas().tolist() == [[-1, -1, 41, 11], [-2, -2, 42, 12]]


def test_verify_with_plates_finds_a_plate_left_legible(
    tmp_path: Path, cli: Any, scene: tuple[np.ndarray, Box, Box]
) -> None:
    pytest.importorskip("dlib", reason="veil verify needs the verify extra")
    original, copy, cleaned = tmp_path / "a.png", tmp_path / "b" / "a.png", tmp_path / "c"
    copy.parent.mkdir()
    Image.fromarray(scene[0]).save(original)
    Image.fromarray(scene[0]).save(copy)  # "cleaned" without plates: the plate is still there
    leaked = cli("verify", original, copy, "--plates", "on")
    assert leaked.code == 1 and "plate at [" in leaked.err and "legible" in leaked.err
    assert "302" not in leaked.err
    assert cli("clean", original, "-o", cleaned, "--plates", "on").code == 0
    done = cli("verify", original, cleaned / "a.png", "--plates", "on")
    assert done.code == 0 and "1 protected" in done.err, done.err


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_plate_is_obscured_to_its_edges_not_only_its_characters(scale: float) -> None:
    """On a US plate the characters are half its height: their box alone covers under 70% of
    it. The panel around them is taken in, up to the plate's border."""
    pixels, plate = us_plate_scene(scale)
    marks = TextFinder(plates=True, text=False).find(pixels)
    assert marks.kinds == ("plate",)
    characters = Marks(marks.quads, marks.scores, marks.kinds)  # extents: the quads' hulls
    assert covered(characters.regions(640, 480), plate) < 0.7
    assert covered(marks.regions(640, 480), plate) >= 0.95
    # ... and not much past it: the panel stops at the plate's border.
    [(x1, y1, x2, y2)] = marks.regions(640, 480)
    inside = (min(x2, plate[2]) - max(x1, plate[0])) * (min(y2, plate[3]) - max(y1, plate[1]))
    assert (x2 - x1) * (y2 - y1) <= 1.3 * inside


def test_without_the_models_the_cli_stops_at_once_with_one_line(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr_module.util, "find_spec", lambda name: None)
    (tmp_path / "in").mkdir()
    for command in (["clean", tmp_path / "in", "-o", tmp_path / "out"], ["scan", tmp_path / "in"]):
        done = cli(*command, "--plates", "on")
        assert done.code == 2 and "Traceback" not in done.err
        assert "pip install --no-deps" in done.err
    assert not (tmp_path / "out").exists()


def _quad(x1: float, y1: float, x2: float, y2: float) -> list[list[float]]:
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def test_a_piece_beside_a_plate_on_its_line_is_taken_for_the_rest_of_it() -> None:
    """The detector cuts a plate at its band or a dash; "BI" alone is not plate-shaped."""
    from veil.text import _join_split_plates

    quads = np.array(
        [
            _quad(100, 50, 200, 70),  # the plate-shaped part
            _quad(80, 51, 95, 69),  # its band's letters, beside it: joined
            _quad(60, 50, 75, 70),  # beside that piece: joined in turn
            _quad(400, 50, 420, 70),  # far along the line: not
            _quad(205, 50, 215, 110),  # beside, but three times as tall: not
            _quad(100, 75, 200, 80),  # under it, a fifth as tall: not
        ],
        np.float32,
    )
    kinds: list[Any] = ["plate", None, None, None, None, "text"]
    _join_split_plates(quads, kinds)
    assert kinds == ["plate", "plate", "plate", None, None, "text"]


def test_thread_pools_are_sized_to_the_cores_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from veil import cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert cores.available() == 1
    assert Settings().workers(100) == 1


def test_a_large_box_the_detector_is_unsure_of_is_no_plate(
    finder: TextFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a crowd photo a 0.34 box over nearly all of it read as digits: it would have hidden
    96% of the picture. Large plates score 0.69-0.92 on the dev set."""
    giant = np.array([_quad(0, 20, 380, 200)], np.float32)
    small = np.array([_quad(100, 100, 160, 118)], np.float32)
    pixels = np.full((226, 400, 3), 128, np.uint8)
    monkeypatch.setattr(
        finder.recognizer, "read", lambda crops: [Reading("336024", 0.9)] * len(crops)
    )
    for quads, score, found in ((giant, 0.34, 0), (giant, 0.6, 1), (small, 0.34, 1)):
        monkeypatch.setattr(
            finder.detector, "detect", lambda image, scale, q=quads, s=score: (q, [s])
        )
        assert len(finder.find(pixels).of("plate")) == found, (quads.tolist(), score)


def test_large_text_must_read_as_a_word(
    finder: TextFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boxes over whole crowd photos scored 0.62-0.73 and read as "ha": not a sign."""
    giant = np.array([_quad(0, 20, 380, 200)], np.float32)
    pixels = np.full((226, 400, 3), 128, np.uint8)
    monkeypatch.setattr(finder.detector, "detect", lambda image, scale: (giant, [0.7]))
    for text, found in (("ha", 0), ("EXIT", 1)):
        monkeypatch.setattr(finder.recognizer, "read", lambda crops, t=text: [Reading(t, 0.9)])
        assert len(finder.find(pixels)) == found, text  # "EXIT" reads as a plate too


# -- the int8 detector and the check of an output -------------------------------------------
def _hulls_near(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    """Every quad of ``a`` has one in ``b`` whose corners are within ``tolerance`` px."""
    return all(any(np.abs(q - r).max() <= tolerance for r in b) for q in a)


def test_the_int8_detector_is_built_once_and_finds_the_boxes_the_fp32_one_finds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scene: tuple[np.ndarray, Box, Box]
) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    first = ocr_module.int8_detector_bytes()
    (cached,) = tmp_path.glob("ocr-detector-int8-*.onnx")
    assert cached.read_bytes()[32:] == first
    assert ocr_module.int8_detector_bytes() == first  # read back, not rebuilt
    image = ocr_module.bgr(scene[0])
    fast, _ = ocr_module.TextDetector(fast=True).detect(image, 1.0)
    exact, _ = ocr_module.TextDetector().detect(image, 1.0)
    assert len(fast) == len(exact) >= 2  # the plate and the sign
    assert _hulls_near(fast, exact, 4) and _hulls_near(exact, fast, 4)


def test_the_detector_s_upsampling_stays_in_fp32() -> None:
    import onnx

    folded = ocr_module.fp32_detector_bytes()
    kept = ocr_module.keep_fp32(folded)
    ops = {node.name: node.op_type for node in onnx.load_from_string(folded).graph.node}
    assert [ops[name] for name in (kept[0], kept[-1])] == ["ConvTranspose", "Sigmoid"]
    assert [ops[name] for name in kept].count("ConvTranspose") == 2
    assert "Concat" not in {ops[name] for name in kept}  # the joined pyramid is quantized


def test_the_folded_detector_draws_the_shipped_one_s_map(
    scene: tuple[np.ndarray, Box, Box],
) -> None:
    import onnxruntime as ort

    pixels = scene[0][: scene[0].shape[0] // 32 * 32, : scene[0].shape[1] // 32 * 32]
    image = ocr_module._normalised(ocr_module.bgr(pixels))[None]
    shipped = str(ocr_module.model_path(*ocr_module.DETECTOR))
    maps = [
        ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": image})[0]
        for model in (shipped, ocr_module.fp32_detector_bytes())
    ]
    assert np.abs(maps[0] - maps[1]).max() < 1e-4 and maps[0].max() > 0.9


def test_with_no_room_for_the_built_detectors_the_shipped_one_finds_the_plate(
    monkeypatch: pytest.MonkeyPatch, scene: tuple[np.ndarray, Box, Box]
) -> None:
    import errno

    def full_disk() -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocr_module, "int8_detector_bytes", full_disk)
    monkeypatch.setattr(ocr_module, "fp32_detector_bytes", full_disk)
    pixels, plate, _ = scene
    finder = TextFinder(plates=True, text=False)
    assert not finder.detector.int8
    marks = finder.find(pixels)
    assert marks.kinds == ("plate",)
    assert covered(marks.regions(pixels.shape[1], pixels.shape[0]), plate) >= 0.7


def test_the_check_of_an_output_reads_with_the_fp32_detector(
    finder: TextFinder, scene: tuple[np.ndarray, Box, Box]
) -> None:
    pixels, plate, _ = scene
    region = np.array([plate], np.int32)
    (hit,) = finder.still_legible(pixels, region, ("plate",))  # the plate left as it was
    assert hit[0] == 0 and sum(c.isalnum() for c in hit[1]) >= 4
    assert finder._checker is not None and not finder._checker.int8
    assert finder.detector.int8  # while pictures are searched with the int8 copy


def test_thorough_searches_with_the_fp32_detector_and_the_others_with_int8() -> None:
    from veil.text import PRESET_INT8

    assert PRESET_INT8 == {"fast": True, "balanced": True, "thorough": False}
    assert not Pipeline(Settings(plates=True, preset="thorough")).text_finder.detector.int8
    assert Pipeline(Settings(plates=True)).text_finder.detector.int8
