"""Face protection and speed on real photos: veil against deface (docs/METRICS.md, 1 and 4).

For every ground-truth face of the VOC-annotated set (``../shared/data/faces``) the script asks
whether it was *protected*: the union of the obscured regions a tool reports covers at least 70%
of the face box, and every region over the face was really obscured (grey-level SSIM, input vs
output, below 0.6 over the central 60% of the region). It reports the protected share by face
height, the headline share for faces >= 16 px (and its complement, the leak rate), what false
alarms cost (image area obscured outside faces, PSNR of the pixels outside every region) and
whole-process speed in images/s, with the load other processes put on the machine meanwhile.

Both tools run as their real command lines, each timed as one whole process over the batch:

* veil: ``python -m veil clean IMAGES -o OUT --report REPORT.jsonl``; regions from the report.
* deface 1.5 exactly as the baseline is defined (CenterFace, threshold 0.2, full resolution,
  mask scale 1.3, elliptical blur) on a temporary copy of the images. Its CLI does not print
  boxes, so its regions are recomputed in this process with deface's own ``CenterFace``,
  ``scale_bb`` and the clipping of ``anonymize_frame``.

Views. At full size the dev set is saturated (nearly every face >= 16 px is protected), while
crowd photos hold many small faces. ``--views 1,2,3`` also measures view k: every photo
downscaled by 1/k (Lanczos; JPEG quality 95 into ``DIR/view-k/images/NAME.jpg``) with its boxes
divided by k, run through both command lines and scored by the same rule, so that faces of 16-64
px become crowd-sized. Views 2 and up are also reported together as the *crowd view* ("2+3").
Heights are in the view's pixels. The speed rows come from view 1 only (the real dev photos,
timed ``--repeat`` times); a downscaled view runs each tool once.

Contact sheet. veil's misses among faces >= 16 px in view 1 and in the crowd view, each face
cropped from the view's original image with context (1.6x the box), grouped by the first rule
that holds: *cut by the edge* (box within 2 px of the border), *small* (under 24 px tall),
*masked/occluded* (VOC class con_mascarilla or mascarilla_mal_puesta), *other* (profile, turned,
dark, printed...); tallest first within a group. The counts per group, for both tools and every
view, are printed and stored in results.json.

Run from the repository root (needs ``pip install -e .[bench]``)::

    python benchmarks/faces.py                      # all 853 images, several minutes
    python benchmarks/faces.py --limit 20           # quick check on the first 20 images
    python benchmarks/faces.py DATA --out DIR       # other data folder, keep working files
    python benchmarks/faces.py --repeat 2           # time each tool twice, keep the fastest
    python benchmarks/faces.py --views 1,2,3        # also the crowd view; about 2.5x the time
    python benchmarks/faces.py --limit 60 --views 1,2,3 --out /tmp/crowd   # about 1 min
    python benchmarks/faces.py --veil-option='--threshold 0.2'  # any other `veil clean` option

It prints one table per view (and one for the crowd view), writes ``results.json`` (every
figure, per view under ``views``, view 1's also at the top level as before, and every face's
outcome) and ``table.md`` to the working folder, saves the per-height plot of view 1 to
``docs/faces_protection.png`` and the contact sheet to ``docs/faces_misses.jpg`` (both into the
working folder with ``--limit``, so a quick run does not replace the recorded figures; the sheet
also when no view but 1 is run; ``--plot`` and ``--sheet`` choose other places).
Without ``--out`` the working folder is a new temporary folder whose image copies are removed
at the end; the results stay there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import operator
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from functools import cache, reduce
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from common import Timing, cpu_model, positive_int, require_modules, stopwatch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "faces"
DEFAULT_PLOT = REPO_ROOT / "docs" / "faces_protection.png"
DEFAULT_SHEET = REPO_ROOT / "docs" / "faces_misses.jpg"

# docs/METRICS.md, section 1.
MIN_COVERAGE = 0.7
MAX_SSIM = 0.6
CENTRE_SHARE = 0.6  # central 60% of a region, in each dimension
MIN_CENTRE_PX = 10  # regions whose central part is narrower are not SSIM-checked
HEADLINE_MIN_PX = 16
HEIGHT_EDGES = (16, 32, 64)
HEIGHT_BINS = ("<16", "16-32", "32-64", ">=64")
IDENTICAL_PSNR_DB = 99.0
BUSY_WARNING_CORES = 0.25  # other processes' load above which speed figures are flagged

# Views: view k is every photo downscaled by 1/k (its boxes too), so that faces of 16-64 px at
# full size become crowd-sized. Written as JPEG at this quality, a level that leaves no visible
# artefacts, so the detectors see the downscaled scene and not the encoder.
VIEW_JPEG_QUALITY = 95

# Groups of veil's misses on the contact sheet; the first rule that holds names the group.
EDGE_PX = 2  # a box within this distance of the image border is cut by the edge
SMALL_PX = 24  # below this height (view pixels) a face is small
MASKED_LABELS = frozenset({"con_mascarilla", "mascarilla_mal_puesta"})  # the set's mask classes
MISS_GROUPS = ("cut by the edge", "small", "masked/occluded", "other")
MISS_GROUP_RULES = (
    f"cut by the edge: box within {EDGE_PX} px of the image border",
    f"small: under {SMALL_PX} px tall",
    "masked/occluded: VOC class con_mascarilla or mascarilla_mal_puesta",
    "other: the rest (profile, turned, dark, printed...)",
)

# The deface baseline as METRICS.md defines it (deface 1.5's own defaults, spelled out).
DEFACE_THRESHOLD = 0.2
DEFACE_MASK_SCALE = 1.3

RGB = npt.NDArray[np.uint8]
Regions = npt.NDArray[np.int64]  # (N, 4) x1, y1, x2, y2; slice-exclusive ends


# -- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    """One annotated image: its file, ground-truth face boxes (x1, y1, x2, y2, pixels) with
    their VOC class names, and its view (1: the photo itself; k: downscaled by 1/k)."""

    path: Path
    faces: npt.NDArray[np.float64]
    labels: tuple[str, ...]
    view: int = 1

    @property
    def name(self) -> str:
        return self.path.name


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_photos(data: Path, limit: int | None) -> list[Photo]:
    """The images of ``data/images`` with their VOC boxes, in natural name order.

    Every ``<object>`` is a face whatever its class name (the set's classes are mask states).
    """
    images, annotations = data / "images", data / "annotations"
    if not images.is_dir() or not annotations.is_dir():
        sys.exit(
            f"faces benchmark: no data at {data} (expected images/ and annotations/ in it).\n"
            "Pass the folder of the VOC face set as the first argument; see "
            "../shared/data/README.md."
        )
    paths = sorted((p for p in images.iterdir() if p.suffix.lower() == ".jpg"), key=_natural_key)
    photos = [Photo(p, *read_voc(annotations / f"{p.stem}.xml")) for p in paths[:limit]]
    if not photos:
        sys.exit(f"faces benchmark: no .jpg images in {images}")
    return photos


def read_voc(xml_path: Path) -> tuple[npt.NDArray[np.float64], tuple[str, ...]]:
    """(N, 4) face boxes of one Pascal VOC file and their class names; an image without a file
    has no faces."""
    if not xml_path.exists():
        return np.zeros((0, 4)), ()
    objects = list(ET.parse(xml_path).getroot().iter("object"))
    boxes = [
        [float(obj.findtext(f"bndbox/{key}", "nan")) for key in ("xmin", "ymin", "xmax", "ymax")]
        for obj in objects
    ]
    labels = tuple(obj.findtext("name", "").strip() for obj in objects)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels


def stage_copies(photos: Sequence[Photo], folder: Path) -> list[Path]:
    """Fresh copies of the images in ``folder`` (tools that write next to their input)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return [Path(shutil.copy2(p.path, folder / p.name)) for p in photos]


def read_rgb(path: Path) -> RGB:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# -- views -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """The photos at 1/scale of their size, and the folder both tools work in for them."""

    scale: int
    photos: list[Photo]
    work: Path

    @property
    def title(self) -> str:
        return "view 1, full size" if self.scale == 1 else f"view {self.scale}, 1/{self.scale} size"


def make_view(photos: Sequence[Photo], scale: int, work: Path) -> View:
    """View 1 is the photos as they are, worked on in ``work``. View k > 1 writes every photo
    downscaled by 1/k (Lanczos, which averages like cv2.INTER_AREA when shrinking; JPEG quality
    95) to ``work/view-k/images/NAME.jpg``, divides its boxes by k and works in ``work/view-k``.
    """
    if scale == 1:
        return View(1, list(photos), work)
    folder = work / f"view-{scale}"
    images = folder / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    scaled = []
    for photo in photos:
        path = images / photo.name
        with Image.open(photo.path) as im:
            size = (max(1, round(im.width / scale)), max(1, round(im.height / scale)))
            small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        small.save(path, quality=VIEW_JPEG_QUALITY)
        scaled.append(replace(photo, path=path, faces=photo.faces / scale, view=scale))
    return View(scale, scaled, folder)


# -- tools -----------------------------------------------------------------------------------
@dataclass
class ToolRun:
    """What one tool did to the batch: its timed runs, regions and output per image name."""

    tool: str
    timings: list[Timing]
    regions: dict[str, Regions] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    note: str = ""

    @property
    def best(self) -> Timing:
        """The fastest run: the one least disturbed by anything else on the machine."""
        return min(self.timings, key=lambda t: t.wall_s)


def timed(argv: list[str], log: Path) -> Timing:
    """Run ``argv`` to completion, its output into ``log``; wall time and background load."""
    timings: list[Timing] = []
    with stopwatch(timings):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    log.write_text(f"$ {' '.join(argv[:8])} ...\n{proc.stdout}\n{proc.stderr}", encoding="utf-8")
    if proc.returncode not in (0, 1):  # veil exits 1 when some files failed: that is data
        sys.exit(f"faces benchmark: {argv[0]} exited {proc.returncode}; see {log}")
    return timings[0]


def veil_source(view: View, limited: bool) -> Path:
    """The folder veil cleans: the data itself, a copy of its first N images, or the view's own
    downscaled images (which hold only the images chosen)."""
    if view.scale > 1 or not limited:
        return view.photos[0].path.parent
    source = view.work / "veil-in"
    stage_copies(view.photos, source)
    return source


def time_veil(source: Path, work: Path, veil_options: Sequence[str] = ()) -> Timing:
    """The real ``veil clean`` over the folder, into a fresh output folder, whole process."""
    out, report = work / "veil-out", work / "veil-report.jsonl"
    if out.exists():
        shutil.rmtree(out)  # veil would skip outputs that exist
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "veil", "clean", str(source), "-o", str(out), *veil_options]
    return timed([*argv, "--report", str(report)], work / "veil.log")


def veil_run(work: Path, timings: list[Timing]) -> ToolRun:
    """veil's regions and outputs, read from the report of its last run."""
    run = ToolRun("veil", timings)
    for line in (work / "veil-report.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        name = Path(row["input"]).name
        regions = [face["region"] for face in row["faces"]]
        run.regions[name] = np.asarray(regions, dtype=np.int64).reshape(-1, 4)
        if row["output"]:
            run.outputs[name] = Path(row["output"])
    return run


def _deface_command() -> list[str]:
    beside = Path(sys.executable).with_name("deface")
    found = str(beside) if beside.exists() else shutil.which("deface")
    if found is None:
        sys.exit("faces benchmark: the `deface` command is not installed (pip install deface)")
    return [found]


def time_deface(inputs: Sequence[Path], work: Path) -> Timing:
    """The real ``deface`` CLI over copies of the images (it writes ``NAME_anonymized.jpg``
    beside each input), the baseline settings spelled out, whole process timed."""
    argv = [
        *_deface_command(),
        "--thresh",
        str(DEFACE_THRESHOLD),
        "--mask-scale",
        str(DEFACE_MASK_SCALE),
        "--replacewith",
        "blur",
        *map(str, inputs),
    ]
    log = work / "deface.log"
    timing = timed(argv, log)
    if "Running on" not in log.read_text(encoding="utf-8"):
        sys.exit(f"faces benchmark: deface did not run on onnxruntime (is onnx importable?); {log}")
    return timing


def deface_run(inputs: Sequence[Path], timings: list[Timing]) -> ToolRun:
    """deface's outputs, and its regions recomputed in-process (its CLI does not print them)."""
    centerface = load_deface_centerface()
    # deface hands onnxruntime every available provider and prints the first; list them all.
    providers = ", ".join(
        p.removesuffix("ExecutionProvider") for p in centerface.sess.get_providers()
    )
    run = ToolRun("deface", timings, note=f"onnxruntime, providers: {providers}")
    for src in inputs:
        run.regions[src.name] = deface_regions(centerface, src)
        written = src.with_name(f"{src.stem}_anonymized{src.suffix}")
        if written.exists():
            run.outputs[src.name] = written
    return run


@cache
def load_deface_centerface() -> Any:
    """deface's own CenterFace wrapper, as its CLI builds it (backend auto = onnxruntime)."""
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Running on ..."
        centerface = CenterFace(in_shape=None, backend="auto")
    if centerface.backend != "onnxrt":
        sys.exit("faces benchmark: deface fell back to OpenCV; install onnx and onnxruntime")
    return centerface


def deface_regions(centerface: Any, path: Path) -> Regions:
    """The regions deface 1.5 obscures in one image, computed with deface's own code."""
    import imageio.v2 as iio
    from deface.deface import scale_bb

    frame = iio.imread(path)  # as deface.image_detect reads it
    dets, _ = centerface(frame, threshold=DEFACE_THRESHOLD)
    height, width = frame.shape[:2]
    regions = []
    for det in dets:
        x1, y1, x2, y2 = scale_bb(*det[:4].astype(int), mask_scale=DEFACE_MASK_SCALE)
        # Clipped as deface.anonymize_frame does (its last row and column stay untouched).
        regions.append((max(0, x1), max(0, y1), min(width - 1, x2), min(height - 1, y2)))
    return np.asarray(regions, dtype=np.int64).reshape(-1, 4)


def run_tools(
    view: View, limited: bool, repeat: int, veil_options: Sequence[str]
) -> dict[str, ToolRun]:
    """Both tools over one view, each timed as a whole process; ``repeat`` times alternated for
    view 1 (the speed figures come from it), once for a downscaled view."""
    for p in view.photos:  # warm the page cache so neither tool pays for the first read
        p.path.read_bytes()
    source = veil_source(view, limited)
    deface_inputs = stage_copies(view.photos, view.work / "deface")
    timings: dict[str, list[Timing]] = {"veil": [], "deface": []}
    prefix = "" if view.scale == 1 else f"view {view.scale}, "
    for attempt in range(1, (repeat if view.scale == 1 else 1) + 1):
        # Alternated, so a burst of load hits both alike.
        timings["veil"].append(time_veil(source, view.work, veil_options))
        timings["deface"].append(time_deface(deface_inputs, view.work))
        for tool, runs_so_far in timings.items():
            t = runs_so_far[-1]
            load = "-" if t.other_load_cores is None else f"{t.other_load_cores:.2f}"
            print(
                f"  {prefix}run {attempt}, {tool}: {t.wall_s:.1f} s wall, {t.cpu_s:.1f} s CPU, "
                f"other load {load} cores",
                flush=True,
            )
    runs = [veil_run(view.work, timings["veil"]), deface_run(deface_inputs, timings["deface"])]
    for run in runs:
        other = run.best.other_load_cores
        if view.scale == 1 and other is not None and other > BUSY_WARNING_CORES:
            print(
                f"  warning: other processes kept {other:.2f} cores busy during {run.tool}'s "
                "fastest run; its speed figure is not reliable",
                flush=True,
            )
    return {run.tool: run for run in runs}


# -- metric ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceOutcome:
    """One ground-truth face against one tool's output."""

    image: str
    #: 1 for the photo itself, k for the photo downscaled by 1/k (heights are in its pixels).
    view: int
    height_px: float
    #: Share of the face box inside the union of the tool's regions.
    coverage: float
    #: Every region overlapping the face passed the SSIM check (or was too small to check).
    obscured: bool
    #: Share of the face box inside the union of only the regions that passed the check.
    obscured_coverage: float
    #: The VOC class (a mask state in the dev set) and the box, x1, y1, x2, y2 in view pixels.
    label: str
    box: tuple[float, float, float, float]
    #: The box lies within EDGE_PX of the image border, or crosses it.
    at_edge: bool

    @property
    def protected(self) -> bool:
        """METRICS.md 1 read literally: covered, and every region over the face obscured."""
        return self.coverage >= MIN_COVERAGE and self.obscured

    @property
    def protected_lenient(self) -> bool:
        """Covered by regions that were obscured; a neighbouring region that clips the face
        and fails the check no longer counts against it (a sensitivity check of the rule)."""
        return self.obscured_coverage >= MIN_COVERAGE

    @property
    def height_bin(self) -> str:
        return HEIGHT_BINS[int(np.searchsorted(HEIGHT_EDGES, self.height_px, side="right"))]

    @property
    def group(self) -> str:
        """What kind of face this is, for grouping misses (MISS_GROUP_RULES, first that holds)."""
        if self.at_edge:
            return MISS_GROUPS[0]
        if self.height_px < SMALL_PX:
            return MISS_GROUPS[1]
        if self.label in MASKED_LABELS:
            return MISS_GROUPS[2]
        return MISS_GROUPS[3]


@dataclass(frozen=True)
class ImageCost:
    image: str
    outside_faces_share: float  # image area obscured outside ground-truth boxes
    psnr_outside_db: float | None  # None when every pixel lies in a region


def region_mask(regions: Regions, height: int, width: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), dtype=bool)
    for x1, y1, x2, y2 in regions.tolist():
        mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    return mask


def _box_slices(box: Sequence[float], height: int, width: int) -> tuple[slice, slice]:
    x1, y1, x2, y2 = (round(v) for v in box)
    return slice(max(0, y1), min(height, y2)), slice(max(0, x1), min(width, x2))


def region_obscured(before: RGB, after: RGB, region: Sequence[int]) -> bool | None:
    """SSIM (grey) below 0.6 over the central 60% of ``region``; None when too small to check."""
    from skimage.metrics import structural_similarity

    x1, y1, x2, y2 = region
    margin_x = round((x2 - x1) * (1 - CENTRE_SHARE) / 2)
    margin_y = round((y2 - y1) * (1 - CENTRE_SHARE) / 2)
    rows, cols = slice(y1 + margin_y, y2 - margin_y), slice(x1 + margin_x, x2 - margin_x)
    grey_in, grey_out = _grey(before[rows, cols]), _grey(after[rows, cols])
    side = min(grey_in.shape)
    if grey_in.shape[1] < MIN_CENTRE_PX or side < 3:
        return None
    win_size = min(7, side if side % 2 else side - 1)  # odd, and fits small crops
    ssim = structural_similarity(  # type: ignore[no-untyped-call]
        grey_in, grey_out, win_size=win_size, data_range=255
    )
    return bool(ssim < MAX_SSIM)


def _grey(rgb: RGB) -> RGB:
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def psnr_outside(before: RGB, after: RGB, covered: npt.NDArray[np.bool_]) -> float | None:
    outside = ~covered
    if not outside.any():
        return None
    diff = before[outside].astype(np.float64) - after[outside].astype(np.float64)
    mse = float(np.mean(diff**2))
    return IDENTICAL_PSNR_DB if mse == 0 else 10 * math.log10(255**2 / mse)


def _share_of(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else 0.0


def score_image(
    photo: Photo, regions: Regions, before: RGB, after: RGB | None
) -> tuple[list[FaceOutcome], ImageCost]:
    """Every face's outcome and the false-alarm cost for one image and one tool.

    A missing or mis-sized output protects nothing and counts as no regions.
    """
    height, width = before.shape[:2]
    if after is None or after.shape != before.shape:
        after, regions = before, np.zeros((0, 4), dtype=np.int64)
    covered = region_mask(regions, height, width)
    checks = [region_obscured(before, after, r) for r in regions.tolist()]
    passed = region_mask(
        regions[np.asarray([c is not False for c in checks], dtype=bool)], height, width
    )
    outcomes = []
    faces_mask = np.zeros_like(covered)
    for box, label in zip(photo.faces, photo.labels, strict=True):
        rows, cols = _box_slices(box, height, width)
        faces_mask[rows, cols] = True
        overlapping = [
            check
            for check, (x1, y1, x2, y2) in zip(checks, regions.tolist(), strict=True)
            if min(x2, cols.stop) > max(x1, cols.start) and min(y2, rows.stop) > max(y1, rows.start)
        ]
        outcomes.append(
            FaceOutcome(
                image=photo.name,
                view=photo.view,
                height_px=float(box[3] - box[1]),
                coverage=_share_of(covered[rows, cols]),
                obscured=bool(overlapping) and all(c is not False for c in overlapping),
                obscured_coverage=_share_of(passed[rows, cols]),
                label=label,
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                at_edge=bool(
                    min(box[0], box[1]) <= EDGE_PX
                    or box[2] >= width - EDGE_PX
                    or box[3] >= height - EDGE_PX
                ),
            )
        )
    cost = ImageCost(
        image=photo.name,
        outside_faces_share=float((covered & ~faces_mask).mean()),
        psnr_outside_db=psnr_outside(before, after, covered),
    )
    return outcomes, cost


@dataclass
class Tally:
    """One tool's scored faces and image costs over one view, or several views added up."""

    faces: list[FaceOutcome]
    costs: list[ImageCost]
    images: int
    outputs: int
    regions: int

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.faces + other.faces,
            self.costs + other.costs,
            self.images + other.images,
            self.outputs + other.outputs,
            self.regions + other.regions,
        )


def score_tool(photos: Sequence[Photo], run: ToolRun) -> Tally:
    """Every face's outcome and every image's cost for one tool over one view."""
    outcomes: list[FaceOutcome] = []
    costs: list[ImageCost] = []
    for photo in photos:
        output = run.outputs.get(photo.name)
        after = read_rgb(output) if output is not None else None
        regions = run.regions.get(photo.name, np.zeros((0, 4), dtype=np.int64))
        faces, cost = score_image(photo, regions, read_rgb(photo.path), after)
        outcomes += faces
        costs.append(cost)
    regions_total = int(sum(len(r) for r in run.regions.values()))
    return Tally(outcomes, costs, len(photos), len(run.outputs), regions_total)


# -- summary ---------------------------------------------------------------------------------
def _share(faces: Sequence[FaceOutcome]) -> dict[str, Any]:
    protected = sum(f.protected for f in faces)
    lenient = sum(f.protected_lenient for f in faces)
    return {
        "faces": len(faces),
        "protected": protected,
        "share": protected / len(faces) if faces else None,
        "share_lenient": lenient / len(faces) if faces else None,
    }


def _miss_reason(face: FaceOutcome) -> str:
    if face.coverage == 0:
        return "no region"
    if face.coverage < MIN_COVERAGE:
        return "partly covered"
    return "not obscured"


def misses_16px_up(faces: Sequence[FaceOutcome]) -> list[FaceOutcome]:
    """The faces >= 16 px tall (the headline's) that were not protected."""
    return [f for f in faces if f.height_px >= HEADLINE_MIN_PX and not f.protected]


def summarise(tool: str, tally: Tally, run: ToolRun | None) -> dict[str, Any]:
    """The numbers of METRICS.md 1 for one tool, plus where it misses, and those of 4 (speed)
    when ``run`` is the timed run of one view."""
    faces, costs = tally.faces, tally.costs
    head = _share([f for f in faces if f.height_px >= HEADLINE_MIN_PX])
    psnrs = [c.psnr_outside_db for c in costs if c.psnr_outside_db is not None]
    missed = misses_16px_up(faces)
    by_image = Counter(f.image if f.view == 1 else f"{f.image} (view {f.view})" for f in missed)
    summary: dict[str, Any] = {
        "tool": tool,
        "note": run.note if run else "",
        "images": tally.images,
        "outputs": tally.outputs,
        "regions": tally.regions,
        "by_height": {b: _share([f for f in faces if f.height_bin == b]) for b in HEIGHT_BINS},
        "protected_16px_up": head,
        "leak_rate_16px_up": 1 - head["share"] if head["share"] is not None else None,
        "median_area_obscured_outside_faces": float(
            np.median([c.outside_faces_share for c in costs])
        ),
        "median_psnr_outside_regions_db": float(np.median(psnrs)) if psnrs else None,
    }
    if run is not None:
        summary |= {
            "wall_s": run.best.wall_s,
            "cpu_s": run.best.cpu_s,
            "images_per_s": tally.images / run.best.wall_s,
            "other_load_cores": run.best.other_load_cores,
            "runs": [asdict(t) for t in run.timings],
        }
    groups = Counter(f.group for f in missed)
    summary["misses_16px_up"] = {
        "by_reason": dict(Counter(_miss_reason(f) for f in missed)),
        "by_height": dict(Counter(f.height_bin for f in missed)),
        "by_group": {g: groups[g] for g in MISS_GROUPS},
        "worst_images": by_image.most_common(15),
    }
    return summary


def cross_tab(veil: Sequence[FaceOutcome], deface: Sequence[FaceOutcome]) -> dict[str, int]:
    """Faces >= 16 px protected by both, only one, or neither (same face order for both)."""
    pairs = [(v.protected, d.protected) for v, d in zip(veil, deface, strict=True)]
    heights = [v.height_px for v in veil]
    counts = Counter(pair for pair, h in zip(pairs, heights, strict=True) if h >= HEADLINE_MIN_PX)
    return {
        "both": counts[(True, True)],
        "veil_only": counts[(True, False)],
        "deface_only": counts[(False, True)],
        "neither": counts[(False, False)],
    }


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and accelerator of this machine, for the caption."""
    cpu = cpu_model()
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
        mem_gib = round(mem_kib / 2**20)
    import onnxruntime

    gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    cores = os.cpu_count() or 1
    memory = f"{mem_gib} GiB" if mem_gib is not None else "unknown memory"
    text = f"{cores} cores, {cpu}, {memory}, {'CUDA GPU' if gpu else 'no GPU'}"
    return {"cores": cores, "cpu": cpu, "memory_gib": mem_gib, "gpu": gpu, "text": text}


def _median_resolution(photos: Sequence[Photo]) -> str:
    sizes = []
    for p in photos:
        with Image.open(p.path) as im:
            sizes.append(im.size)
    width, height = np.median(np.asarray(sizes), axis=0)
    return f"{width:.0f}x{height:.0f}"


# -- output ----------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _db(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def table_rows(
    veil: dict[str, Any], deface: dict[str, Any], speed: bool = True
) -> list[tuple[str, str, str, str]]:
    """(metric, veil, deface, veil/deface) rows; the ratio only where a ratio means something.
    Without ``speed`` the timing rows are left out (downscaled views: speed comes from view 1).
    """
    rows: list[tuple[str, str, str, str]] = []
    for b in HEIGHT_BINS:
        v, d = veil["by_height"][b], deface["by_height"][b]
        rows.append(
            (f"protected, height {b} px (n={v['faces']})", _pct(v["share"]), _pct(d["share"]), "")
        )
    v, d = veil["protected_16px_up"], deface["protected_16px_up"]
    rows.append(
        (
            f"**protected, >=16 px** (n={v['faces']})",
            f"**{_pct(v['share'])}**",
            f"**{_pct(d['share'])}**",
            "",
        )
    )
    rows.append(
        (
            "  same, only regions that passed SSIM count",
            _pct(v["share_lenient"]),
            _pct(d["share_lenient"]),
            "",
        )
    )
    for label, key, fmt in (
        ("leak rate, >=16 px", "leak_rate_16px_up", _pct),
        ("median area obscured outside faces", "median_area_obscured_outside_faces", _pct),
        ("median PSNR outside regions (dB)", "median_psnr_outside_regions_db", _db),
    ):
        rows.append((label, fmt(veil[key]), fmt(deface[key]), ""))
    counted = [("regions obscured (all images)", "regions", "{:d}")]
    if speed:
        counted += [
            ("wall time, whole process (s)", "wall_s", "{:.1f}"),
            ("CPU time, whole process (s)", "cpu_s", "{:.1f}"),
            ("speed (images/s)", "images_per_s", "{:.2f}"),
        ]
    for label, key, fmt_n in counted:
        ratio = veil[key] / deface[key] if deface[key] else math.nan
        rows.append((label, fmt_n.format(veil[key]), fmt_n.format(deface[key]), f"{ratio:.2f}x"))
    if speed:
        rows.append(
            (
                "other processes' load while timed (cores)",
                _load(veil["other_load_cores"]),
                _load(deface["other_load_cores"]),
                "",
            )
        )
    return rows


def _load(cores: float | None) -> str:
    return "-" if cores is None else f"{cores:.2f}"


def render_text(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("metric", "veil", "deface", "veil/deface")
    plain = [tuple(cell.replace("**", "") for cell in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in plain) for i in range(4)]
    lines = []
    for n, row in enumerate(plain):
        cells = [row[0].ljust(widths[0]), *(row[i].rjust(widths[i]) for i in range(1, 4))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[tuple[str, str, str, str]]) -> str:
    lines = ["| metric | veil | deface | veil/deface |", "|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def plot_protection(veil: dict[str, Any], deface: dict[str, Any], caption: str, path: Path) -> None:
    """Grouped bars of protected share per face-height bin, veil beside deface."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*(f"{b} px" for b in HEIGHT_BINS), ">=16 px, headline"]
    stats = {
        name: [*(s["by_height"][b] for b in HEIGHT_BINS), s["protected_16px_up"]]
        for name, s in (("veil", veil), ("deface", deface))
    }
    labels = [f"{g}\n(n={s['faces']})" for g, s in zip(groups, stats["veil"], strict=True)]
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for offset, (name, colour) in zip(
        (-0.2, 0.2), (("veil", "#1f6f8b"), ("deface", "#b0b0b0")), strict=True
    ):
        shares = [100 * (s["share"] or 0.0) for s in stats[name]]
        bars = ax.bar(x + offset, shares, width=0.4, label=name, color=colour)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.axvline(len(HEIGHT_BINS) - 0.5, color="#888888", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, labels, fontsize=9)
    ax.set_ylim(0, 108)
    ax.set_ylabel("faces protected (%)")
    ax.set_xlabel("ground-truth face height")
    ax.set_title(
        "Faces protected (region covers >=70% of the face, SSIM < 0.6)", fontsize=11, loc="left"
    )
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.text(0.01, 0.01, caption, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- contact sheet of veil's misses ----------------------------------------------------------
TILE_W, TILE_H = 128, 96  # each miss, scaled to this size
CONTEXT = 1.6  # the crop around a face, in face heights (or widths, for wide boxes)
CAPTION_PX = 38  # three lines under each tile
SHEET_COLUMNS = 10
SHEET_PER_GROUP = 30  # tiles per group and section, tallest first; the rest are only counted
GROUP_COLOURS = {
    MISS_GROUPS[0]: "#d62728",
    MISS_GROUPS[1]: "#ff7f0e",
    MISS_GROUPS[2]: "#1f77b4",
    MISS_GROUPS[3]: "#2ca02c",
}
GROUP_SHORT = dict(zip(MISS_GROUPS, ("edge", "small", "masked", "other"), strict=True))


def miss_tile(image: Image.Image, box: Sequence[float], colour: str) -> Image.Image:
    """The face with context (CONTEXT times its size, outside the image black), scaled to one
    tile, its ground-truth box outlined just outside the face."""
    from PIL import ImageDraw

    x1, y1, x2, y2 = box
    crop_h = CONTEXT * max(y2 - y1, (x2 - x1) * TILE_H / TILE_W, 1.0)
    crop_w = crop_h * TILE_W / TILE_H
    left, top = (x1 + x2 - crop_w) / 2, (y1 + y2 - crop_h) / 2
    crop = (round(left), round(top), round(left + crop_w), round(top + crop_h))
    tile = image.crop(crop).resize((TILE_W, TILE_H), Image.Resampling.BICUBIC)
    sx, sy = TILE_W / (crop[2] - crop[0]), TILE_H / (crop[3] - crop[1])
    outline = [
        (x1 - crop[0]) * sx - 2,
        (y1 - crop[1]) * sy - 2,
        (x2 - crop[0]) * sx + 1,
        (y2 - crop[1]) * sy + 1,
    ]
    ImageDraw.Draw(tile).rectangle(outline, outline=colour, width=1)
    return tile


def miss_sheet(
    sections: Sequence[tuple[str, Sequence[FaceOutcome]]],
    images: dict[tuple[int, str], Path],
    heading: str,
    path: Path,
) -> None:
    """veil's misses, one section per view (title, misses), grouped by MISS_GROUPS and tallest
    first, each tile captioned with image, view, height, group and why it was missed.
    ``images`` maps (view, image name) to the view's original image."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    bold = ImageFont.load_default(size=13)
    gap, line_px = 6, 16
    cell_w, cell_h = TILE_W + gap, TILE_H + CAPTION_PX + gap
    width = gap + SHEET_COLUMNS * cell_w
    # Lay out first (text lines and tiles with their positions), then draw on a sheet that fits.
    texts: list[tuple[int, str, Any, str]] = []  # y, text, font, colour
    tiles: list[tuple[int, int, FaceOutcome]] = []  # x, y, face
    y = gap
    for line in (heading, "groups (the first rule that holds): " + "; ".join(MISS_GROUP_RULES)):
        texts.append((y, line, font, "#333333"))
        y += line_px
    for title, misses in sections:
        y += gap
        counts = Counter(f.group for f in misses)
        summary = ", ".join(f"{g} {counts[g]}" for g in MISS_GROUPS)
        texts.append(
            (
                y,
                f"{title}: {len(misses)} faces >= {HEADLINE_MIN_PX} px missed ({summary})",
                bold,
                "black",
            )
        )
        y += line_px + 4
        for group in MISS_GROUPS:
            in_group = sorted(
                (f for f in misses if f.group == group), key=lambda f: (-f.height_px, f.image)
            )
            if not in_group:
                continue
            shown = in_group[:SHEET_PER_GROUP]
            more = f", the {len(shown)} tallest shown" if len(shown) < len(in_group) else ""
            texts.append((y, f"{group}: {len(in_group)}{more}", font, GROUP_COLOURS[group]))
            y += line_px
            for n, face in enumerate(shown):
                column, row = n % SHEET_COLUMNS, n // SHEET_COLUMNS
                tiles.append((gap + column * cell_w, y + row * cell_h, face))
            y += math.ceil(len(shown) / SHEET_COLUMNS) * cell_h
    sheet = Image.new("RGB", (width, y + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for text_y, text, text_font, colour in texts:
        draw.text((gap, text_y), text, fill=colour, font=text_font)
    opened: dict[Path, Image.Image] = {}
    for x, tile_y, face in tiles:
        source = images[(face.view, face.image)]
        if source not in opened:
            with Image.open(source) as im:
                opened[source] = im.convert("RGB")
        colour = GROUP_COLOURS[face.group]
        sheet.paste(miss_tile(opened[source], face.box, colour), (x, tile_y))
        caption_y = tile_y + TILE_H + 1
        lines = (
            (Path(face.image).stem[-20:], "black"),
            (f"view {face.view}, {face.height_px:.0f} px, {GROUP_SHORT[face.group]}", colour),
            (_miss_reason(face), "#666666"),
        )
        for n, (text, fill) in enumerate(lines):
            draw.text((x, caption_y + 12 * n), text, fill=fill, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)


# -- views measured ---------------------------------------------------------------------------
@dataclass
class ViewResult:
    """Both tools' tallies over one view, or over several views taken together (the crowd
    view); ``runs`` holds a single view's timed runs."""

    views: list[View]
    tallies: dict[str, Tally]
    runs: dict[str, ToolRun] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The name in results.json: "1", "2"... for one view, "2+3" for views together."""
        return "+".join(str(v.scale) for v in self.views)

    @property
    def title(self) -> str:
        if len(self.views) == 1:
            return self.views[0].title
        return f"crowd view, views {self.key} together"

    @property
    def timed(self) -> bool:
        """The speed figures come from view 1 only: the real dev photos."""
        return self.key == "1"

    def __add__(self, other: ViewResult) -> ViewResult:
        tallies = {tool: t + other.tallies[tool] for tool, t in self.tallies.items()}
        return ViewResult(self.views + other.views, tallies)

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {
            tool: summarise(tool, tally, self.runs.get(tool))
            for tool, tally in self.tallies.items()
        }

    def describe(self) -> dict[str, Any]:
        """Images, faces and median resolution of the view(s)."""
        photos = [p for v in self.views for p in v.photos]
        return {
            "images": len(photos),
            "faces": sum(len(p.faces) for p in photos),
            "median_resolution": ", ".join(_median_resolution(v.photos) for v in self.views),
        }


def measure_view(view: View, limited: bool, repeat: int, veil_options: Sequence[str]) -> ViewResult:
    """Run both tools over one view and score every face and image."""
    runs = run_tools(view, limited, repeat, veil_options)
    tallies = {tool: score_tool(view.photos, run) for tool, run in runs.items()}
    return ViewResult([view], tallies, runs)


def report_view(result: ViewResult, headed: bool) -> tuple[str, str, dict[str, Any]]:
    """One view's printed block, markdown table and results.json entry; ``headed`` puts the
    view's title before its text and table (runs of several views)."""
    summaries = result.summaries()
    described = result.describe()
    rows = table_rows(summaries["veil"], summaries["deface"], speed=result.timed)
    both = cross_tab(result.tallies["veil"].faces, result.tallies["deface"].faces)
    about = (
        f"{described['images']} images (median {described['median_resolution']} px), "
        f"{described['faces']} faces"
    )
    lines = [f"== {result.title}: {about} ==" if headed else about, "", render_text(rows), ""]
    lines.append(
        f"faces >=16 px: both protect {both['both']}, veil only {both['veil_only']}, "
        f"deface only {both['deface_only']}, neither {both['neither']}"
    )
    for name, s in summaries.items():
        misses = s["misses_16px_up"]
        worst = ", ".join(f"{img} ({n})" for img, n in misses["worst_images"][:8])
        lines.append(
            f"{name} misses >=16 px by reason {misses['by_reason']}, by height "
            f"{misses['by_height']}; most in: {worst}"
        )
    for name, s in summaries.items():
        groups = ", ".join(f"{g} {n}" for g, n in s["misses_16px_up"]["by_group"].items())
        lines.append(f"{name} misses >=16 px by group: {groups}")
    markdown = render_markdown(rows)
    if headed:
        markdown = f"### {result.title}: {about}\n\n{markdown}"
    entry = {
        "title": result.title,
        "scales": [v.scale for v in result.views],
        **described,
        "speed_measured": result.timed,
        "tools": summaries,
        "faces_16px_up_cross_tab": both,
    }
    return "\n".join(lines), markdown, entry


# -- main ------------------------------------------------------------------------------------
def _check_dependencies() -> None:
    require_modules(
        "faces",
        ("skimage", "matplotlib", "deface", "imageio", "onnx", "veil"),
        "run `pip install -e .[bench]` in this environment",
    )


def view_scales(value: str) -> list[int]:
    """argparse type for --views: "1,2,3" -> [1, 2, 3]; view 1 must be among them."""
    try:
        scales = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        msg = "a comma-separated list of whole numbers, such as 1,2,3"
        raise argparse.ArgumentTypeError(msg) from None
    if not scales or scales[0] < 1:
        raise argparse.ArgumentTypeError("views are whole numbers from 1")
    if scales[0] != 1:
        msg = "must include 1: the speed figures and the plot come from the photos at full size"
        raise argparse.ArgumentTypeError(msg)
    return scales


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Face protection and speed of veil against deface on VOC-annotated photos "
        "(docs/METRICS.md sections 1 and 4)."
    )
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with images/ and annotations/ (default: ../shared/data/faces)",
    )
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N images (quick run)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="working folder (default: a temporary folder)"
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="K",
        help="time each tool K times, alternating, and keep the fastest run (default: 1)",
    )
    parser.add_argument(
        "--preset",
        default="balanced",
        choices=("fast", "balanced", "thorough"),
        help="veil's detection preset (default: %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="veil's --jobs (default: veil's own default, one worker per core)",
    )
    parser.add_argument(
        "--veil-option",
        action="append",
        default=[],
        metavar="OPTS",
        help="more options for `veil clean`, split as a shell would; repeatable, e.g. "
        "--veil-option='--threshold 0.3'",
    )
    parser.add_argument(
        "--views",
        type=view_scales,
        default=[1],
        metavar="1,2,3",
        help="views to measure: k is every photo and box downscaled by 1/k (default: 1, the "
        "photos as they are); views 2 and up are also reported together as the crowd view",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="where the plot goes (default: docs/faces_protection.png; DIR/ with --limit)",
    )
    parser.add_argument(
        "--sheet",
        type=Path,
        metavar="JPG",
        help="where the contact sheet of veil's misses goes (default: docs/faces_misses.jpg "
        "when all images are run with views 2 and up; else DIR/)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _check_dependencies()
    photos = load_photos(args.data, args.limit)
    work = (args.out or Path(tempfile.mkdtemp(prefix="veil-faces-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    limited = args.limit is not None
    plot_path = args.plot or (work / DEFAULT_PLOT.name if limited else DEFAULT_PLOT)
    # The recorded sheet shows the crowd view; a quick run or one without it stays in DIR.
    recorded_sheet = not limited and len(args.views) > 1
    sheet_path = args.sheet or (DEFAULT_SHEET if recorded_sheet else work / DEFAULT_SHEET.name)
    veil_options = ["--preset", args.preset]
    if args.jobs is not None:
        veil_options += ["--jobs", str(args.jobs)]
    for option in args.veil_option:
        veil_options += shlex.split(option)
    views = benchmark(
        photos,
        work,
        plot_path,
        sheet_path,
        limited=limited,
        data=args.data,
        repeat=args.repeat,
        scales=args.views,
        veil_options=veil_options,
    )
    if args.out is None:  # a temporary folder keeps only the results, not the image copies
        for view in views:
            for bulky in ("veil-in", "veil-out", "deface", "images"):
                shutil.rmtree(view.work / bulky, ignore_errors=True)
    return 0


def benchmark(
    photos: Sequence[Photo],
    work: Path,
    plot_path: Path,
    sheet_path: Path,
    limited: bool,
    data: Path,
    repeat: int,
    scales: Sequence[int] = (1,),
    veil_options: Sequence[str] = (),
) -> list[View]:
    """Run both tools over every view and score them; print the tables, write results.json,
    table.md, the plot (view 1) and the contact sheet of veil's misses. Returns the views."""
    host = machine()
    n_faces = sum(len(p.faces) for p in photos)
    print(f"{len(photos)} images, {n_faces} faces from {data}; working folder {work}", flush=True)
    views = [make_view(photos, scale, work) for scale in scales]
    measured = [measure_view(view, limited, repeat, veil_options) for view in views]
    crowd = reduce(operator.add, measured[1:]) if len(measured) > 1 else None
    shown = [*measured, crowd] if crowd is not None and len(crowd.views) > 1 else measured
    today = date.today().isoformat()
    headed = len(shown) > 1
    reports = [report_view(result, headed) for result in shown]

    print(f"\nFace protection and speed, {today}, {host['text']}")
    print(f"veil options: {' '.join(veil_options) or '(defaults)'}")
    if headed:
        print(
            "Speed rows come from view 1 only (the real dev photos); the downscaled views "
            "measure protection."
        )
    for text, _, _ in reports:
        print(f"\n{text}")

    view1 = reports[0][2]
    caption = (
        f"{today} · {host['text']} · {len(photos)} images (median {view1['median_resolution']} "
        f"px), {n_faces} faces · benchmarks/faces.py"
    )
    plot_protection(view1["tools"]["veil"], view1["tools"]["deface"], caption, plot_path)
    sections = [(measured[0].title, misses_16px_up(measured[0].tallies["veil"].faces))]
    if crowd is not None:
        sections.append((crowd.title, misses_16px_up(crowd.tallies["veil"].faces)))
    images = {(p.view, p.name): p.path for view in views for p in view.photos}
    heading = (
        f"veil's misses: faces >= {HEADLINE_MIN_PX} px tall (view pixels) not protected · "
        f"{today} · {len(photos)} images · veil {' '.join(veil_options)} · benchmarks/faces.py"
    )
    miss_sheet(sections, images, heading, sheet_path)
    results = {
        "date": today,
        "machine": host,
        "data": str(data),
        "images": len(photos),
        "faces": n_faces,
        "median_resolution": view1["median_resolution"],
        "command": " ".join(["python benchmarks/faces.py", *sys.argv[1:]]),
        "veil_options": list(veil_options),
        # View 1's figures, where readers of single-view results (faces_presets.py) find them.
        "tools": view1["tools"],
        "faces_16px_up_cross_tab": view1["faces_16px_up_cross_tab"],
        "speed_from_view": 1,
        "crowd_view": crowd.key if crowd is not None else None,
        "miss_groups": dict(zip(MISS_GROUPS, MISS_GROUP_RULES, strict=True)),
        "views": {result.key: entry for result, (_, _, entry) in zip(shown, reports, strict=True)},
        "face_outcomes": [
            {"tool": tool, **asdict(f), "protected": f.protected, "group": f.group}
            for result in measured
            for tool, tally in result.tallies.items()
            for f in tally.faces
        ],
    }
    (work / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if headed:
        note = "Speed rows come from view 1 only (the real dev photos)."
        markdown = "\n\n".join([note, *(md for _, md, _ in reports)])
    else:
        markdown = reports[0][1]
    (work / "table.md").write_text(markdown + "\n", encoding="utf-8")
    print(f"\nwrote {work / 'results.json'}, {work / 'table.md'}, {plot_path} and {sheet_path}")
    return views


if __name__ == "__main__":
    sys.exit(main())
