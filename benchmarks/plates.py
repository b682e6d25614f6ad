"""Licence plates and text in photos (docs/METRICS.md section 6): protected, readable, at what
cost, with ``veil clean --plates on`` (and ``--text on``).

Data: ``../shared/data/plates/eu`` (108 street photos of cars, one annotated plate each:
``NAME.txt`` is ``NAME.jpg x y w h TEXT``; other plates in view are not annotated) and, as a
false-alarm corpus without plates annotated, a sample of ``../shared/data/faces``.

veil runs as its real command line, ``python -m veil clean DIR -o OUT --report R.jsonl
--jobs 1 ...``, one whole process per batch (pinned to core 0 with ``taskset -c 0`` where it
exists, so that runs compare). What is measured:

1. *Protected* (METRICS.md 1 and 6): the union of the report's ``plates`` regions (plus ``text``
   regions with ``--text on``) covers >= 70% of the annotated plate box, and every such region
   over it was really obscured (grey SSIM < 0.6 over its central 60%, regions >= 10 px wide);
   by preset, and by plate height.
2. *Cost*: image area obscured by plate and text regions outside the annotated plate box and
   outside the report's face regions, median and mean over photos.
3. *Time*: whole-process wall time per photo (process start included; nothing subtracted),
   face-only against ``--plates on`` and ``--plates on --text on``, all balanced, taking turns,
   the fastest of ``--repeat`` runs each; the CPU time of the process too.
4. *Readable after cleaning*: an OCR attack on every output (enlarged so its short side is 736
   px, bicubic; veil's own PP-OCR recognizer and its fp32 detector on every text box). A photo
   counts when a box reads the annotated plate (normalised to A-Z0-9), or 4+ of its characters in
   order (longest common subsequence >= 4); *near the plate*: boxes overlapping the plate box;
   *anywhere*: any box. The same attack on the original photos is the baseline, what it can read at
   all. Beside it, the photos where it reads plate-like text (4+ characters in a plate-shaped box,
   veil's own rule) away from the annotated plate: other cars' plates, which are not annotated, and
   signs that read like plates.
5. Harder views: every photo downscaled 1/2 (INTER_AREA) and 4x4 mosaics of 16 photos (each
   photo at its own size in an 800x600 cell, shrunk only when larger: 3200x2400 px, so the
   presets' size caps apply, as they do to large street photos), and every photo seen from the
   side (squeezed across to cos 50 degrees, its far side 15% shorter, rolled 8 degrees one way
   or the other: plates 1.8-3 times as long as tall, tilted), and every photo grainy as at dusk
   (a sixteenth of the light, sensor noise, brightened by the camera): protected share there
   too.
   Derived images go to the working folder (a temporary folder unless ``--out``).
6. False alarms: share of each photo of a sample of the face set obscured by ``plates``
   regions (text off), and by ``plates`` + ``text`` regions with text on; mean, median, p90.
7. Faces unchanged: ``veil clean`` with ``--plates off`` and with default settings on 20 face
   photos writes identical bytes and identical reports; and on the dev photos, the face
   regions reported with plates on equal those of the face-only run.

Every miss (dev photos and harder views) is diagnosed by running veil's finder again as
``--plates on`` does (``veil.text``): no text box over the plate, a box not plate-shaped, a
reading not plate-like, or regions that cover too little of the plate.

Run from the repository root (needs ``pip install -e .[bench]`` and the OCR models)::

    python benchmarks/plates.py                          # everything, about 25 min on 2 cores
    python benchmarks/plates.py --limit 12 --faces-sample 20 --repeat 1   # a quick look
    python benchmarks/plates.py --presets balanced --json /tmp/plates.json

It prints the tables, writes ``table.md`` and ``results.json`` (or ``--json``) to the working
folder; without ``--out`` the image copies and outputs are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from common import Timing, positive_int, render_markdown, render_text, require_modules, stopwatch
from faces import load_photos, machine, read_rgb, region_mask, region_obscured

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "plates" / "eu"
DEFAULT_FACES = REPO_ROOT.parent / "shared" / "data" / "faces"
PRESETS = ("fast", "balanced", "thorough")

# docs/METRICS.md, sections 1 and 6 (faces.region_obscured holds the SSIM half of the rule).
MIN_COVERAGE = 0.7
HEIGHT_EDGES = (16, 24, 32)
HEIGHT_BINS = ("<16", "16-24", "24-32", ">=32")

# The attack: every output enlarged (never shrunk) until its short side is this long.
ATTACK_SHORT_SIDE = 736
MIN_CHARS_IN_ORDER = 4

# Harder views.
VIEW_JPEG_QUALITY = 95
MOSAIC_GRID = 4
MOSAIC_CELL = (800, 600)  # width, height of one photo's cell
MOSAIC_PAD = 128  # grey around photos smaller than their cell and in empty cells
# The oblique view: a camera turned 50 degrees from the plate (its width times cos 50), the far
# side 15% shorter, and the picture rolled 8 degrees, one way and the other on alternate photos.
OBLIQUE_SQUEEZE = math.cos(math.radians(50))
OBLIQUE_FAR_SIDE = 0.85
OBLIQUE_ROLL_DEG = 8.0
# The dark view: a photo taken in a sixteenth of the light (linear, sRGB gamma 2.2) with sensor
# noise (sigma in 8-bit linear levels, fixed seed), and brightened by the camera to half the
# original's light, its noise with it (8x).
DARK_LIGHT = 1 / 16
DARK_NOISE = 1.0
DARK_SHOWN = 0.5
VIEWS = ("half", "mosaic", "oblique", "dark")

FACE_CHECK_PHOTOS = 20
JPEG_BLOCK = 16  # a 4:2:0 JPEG's MCU, in pixels
PIN = ("taskset", "-c", "0")
ESCAPE_RATIO = 1.1  # CPU time over wall time above which a pinned run used other cores too

RGB = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2; slice-exclusive ends


# -- data -------------------------------------------------------------------------------------
def height_bin(height_px: float) -> str:
    """The bin (`HEIGHT_BINS`) a plate of this height in pixels falls in."""
    return HEIGHT_BINS[int(np.searchsorted(HEIGHT_EDGES, height_px, side="right"))]


@dataclass(frozen=True)
class Plate:
    """One annotated plate in one image of a view: its box in that image's pixels, its text
    (A-Z0-9) and the dev photo it comes from."""

    image: str
    box: Box
    text: str
    source: str

    @property
    def height_px(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def height_bin(self) -> str:
        return height_bin(self.height_px)


@dataclass(frozen=True)
class View:
    """Images in ``folder`` with their annotated plates: the dev photos or a harder view."""

    key: str
    title: str
    folder: Path
    plates: list[Plate]

    @property
    def images(self) -> list[str]:
        return list(dict.fromkeys(p.image for p in self.plates))

    def plates_of(self, image: str) -> list[Plate]:
        return [p for p in self.plates if p.image == image]


def normalised(text: str) -> str:
    """Upper-case Latin letters and digits only: how plates are compared."""
    return "".join(c for c in text.upper() if c.isascii() and c.isalnum())


def _natural_key(name: str) -> tuple[int, str]:
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else 0, name)


def load_dev(data: Path, limit: int | None, folder: Path) -> View:
    """The annotated photos of ``data`` (natural name order), the first ``limit``, copied
    into ``folder`` (veil cleans that folder)."""
    notes = sorted(data.glob("*.txt"), key=lambda p: _natural_key(p.name))
    plates = []
    for note in notes:
        line = note.read_text(encoding="utf-8").strip().splitlines()[0]
        name, x, y, w, h, text = line.split("\t")[:6]
        if not (data / name).exists():
            continue
        x1, y1 = float(x), float(y)
        plates.append(Plate(name, (x1, y1, x1 + float(w), y1 + float(h)), normalised(text), name))
    plates = plates[:limit]
    if not plates:
        sys.exit(f"plates benchmark: no annotated photos (NAME.txt beside NAME.jpg) in {data}")
    _fresh(folder)
    for plate in plates:
        shutil.copy2(data / plate.image, folder / plate.image)
    return View("dev", "dev photos, as they are", folder, plates)


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _save(rgb: RGB, path: Path) -> None:
    Image.fromarray(rgb).save(path, quality=VIEW_JPEG_QUALITY)


def half_view(dev: View, folder: Path) -> View:
    """Every dev photo at half its size (cv2.INTER_AREA, JPEG q95), boxes halved."""
    _fresh(folder)
    plates = []
    for plate in dev.plates:
        rgb = read_rgb(dev.folder / plate.image)
        height, width = rgb.shape[:2]
        size = (max(1, round(width / 2)), max(1, round(height / 2)))
        _save(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), folder / plate.image)
        box = (plate.box[0] / 2, plate.box[1] / 2, plate.box[2] / 2, plate.box[3] / 2)
        plates.append(Plate(plate.image, box, plate.text, plate.source))
    return View("half", "dev photos at 1/2 size (INTER_AREA)", folder, plates)


def mosaic_view(dev: View, folder: Path, cell: tuple[int, int] = MOSAIC_CELL) -> View:
    """4x4 mosaics of 16 dev photos in name order (the last one may have empty cells): each
    photo centred in its cell at its own size, shrunk (INTER_AREA) only when larger."""
    _fresh(folder)
    cw, ch = cell
    per = MOSAIC_GRID * MOSAIC_GRID
    plates = []
    for start in range(0, len(dev.plates), per):
        name = f"mosaic{start // per + 1:02d}.jpg"
        canvas = np.full((MOSAIC_GRID * ch, MOSAIC_GRID * cw, 3), MOSAIC_PAD, np.uint8)
        for k, plate in enumerate(dev.plates[start : start + per]):
            rgb = read_rgb(dev.folder / plate.image)
            height, width = rgb.shape[:2]
            scale = min(1.0, cw / width, ch / height)
            if scale < 1:
                size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                scale_x, scale_y = size[0] / width, size[1] / height
            else:
                scale_x = scale_y = 1.0
            row, col = divmod(k, MOSAIC_GRID)
            ox = col * cw + (cw - rgb.shape[1]) // 2
            oy = row * ch + (ch - rgb.shape[0]) // 2
            canvas[oy : oy + rgb.shape[0], ox : ox + rgb.shape[1]] = rgb
            x1, y1, x2, y2 = plate.box
            box = (x1 * scale_x + ox, y1 * scale_y + oy, x2 * scale_x + ox, y2 * scale_y + oy)
            plates.append(Plate(name, box, plate.text, plate.source))
        _save(canvas, folder / name)
    whole = f"{MOSAIC_GRID * cw}x{MOSAIC_GRID * ch}"
    title = f"{MOSAIC_GRID}x{MOSAIC_GRID} mosaics of 16 dev photos ({cw}x{ch} cells, {whole} px)"
    return View("mosaic", title, folder, plates)


def oblique_warp(width: int, height: int, flip: bool) -> tuple[npt.NDArray[np.float64], int, int]:
    """The homography of the oblique view for a picture of this size, and the size of the
    warped picture: squeezed across (`OBLIQUE_SQUEEZE`), its far side shorter
    (`OBLIQUE_FAR_SIDE`; the right one, or the left when ``flip``), rolled `OBLIQUE_ROLL_DEG`
    (the other way when ``flip``)."""
    w, h = float(width), float(height)
    near, far = 0.0, h * (1 - OBLIQUE_FAR_SIDE) / 2
    left, right = (far, near) if flip else (near, far)
    squeezed = w * OBLIQUE_SQUEEZE
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[0, left], [squeezed, right], [squeezed, h - right], [0, h - left]], np.float32)
    warp = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    roll = cv2.getRotationMatrix2D(
        (squeezed / 2, h / 2), -OBLIQUE_ROLL_DEG if flip else OBLIQUE_ROLL_DEG, 1.0
    )
    warp = np.vstack([roll, [0, 0, 1]]) @ warp
    corners = cv2.perspectiveTransform(src[None].astype(np.float64), warp)[0]
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]], np.float64)
    size = np.ceil(high - low).astype(int)
    return shift @ warp, int(size[0]), int(size[1])


def oblique_view(dev: View, folder: Path) -> View:
    """Every dev photo as seen from the side (`oblique_warp`, bilinear, edges grey); each
    plate's box: the axis-aligned box around its warped corners."""
    _fresh(folder)
    plates = []
    for k, plate in enumerate(dev.plates):
        rgb = read_rgb(dev.folder / plate.image)
        warp, width, height = oblique_warp(rgb.shape[1], rgb.shape[0], flip=k % 2 == 1)
        out = cv2.warpPerspective(
            rgb, warp, (width, height), flags=cv2.INTER_LINEAR, borderValue=(MOSAIC_PAD,) * 3
        )
        _save(out, folder / plate.image)
        x1, y1, x2, y2 = plate.box
        corners = np.array([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]], np.float64)
        moved = cv2.perspectiveTransform(corners, warp)[0]
        (bx1, by1), (bx2, by2) = moved.min(axis=0), moved.max(axis=0)
        box = (float(bx1), float(by1), float(bx2), float(by2))
        plates.append(Plate(plate.image, box, plate.text, plate.source))
    title = (
        f"dev photos turned {round(math.degrees(math.acos(OBLIQUE_SQUEEZE)))} degrees "
        f"and rolled {OBLIQUE_ROLL_DEG:g}"
    )
    return View("oblique", title, folder, plates)


def dark_view(dev: View, folder: Path, seed: int = 0) -> View:
    """Every dev photo as a camera would give it in a sixteenth of the light (`DARK_LIGHT`):
    darker, its noise (`DARK_NOISE`) pushed up by the camera's gain. Plates stay put."""
    _fresh(folder)
    rng = np.random.default_rng(seed)
    for image in dev.images:
        linear = (read_rgb(dev.folder / image).astype(np.float32) / 255) ** 2.2
        sensed = linear * DARK_LIGHT + rng.normal(0, DARK_NOISE / 255, linear.shape)
        shown = np.clip(sensed * (DARK_SHOWN / DARK_LIGHT), 0, 1) ** (1 / 2.2)
        _save((shown * 255 + 0.5).astype(np.uint8), folder / image)
    title = f"dev photos in 1/{round(1 / DARK_LIGHT)} of the light, brightened, with sensor noise"
    return View("dark", title, folder, list(dev.plates))


# -- veil's runs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One way of running ``veil clean``."""

    preset: str
    plates: bool
    text: bool = False

    @property
    def key(self) -> str:
        what = "plates+text" if self.text else "plates" if self.plates else "faces"
        return f"{what}-{self.preset}"

    @property
    def label(self) -> str:
        on = " --plates on --text on" if self.text else " --plates on" if self.plates else ""
        return f"--preset {self.preset}{on}" + ("" if self.plates else " (faces only)")

    @property
    def options(self) -> list[str]:
        options = ["--preset", self.preset]
        if self.plates:
            options += ["--plates", "on"]
        if self.text:
            options += ["--text", "on"]
        return options


FACE_ONLY = Config("balanced", plates=False)
PLATES = Config("balanced", plates=True)
PLATES_TEXT = Config("balanced", plates=True, text=True)


@dataclass
class Run:
    """What one configuration did to a folder: its timed runs, report rows and outputs."""

    config: Config
    source: Path
    out: Path
    timings: list[Timing] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def best(self) -> Timing:
        return min(self.timings, key=lambda t: t.wall_s)

    def output(self, image: str) -> Path | None:
        row = self.rows.get(image)
        if row is None or not row.get("output"):
            return None
        path = Path(row["output"])
        return path if path.exists() else None

    def regions(self, image: str, kinds: Iterable[str]) -> npt.NDArray[np.int64]:
        row = self.rows.get(image) or {}
        regions = [entry["region"] for kind in kinds for entry in row.get(kind) or []]
        return np.asarray(regions, dtype=np.int64).reshape(-1, 4)

    def obscuring(self, image: str) -> npt.NDArray[np.int64]:
        """The regions that hide plates under this configuration: plates (and text)."""
        return self.regions(image, ("plates", "text") if self.config.text else ("plates",))


def run_veil(
    source: Path, out: Path, report: Path, options: Sequence[str], pin: bool
) -> tuple[Timing, dict[str, dict[str, Any]]]:
    """``veil clean SOURCE -o OUT --report REPORT --jobs 1 OPTIONS`` into a fresh ``out``, the
    whole process timed; the report's rows by input file name."""
    if out.exists():
        shutil.rmtree(out)  # veil keeps outputs that exist
    report.unlink(missing_ok=True)
    argv = [*(PIN if pin else ()), sys.executable, "-m", "veil", "clean", str(source)]
    argv += ["-o", str(out), "--report", str(report), "--jobs", "1", *options]
    timings: list[Timing] = []
    with stopwatch(timings):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    log = report.with_suffix(".log")
    log.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}", encoding="utf-8")
    if proc.returncode not in (0, 1):  # 1: some files failed, which the report says
        sys.exit(f"plates benchmark: veil exited {proc.returncode}; see {log}")
    rows = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[Path(row["input"]).name] = row
    t = timings[0]
    load = "-" if t.other_load_cores is None else f"{t.other_load_cores:.2f}"
    print(
        f"  veil {' '.join(options) or '(defaults)'} on {source.parent.name}/ ({len(rows)} "
        f"files): {t.wall_s:.1f} s wall, {t.cpu_s:.1f} s CPU, other load {load} cores",
        flush=True,
    )
    return t, rows


def veil_run(config: Config, source: Path, work: Path, pin: bool, runs: dict[str, Run]) -> Run:
    """Run ``config`` over ``source`` once more (its timings add up in ``runs``)."""
    run = runs.setdefault(config.key, Run(config, source, work / f"out-{config.key}"))
    report = work / f"report-{config.key}.jsonl"
    timing, run.rows = run_veil(source, run.out, report, config.options, pin)
    run.timings.append(timing)
    return run


def _warm(folder: Path) -> None:
    for path in folder.iterdir():  # the page cache, so that no run pays for the first read
        path.read_bytes()


def _build_models() -> None:
    """The detectors' built copies, cached (`veil.cache`) before any run is timed: the first
    run after an install or a change of how they are built makes them, once (seconds)."""
    from veil.detectors import centerface
    from veil.text import ocr

    for build in (centerface.fp32_model_bytes, centerface.int8_model_bytes):
        build()
    for build in (ocr.fp32_detector_bytes, ocr.int8_detector_bytes):
        build()


# -- protection and cost ----------------------------------------------------------------------
@dataclass(frozen=True)
class PlateOutcome:
    """One annotated plate against one configuration's output."""

    image: str
    source: str
    height_px: float
    coverage: float  # share of the plate box inside the union of the hiding regions
    obscured: bool  # every hiding region over the plate passed the SSIM check
    obscured_coverage: float  # share inside the union of the regions that passed
    box: Box

    @property
    def protected(self) -> bool:
        return self.coverage >= MIN_COVERAGE and self.obscured

    @property
    def reason(self) -> str:
        if self.protected:
            return "protected"
        if self.coverage == 0:
            return "no region"
        if self.coverage < MIN_COVERAGE:
            return "partly covered"
        return "not obscured"

    @property
    def height_bin(self) -> str:
        return height_bin(self.height_px)


@dataclass(frozen=True)
class ImageCost:
    image: str
    regions: int
    share_obscured: float  # by the hiding regions, all of them
    share_outside: float  # by the hiding regions outside annotated plates and face regions
    status: str


def _slices(box: Sequence[float], height: int, width: int) -> tuple[slice, slice]:
    x1, y1, x2, y2 = box
    rows = slice(max(0, math.floor(y1)), min(height, math.ceil(y2)))
    return rows, slice(max(0, math.floor(x1)), min(width, math.ceil(x2)))


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def score_view(view: View, run: Run) -> tuple[list[PlateOutcome], list[ImageCost]]:
    """Every annotated plate's outcome and every image's cost for one run over one view. A
    missing output protects nothing."""
    outcomes: list[PlateOutcome] = []
    costs: list[ImageCost] = []
    for image in view.images:
        before = read_rgb(view.folder / image)
        height, width = before.shape[:2]
        output = run.output(image)
        after = read_rgb(output) if output is not None else None
        regions = run.obscuring(image)
        if after is None or after.shape != before.shape:
            after, regions = before, np.zeros((0, 4), np.int64)
        covered = region_mask(regions, height, width)
        checks = [region_obscured(before, after, r) for r in regions.tolist()]
        passed = region_mask(
            regions[np.asarray([c is not False for c in checks], bool)], height, width
        )
        plates_mask = np.zeros_like(covered)
        for plate in view.plates_of(image):
            rows, cols = _slices(plate.box, height, width)
            plates_mask[rows, cols] = True
            over = [
                c
                for c, r in zip(checks, regions.tolist(), strict=True)
                if _intersects(r, plate.box)
            ]
            outcomes.append(
                PlateOutcome(
                    image=image,
                    source=plate.source,
                    height_px=plate.height_px,
                    coverage=float(covered[rows, cols].mean()) if covered[rows, cols].size else 0.0,
                    obscured=bool(over) and all(c is not False for c in over),
                    obscured_coverage=float(passed[rows, cols].mean())
                    if passed[rows, cols].size
                    else 0.0,
                    box=plate.box,
                )
            )
        faces = region_mask(run.regions(image, ("faces",)), height, width)
        row = run.rows.get(image) or {}
        costs.append(
            ImageCost(
                image=image,
                regions=len(regions),
                share_obscured=float(covered.mean()),
                share_outside=float((covered & ~plates_mask & ~faces).mean()),
                status=str(row.get("status", "missing")),
            )
        )
    return outcomes, costs


def _share(outcomes: Sequence[PlateOutcome], lenient: bool = False) -> dict[str, Any]:
    hits = sum((o.obscured_coverage >= MIN_COVERAGE) if lenient else o.protected for o in outcomes)
    return {
        "plates": len(outcomes),
        "protected": hits,
        "share": hits / len(outcomes) if outcomes else None,
    }


def summarise(outcomes: Sequence[PlateOutcome], costs: Sequence[ImageCost]) -> dict[str, Any]:
    outside = [c.share_outside for c in costs]
    misses = [o for o in outcomes if not o.protected]
    return {
        "protected": _share(outcomes),
        "protected_lenient": _share(outcomes, lenient=True),
        "by_height": {b: _share([o for o in outcomes if o.height_bin == b]) for b in HEIGHT_BINS},
        "area_outside_median": float(np.median(outside)) if outside else None,
        "area_outside_mean": float(np.mean(outside)) if outside else None,
        "area_obscured_mean": float(np.mean([c.share_obscured for c in costs])) if costs else None,
        "regions": sum(c.regions for c in costs),
        "images": len(costs),
        "not_cleaned": {
            c.image: c.status for c in costs if c.status not in ("cleaned", "unchanged")
        },
        "misses": [
            {
                "image": o.image,
                "source": o.source,
                "height_px": round(o.height_px, 1),
                "reason": o.reason,
                "coverage": round(o.coverage, 3),
            }
            for o in sorted(misses, key=lambda o: o.height_px)
        ],
        "miss_reasons": dict(Counter(o.reason for o in misses)),
    }


# -- why a plate was missed -------------------------------------------------------------------
def diagnose(finder: Any, rgb: RGB, box: Box) -> dict[str, Any]:
    """Why the plate at ``box`` was left: ``finder`` (a `veil.text.TextFinder` with the
    preset's sizes) finds the picture's plates and text again, and the text boxes the detector
    draws over the plate are read, to say which step lost it."""
    from veil.text import PLATE_ASPECT, plate_like
    from veil.text.ocr import bgr, crop, sides

    height, width = rgb.shape[:2]
    rows, cols = _slices(box, height, width)
    marks = finder.find(rgb)
    regions = marks.regions(width, height).astype(np.int64).reshape(-1, 4)
    cover = float(region_mask(regions, height, width)[rows, cols].mean())
    kinds = sorted({k for k, r in zip(marks.kinds, regions.tolist(), strict=True)
                    if _intersects(r, box)})  # fmt: skip
    image = bgr(rgb)
    quads, scores = finder.detector.detect(image, finder.scale(image))
    over = [i for i, q in enumerate(quads) if _intersects(_bbox(q), box)]
    readings = finder.recognizer.read([crop(image, quads[i]) for i in over])
    boxes = []
    for i, reading in zip(over, readings, strict=True):
        along, across = sides(quads[i])
        aspect = max(along, across) / max(1.0, min(along, across))
        boxes.append(
            {
                "aspect": round(aspect, 2),
                "height_px": round(min(along, across), 1),
                "reading": reading.text,
                "confidence": round(reading.confidence, 2),
                "plate_shaped": PLATE_ASPECT[0] <= aspect <= PLATE_ASPECT[1],
                "plate_like": plate_like(reading),
                "score": round(float(scores[i]), 3),
            }
        )
    shaped = [b for b in boxes if b["plate_shaped"]]
    if cover > 0:
        cause = f"found ({', '.join(kinds)}), its regions cover {100 * cover:.1f}% of the box"
    elif not boxes:
        cause = "no text box over the plate"
    elif shaped:
        said = ", ".join(f"{b['reading']!r} ({b['confidence']})" for b in shaped)
        cause = f"read {said}: not plate-like"
    else:
        cause = "box not plate-shaped (aspect " + ", ".join(str(b["aspect"]) for b in boxes) + ")"
    return {"cause": cause, "coverage": round(cover, 3), "boxes_over_plate": boxes}


def diagnose_misses(
    view: View, outcomes: Sequence[PlateOutcome], config: Config, finders: dict[str, Any]
) -> list[dict[str, Any]]:
    """`diagnose` for every plate of ``outcomes`` that was not protected."""
    from veil.text import TextFinder

    if config.key not in finders:
        finders[config.key] = TextFinder.for_preset(True, config.text, config.preset, threads=1)
    found = []
    for o in outcomes:
        if not o.protected:
            why = diagnose(finders[config.key], read_rgb(view.folder / o.image), o.box)
            found.append(
                {
                    "image": o.image,
                    "source": o.source,
                    "height_px": round(o.height_px, 1),
                    "reason": o.reason,
                    "run_coverage": round(o.coverage, 3),
                    **why,
                }
            )
    return found


def _bbox(quad: npt.NDArray[np.float32]) -> Box:
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def _scaled(box: Box, factor: float) -> Box:
    return box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor


# -- the OCR attack ---------------------------------------------------------------------------
def lcs(a: str, b: str) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for ca in a:
        current = [0]
        for j, cb in enumerate(b):
            current.append(previous[j] + 1 if ca == cb else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Seen:
    """One text box the attack read: where (the picture's own pixels), what (A-Z0-9), and
    whether veil itself would take it for a plate of 4+ characters (plate-shaped box, a
    plate-like reading): a plate of any car, annotated or not."""

    box: Box
    text: str
    plate_like: bool


class Attacker:
    """Reads every text box of a picture enlarged so that its short side is 736 px, with the
    fp32 detector (veil finds text with an int8 copy; an attacker would use the stronger)."""

    def __init__(self) -> None:
        from veil.text.ocr import Recognizer, TextDetector

        self.detector, self.recognizer = TextDetector(threads=1), Recognizer(threads=1)

    def read(self, path: Path) -> list[Seen]:
        """Every text box of the picture at ``path`` and what it says."""
        from veil.text import PLATE_ASPECT, plate_like
        from veil.text.ocr import bgr, crop, sides

        image = bgr(read_rgb(path))
        height, width = image.shape[:2]
        factor = max(1.0, ATTACK_SHORT_SIDE / min(height, width))
        if factor > 1:
            size = (round(width * factor), round(height * factor))
            image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        quads, _ = self.detector.detect(image, 1.0)
        readings = self.recognizer.read([crop(image, q) for q in quads])
        seen = []
        for quad, reading in zip(quads, readings, strict=True):
            along, across = sides(quad)
            shaped = PLATE_ASPECT[0] <= max(along, across) / max(1.0, min(along, across))
            shaped &= max(along, across) / max(1.0, min(along, across)) <= PLATE_ASPECT[1]
            text = normalised(reading.text)
            like = shaped and plate_like(reading) and len(text) >= MIN_CHARS_IN_ORDER
            seen.append(Seen(_scaled(_bbox(quad), 1 / factor), text, bool(like)))
        return seen


@dataclass(frozen=True)
class Readout:
    """What the attack read of one annotated plate in one picture, and the plate-like text it
    read elsewhere in the picture (other cars' plates, which are not annotated)."""

    image: str
    plate: str
    near_exact: bool
    near_4: bool
    anywhere_exact: bool
    anywhere_4: bool
    best_near: str  # the reading near the plate sharing most characters with it, in order
    boxes: int
    other_plate_like: tuple[str, ...]


def readout(plate: Plate, seen: Sequence[Seen]) -> Readout:
    near = [s.text for s in seen if _intersects(s.box, plate.box)]
    every = [s.text for s in seen]
    need = min(MIN_CHARS_IN_ORDER, len(plate.text))
    best = max(near, key=lambda t: lcs(plate.text, t), default="")
    return Readout(
        image=plate.image,
        plate=plate.text,
        near_exact=any(plate.text in t for t in near),
        near_4=any(lcs(plate.text, t) >= need for t in near),
        anywhere_exact=any(plate.text in t for t in every),
        anywhere_4=any(lcs(plate.text, t) >= need for t in every),
        best_near=best,
        boxes=len(seen),
        other_plate_like=tuple(
            s.text for s in seen if s.plate_like and not _intersects(s.box, plate.box)
        ),
    )


def attack(attacker: Attacker, view: View, folder_of: dict[str, Path | None]) -> list[Readout]:
    """The attack on every image of ``view``; ``folder_of`` maps an image to its file (None:
    no output, read nothing)."""
    out = []
    for image in view.images:
        path = folder_of.get(image)
        texts = attacker.read(path) if path is not None else []
        out += [readout(p, texts) for p in view.plates_of(image)]
    return out


def attack_summary(readouts: Sequence[Readout]) -> dict[str, Any]:
    n = len(readouts)
    counts = {
        key: sum(getattr(r, key) for r in readouts)
        for key in ("near_exact", "near_4", "anywhere_exact", "anywhere_4")
    }
    return {
        "plates": n,
        **counts,
        **{f"{k}_share": (v / n if n else None) for k, v in counts.items()},
        "read_near_4": [r.image for r in readouts if r.near_4],
        "photos_with_other_plate_like": sum(bool(r.other_plate_like) for r in readouts),
        "other_plate_like": sum(len(r.other_plate_like) for r in readouts),
    }


# -- false alarms on the face set -------------------------------------------------------------
def faces_sample(data: Path, size: int, folder: Path) -> list[str]:
    """``size`` photos of the face set spread evenly over it (natural name order), copied
    into ``folder``."""
    photos = load_photos(data, None)
    step = len(photos) / min(size, len(photos))
    chosen = [photos[math.floor(k * step)] for k in range(min(size, len(photos)))]
    _fresh(folder)
    for photo in chosen:
        shutil.copy2(photo.path, folder / photo.name)
    return [p.name for p in chosen]


def false_alarms(
    run: Run, images: Sequence[str], folder: Path, kinds: tuple[str, ...]
) -> dict[str, Any]:
    shares = []
    for image in images:
        with Image.open(folder / image) as im:
            width, height = im.size
        regions = run.regions(image, kinds)
        shares.append(float(region_mask(regions, height, width).mean()))
    values = np.asarray(shares)
    return {
        "images": len(images),
        "regions": int(sum(len(run.regions(i, kinds)) for i in images)),
        "images_with_any": int((values > 0).sum()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "max": float(values.max()),
        "worst": sorted(zip(images, shares, strict=True), key=lambda x: -x[1])[:5],
    }


# -- faces unchanged --------------------------------------------------------------------------
def same_faces(names: Sequence[str], a: Run, b: Run) -> dict[str, Any]:
    """Whether two runs wrote the same report rows (paths aside), the same bytes, and the same
    pixels away from the face regions. veil's fill draws its grain from fresh OS entropy, so
    two runs of the same command differ inside face regions by design; outside them, beyond
    the JPEG blocks they touch and one more (chroma upsampling reaches into neighbours), the
    decoded pixels must be equal."""
    differ_bytes, differ_rows, differ_outside = [], [], []
    for name in names:
        pa, pb = a.output(name), b.output(name)
        if (pa.read_bytes() if pa else None) != (pb.read_bytes() if pb else None):
            differ_bytes.append(name)
        ra, rb = (
            {k: v for k, v in (run.rows.get(name) or {}).items() if k not in ("input", "output")}
            for run in (a, b)
        )
        if ra != rb:
            differ_rows.append(name)
        if pa is None or pb is None:
            continue
        before, after = read_rgb(pa), read_rgb(pb)
        if before.shape != after.shape:
            differ_outside.append(name)
            continue
        height, width = before.shape[:2]
        near = np.zeros((height, width), bool)
        for entry in [*(ra.get("faces") or []), *(rb.get("faces") or [])]:
            x1, y1, x2, y2 = entry["region"]
            gx1, gy1 = (max(0, (v // JPEG_BLOCK - 1) * JPEG_BLOCK) for v in (x1, y1))
            gx2, gy2 = ((-(-v // JPEG_BLOCK) + 1) * JPEG_BLOCK for v in (x2, y2))
            near[gy1:gy2, gx1:gx2] = True
        if (before[~near] != after[~near]).any():
            differ_outside.append(name)
    return {
        "photos": len(names),
        "bytes_differ": differ_bytes,
        "rows_differ": differ_rows,
        "pixels_differ_outside_faces": differ_outside,
    }


def face_regions_differ(names: Sequence[str], a: Run, b: Run) -> list[str]:
    return [
        n for n in names if (a.rows.get(n) or {}).get("faces") != (b.rows.get(n) or {}).get("faces")
    ]


# -- output -----------------------------------------------------------------------------------
def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _count(share: dict[str, Any]) -> str:
    return f"{_pct(share['share'])} ({share['protected']}/{share['plates']})"


PROTECTION_HEADER = (
    "configuration",
    "protected",
    *(f"{b} px" for b in HEIGHT_BINS),
    "only SSIM-passed regions",
    "area outside plate+faces, median",
    "mean",
    "regions",
)


def protection_row(label: str, s: dict[str, Any]) -> list[str]:
    return [
        label,
        _count(s["protected"]),
        *(
            f"{_pct(s['by_height'][b]['share'], 0)} (n={s['by_height'][b]['plates']})"
            for b in HEIGHT_BINS
        ),
        _pct(s["protected_lenient"]["share"]),
        _pct(s["area_outside_median"], 2),
        _pct(s["area_outside_mean"], 2),
        str(s["regions"]),
    ]


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def environment() -> dict[str, Any]:
    """Machine and versions for the header; veil's commit is the repository's unless veil was
    imported from elsewhere (a snapshot of src/ on PYTHONPATH, while the tree moves)."""
    import veil

    def version(name: str) -> str:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
        return "-"

    source = Path(veil.__file__).resolve().parent.parent
    if source == (REPO_ROOT / "src").resolve():
        dirty = _git("status", "--porcelain", "--", "src")
        where = f"at {_git('rev-parse', '--short', 'HEAD')}"
        where += " + uncommitted src changes" if dirty else ""
    else:
        where = f"from {source}"
    return {
        **machine(),
        "python": platform.python_version(),
        "onnxruntime": version("onnxruntime"),
        "rapidocr_models": f"{version('rapidocr_onnxruntime')} (detector), {version('rapidocr')}",
        "veil": f"{version('veil')} {where}",
        "veil_source": str(source),
    }


# -- main -------------------------------------------------------------------------------------
def preset_list(value: str) -> list[str]:
    """argparse type for --presets: "fast,balanced" -> those presets, in PRESETS order."""
    chosen = {part.strip() for part in value.split(",") if part.strip()}
    unknown = chosen - set(PRESETS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"presets are {', '.join(PRESETS)}, comma-separated")
    return [p for p in PRESETS if p in chosen]


def view_list(text: str) -> list[str]:
    """``--views``: names from `VIEWS`, comma-separated; "none" for no view."""
    names = [name for name in text.split(",") if name and name != "none"]
    unknown = [name for name in names if name not in VIEWS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown view {', '.join(unknown)}: choose from {', '.join(VIEWS)} or none"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Licence plates and text (docs/METRICS.md section 6): protected share by "
        "preset, area obscured, time per photo, an OCR attack on the outputs, harder views, "
        "false alarms on the face set, and a check that faces are unchanged.",
    )
    parser.add_argument(
        "data", nargs="?", type=Path, default=DEFAULT_DATA,
        help="folder of photos with NAME.txt annotations (default: ../shared/data/plates/eu)",
    )  # fmt: skip
    parser.add_argument(
        "--faces-data", type=Path, default=DEFAULT_FACES, metavar="DIR",
        help="the face set, for false alarms and the faces check (default: ../shared/data/faces)",
    )  # fmt: skip
    parser.add_argument(
        "--presets", type=preset_list, default=list(PRESETS), metavar="P,P",
        help="presets whose plate protection is measured (default: fast,balanced,thorough); "
        "balanced is always run, for the timing and the text rows",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N dev photos (quick run)"
    )
    parser.add_argument(
        "--faces-sample", type=int, default=200, metavar="N",
        help="face photos for the false-alarm rows, spread over the set (default: 200; 0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=positive_int, default=2, metavar="K",
        help="timed runs of each balanced configuration, taking turns; the fastest counts "
        "(default: 2)",
    )  # fmt: skip
    parser.add_argument(
        "--views", type=view_list, default=list(VIEWS), metavar="V,V",
        help=f"harder views to measure: any of {', '.join(VIEWS)} (default: all), or none",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin veil to core 0 with taskset"
    )
    parser.add_argument(
        "--timing-only", action="store_true",
        help="only time the balanced configurations (a rerun on a quieter machine)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="where results.json goes")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="working folder (default: a temporary folder)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_modules(
        "plates", ("skimage", "cv2", "veil", "rapidocr", "rapidocr_onnxruntime"),
        "run `pip install -e .[bench]` and "
        "`pip install --no-deps 'rapidocr_onnxruntime==1.4.4' 'rapidocr==3.10.0'`",
    )  # fmt: skip
    views_wanted = args.views
    work = (args.out or Path(tempfile.mkdtemp(prefix="veil-plates-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    pin = not args.no_pin and shutil.which("taskset") is not None
    results = benchmark(args, work, views_wanted, pin)
    json_path = args.json or work / "results.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\nwrote {json_path} and {work / 'table.md'}")
    if args.out is None:  # a temporary folder keeps only the results
        for path in work.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    return 0


def benchmark(
    args: argparse.Namespace, work: Path, views_wanted: Sequence[str], pin: bool
) -> dict[str, Any]:
    env = environment()
    today = date.today().isoformat()
    presets = list(args.presets)
    dev = load_dev(args.data, args.limit, work / "dev" / "images")
    print(
        f"{len(dev.plates)} dev photos from {args.data}; working folder {work}; "
        f"veil pinned to core 0: {'yes' if pin else 'no'}",
        flush=True,
    )
    results: dict[str, Any] = {
        "date": today,
        "machine": env,
        "command": " ".join(["python benchmarks/plates.py", *sys.argv[1:]]),
        "data": str(args.data),
        "photos": len(dev.plates),
        "presets": presets,
        "pinned": pin,
    }

    # 3. Time (and the balanced runs scored below): taking turns, the fastest counts.
    print("\n[1/6] timing the balanced configurations, taking turns", flush=True)
    _warm(dev.folder)
    _build_models()
    runs: dict[str, Run] = {}
    for _ in range(args.repeat):
        for config in (FACE_ONLY, PLATES, PLATES_TEXT):
            veil_run(config, dev.folder, work / "dev", pin, runs)
    n = len(dev.plates)
    base = runs[FACE_ONLY.key].best
    timing = {}
    for config in (FACE_ONLY, PLATES, PLATES_TEXT):
        run = runs[config.key]
        best = run.best
        cpu = min(t.cpu_s for t in run.timings)
        timing[config.key] = {
            "label": config.label,
            "wall_s": best.wall_s,
            "cpu_s": best.cpu_s,
            "cpu_s_min": cpu,
            "per_photo_s": best.wall_s / n,
            "cpu_per_photo_s": cpu / n,
            "wall_ratio": best.wall_s / base.wall_s,
            "cpu_ratio": cpu / min(t.cpu_s for t in runs[FACE_ONLY.key].timings),
            "other_load_cores": best.other_load_cores,
            "used_more_than_pinned_core": pin and best.cpu_s > ESCAPE_RATIO * best.wall_s,
            "runs": [asdict(t) for t in run.timings],
        }
    results["timing"] = timing
    if args.timing_only:
        title, header, rows = timing_table(results)
        print(f"\n{env['text']}\n\n== {title} ==\n{render_text(header, rows)}")
        (work / "table.md").write_text(render_markdown(header, rows) + "\n", encoding="utf-8")
        return results

    # 1-2. Protection and cost by preset, on the dev photos.
    print("\n[2/6] the other presets on the dev photos", flush=True)
    for preset in presets:
        config = Config(preset, plates=True)
        if config.key not in runs:
            veil_run(config, dev.folder, work / "dev", pin, runs)
    scored: dict[str, tuple[list[PlateOutcome], list[ImageCost]]] = {}
    dev_configs = [FACE_ONLY, *(Config(p, plates=True) for p in presets)]
    if PLATES not in dev_configs:
        dev_configs.append(PLATES)
    dev_configs.append(PLATES_TEXT)
    for config in dev_configs:
        scored[config.key] = score_view(dev, runs[config.key])
    results["dev"] = {c.key: {"label": c.label, **summarise(*scored[c.key])} for c in dev_configs}
    results["dev_outcomes"] = {
        key: [{**asdict(o), "protected": o.protected} for o in outcomes]
        for key, (outcomes, _) in scored.items()
    }

    # Why each plate was missed, as veil's finder sees the photo at each preset's size.
    finders: dict[str, Any] = {}
    results["dev_miss_diagnoses"] = {
        c.key: diagnose_misses(dev, scored[c.key][0], c, finders) for c in dev_configs[1:]
    }

    # 7b. Faces with plates on are the faces without (same preset: balanced).
    names = dev.images
    results["dev_face_regions_differ"] = {
        c.key: face_regions_differ(names, runs[FACE_ONLY.key], runs[c.key])
        for c in dev_configs[1:]
        if c.preset == FACE_ONLY.preset
    }

    # 4. The OCR attack.
    print("\n[3/6] the OCR attack on the originals and the outputs", flush=True)
    attacker = Attacker()
    attacked: dict[str, list[Readout]] = {
        "original": attack(attacker, dev, {i: dev.folder / i for i in names})
    }
    for config in dev_configs:
        run = runs[config.key]
        attacked[config.key] = attack(attacker, dev, {i: run.output(i) for i in names})
    results["attack"] = {key: attack_summary(r) for key, r in attacked.items()}
    results["attack_readouts"] = {key: [asdict(r) for r in rs] for key, rs in attacked.items()}

    # 5. Harder views.
    print("\n[4/6] harder views", flush=True)
    builders = {
        "half": half_view,
        "mosaic": mosaic_view,
        "oblique": oblique_view,
        "dark": dark_view,
    }
    views = [builders[key](dev, work / key / "images") for key in views_wanted]
    results["views"] = {}
    for view in views:
        _warm(view.folder)
        view_runs: dict[str, Run] = {}
        entry: dict[str, Any] = {"title": view.title, "images": len(view.images)}
        for preset in sorted({*presets, "balanced"}, key=PRESETS.index):
            config = Config(preset, plates=True)
            run = veil_run(config, view.folder, work / view.key, pin, view_runs)
            outcomes, costs = score_view(view, run)
            entry[config.key] = {
                "label": config.label,
                "wall_s": run.best.wall_s,
                **summarise(outcomes, costs),
                "diagnoses": diagnose_misses(view, outcomes, config, finders),
            }
        if view.key == "half":
            balanced = view_runs[PLATES.key]
            entry["attack"] = {
                "original": attack_summary(
                    attack(attacker, view, {i: view.folder / i for i in view.images})
                ),
                PLATES.key: attack_summary(
                    attack(attacker, view, {i: balanced.output(i) for i in view.images})
                ),
            }
        results["views"][view.key] = entry

    # 6. False alarms on the face set; 7. faces unchanged with plates off.
    print("\n[5/6] false alarms on the face set", flush=True)
    if args.faces_sample > 0:
        sample_dir = work / "faces" / "images"
        sample = faces_sample(args.faces_data, args.faces_sample, sample_dir)
        _warm(sample_dir)
        face_runs: dict[str, Run] = {}
        for config in (PLATES, PLATES_TEXT):
            veil_run(config, sample_dir, work / "faces", pin, face_runs)
        results["false_alarms"] = {
            PLATES.key: false_alarms(face_runs[PLATES.key], sample, sample_dir, ("plates",)),
            PLATES_TEXT.key: false_alarms(
                face_runs[PLATES_TEXT.key], sample, sample_dir, ("plates", "text")
            ),
            f"{PLATES_TEXT.key}, plates only": false_alarms(
                face_runs[PLATES_TEXT.key], sample, sample_dir, ("plates",)
            ),
        }
    print("\n[6/6] faces unchanged with --plates off", flush=True)
    check_dir = work / "faces-check" / "images"
    check = faces_sample(args.faces_data, FACE_CHECK_PHOTOS, check_dir)
    checked = {}
    for key, options in (
        ("defaults", []),
        ("plates-off", ["--plates", "off", "--text", "off"]),
        ("defaults-again", []),
    ):
        folder = work / "faces-check"
        run = Run(FACE_ONLY, check_dir, folder / f"out-{key}")
        _, run.rows = run_veil(check_dir, run.out, folder / f"report-{key}.jsonl", options, pin)
        checked[key] = run
    results["faces_unchanged"] = same_faces(check, checked["defaults"], checked["plates-off"])
    results["faces_unchanged_control"] = same_faces(
        check, checked["defaults"], checked["defaults-again"]
    )

    markdown = report(results, dev_configs, views, today)
    (work / "table.md").write_text(markdown + "\n", encoding="utf-8")
    return results


def timing_table(results: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """The time table's title, header and rows."""
    timing = results["timing"]
    rows = []
    for t in timing.values():
        load = "-" if t["other_load_cores"] is None else f"{t['other_load_cores']:.2f}"
        rows.append(
            [
                t["label"],
                f"{t['wall_s']:.1f}",
                f"{t['per_photo_s']:.3f}",
                f"{t['wall_ratio']:.2f}x",
                f"{t['cpu_s_min']:.1f}",
                f"{t['cpu_per_photo_s']:.3f}",
                f"{t['cpu_ratio']:.2f}x",
                load,
                "yes" if t["used_more_than_pinned_core"] else "no",
            ]
        )
    pinned = "taskset -c 0, " if results["pinned"] else ""
    runs = len(next(iter(timing.values()))["runs"])
    title = (
        f"Time, whole process ({pinned}--jobs 1, process start included; {results['photos']} "
        f"photos; wall: the fastest of {runs} runs taking turns, CPU: the least)"
    )
    header = [
        "configuration", "wall (s)", "wall per photo (s)", "wall ratio", "CPU (s)",
        "CPU per photo (s)", "CPU ratio", "other load (cores)", "CPU > wall",
    ]  # fmt: skip
    return title, header, rows


def report(
    results: dict[str, Any], dev_configs: Sequence[Config], views: Sequence[View], today: str
) -> str:
    """Print every table and return them as markdown."""
    env = results["machine"]
    n = results["photos"]
    head = (
        f"Plates and text, {today}, {env['text']}; Python {env['python']}, onnxruntime "
        f"{env['onnxruntime']}, rapidocr models {env['rapidocr_models']}; veil {env['veil']}"
    )
    print(f"\n{head}\n{n} dev photos, one annotated plate each")
    md = [head, ""]

    def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        print(f"\n== {title} ==\n{render_text(header, rows)}")
        md.extend([f"### {title}", "", render_markdown(header, rows), ""])

    rows = [
        protection_row(results["dev"][c.key]["label"], results["dev"][c.key]) for c in dev_configs
    ]
    table(f"Protected plates, dev photos (n={n})", PROTECTION_HEADER, rows)

    table(*timing_table(results))

    rows = []
    for key, a in results["attack"].items():
        label = "original photos" if key == "original" else results["dev"][key]["label"]
        rows.append(
            [
                label,
                f"{a['near_exact']}/{a['plates']}",
                f"{a['near_4']}/{a['plates']}",
                f"{a['anywhere_exact']}/{a['plates']}",
                f"{a['anywhere_4']}/{a['plates']}",
                f"{a['photos_with_other_plate_like']}/{a['plates']} ({a['other_plate_like']})",
            ]
        )
    table(
        f"OCR attack (short side enlarged to {ATTACK_SHORT_SIDE} px): photos whose plate is read",
        ("picture attacked", "near plate, whole text", "near plate, 4+ in order",
         "anywhere, whole text", "anywhere, 4+ in order",
         "other plate-like text, photos (boxes)"),
        rows,
    )  # fmt: skip

    if views:
        rows = []
        for view in views:
            entry = results["views"][view.key]
            for s in entry.values():
                if not isinstance(s, dict) or "protected" not in s:
                    continue
                rows.append(
                    [f"{view.key}: {s['label']}", *protection_row("", s)[1:], f"{s['wall_s']:.1f}"]
                )
        table(
            "Harder views: " + "; ".join(f"{v.key} = {v.title}" for v in views),
            (*PROTECTION_HEADER, "wall (s)"),
            rows,
        )
        half = results["views"].get("half", {}).get("attack")
        if half:
            rows = [
                [k, f"{a['near_exact']}/{a['plates']}", f"{a['near_4']}/{a['plates']}",
                 f"{a['anywhere_exact']}/{a['plates']}", f"{a['anywhere_4']}/{a['plates']}",
                 f"{a['photos_with_other_plate_like']}/{a['plates']} ({a['other_plate_like']})"]
                for k, a in half.items()
            ]  # fmt: skip
            table(
                "OCR attack on the half-size view",
                (
                    "picture attacked",
                    "near, whole",
                    "near, 4+",
                    "anywhere, whole",
                    "anywhere, 4+",
                    "other plate-like text",
                ),
                rows,
            )

    alarms = results.get("false_alarms")
    if alarms:
        rows = [
            [
                key,
                _pct(a["mean"], 2),
                _pct(a["median"], 2),
                _pct(a["p90"], 2),
                _pct(a["max"], 1),
                f"{a['images_with_any']}/{a['images']}",
                str(a["regions"]),
            ]
            for key, a in alarms.items()
        ]
        table(
            "False alarms: share of face-set photos obscured by the regions named",
            ("configuration (regions)", "mean", "median", "p90", "max", "photos with any",
             "regions"),
            rows,
        )  # fmt: skip

    lines = ["", "Misses (photo, plate height in the view's pixels, why):"]
    missed = [
        (f"dev, {results['dev'][k]['label']}", d) for k, d in results["dev_miss_diagnoses"].items()
    ]
    for view in views:
        for s in results["views"][view.key].values():
            if isinstance(s, dict) and "diagnoses" in s:
                missed.append((f"{view.key}, {s['label']}", s["diagnoses"]))
    for title, found in missed:
        lines.append(f"  {title}: {len(found)}")
        for d in found:
            lines.append(
                f"    {d['source']} {d['height_px']:.0f} px, {d['reason']} "
                f"({100 * d['run_coverage']:.1f}%): {d['cause']}"
            )
    for key, differ in results["dev_face_regions_differ"].items():
        lines.append(
            f"face regions differ from the face-only run with {results['dev'][key]['label']}: "
            f"{len(differ)} photos {differ[:10]}"
        )
    for key, what in (
        ("faces_unchanged", "--plates off --text off against defaults"),
        ("faces_unchanged_control", "defaults against defaults (control)"),
    ):
        same = results[key]
        lines.append(
            f"{what}, {same['photos']} face photos: report rows differ in "
            f"{len(same['rows_differ'])}, bytes in {len(same['bytes_differ'])}, pixels outside "
            f"face regions in {len(same['pixels_differ_outside_faces'])}"
        )
    print("\n".join(lines))
    md.extend(["```", *lines[1:], "```"])
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
