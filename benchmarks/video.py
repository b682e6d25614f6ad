"""Faces in video, veil against deface: speed, frame coverage, duration and sync, size (issue 6;
docs/METRICS.md sections 1 and 4 applied to video).

Each tool runs on each clip as its real command line, one whole process timed by
``common.stopwatch`` (wall time, the children's CPU time, other processes' load):

* veil: ``python -m veil clean CLIP -o OUTDIR --report R.jsonl --progress off [--preset P]``;
  its output is the report's ``output`` (OUTDIR/<same name>). A report status other than
  ``cleaned``/``unchanged`` with an output is a failed row carrying the report's error.
* deface 1.5 with its defaults, ``deface CLIP -o OUT``, plus ``--keep-audio`` when the clip has
  an audio stream (without it deface drops the audio).
* with ``--with-copy``, a do-nothing control (the clip copied), which checks the measurement:
  every face must count as visible and the sync as intact.

Then, per clip and in total:

1. Throughput: input frames / wall seconds, and veil's frames/s over deface's on the clips both
   completed. Clips at least 720 px on the short side have their own total: issue 6 asks for
   veil >= 1.5x deface there.
2. Frame coverage. A reference detector looks at the ORIGINAL frames, one frame in N in decode
   order (``--stride``, default 2): veil's CenterFace class at scale 1.3 (veil's own passes use
   0.5, 0.75, 1 and 2) with a confident threshold of 0.5, united with dlib's HOG frontal
   detector without upsampling, which adds large frontal faces (a HOG box with IoU >= 0.3
   against a CenterFace box, or half inside one, is the same face). It costs about 0.3 s per
   720p frame and 0.1 s per 640x480 one on 2 cores, which is why the stride. Every face box at
   least 24 px tall counts; it is *obscured* when the grey-level SSIM between original and
   output frame over the central 60% of the box (at least 10 px each way) is below 0.6:
   METRICS.md's pixel test, which needs no regions from the tool (deface reports none).
   Coverage = obscured / counted faces; the target is veil >= 99.5%. Faces too flat for that
   test (mean local grey std under 6.2: dim footage) are also counted apart, because no smooth
   blur can pass it there (see LOW_CONTRAST_STD). Frames are paired by decode order; when the
   counts differ, by presentation time (the output frame on screen at the original frame's
   timestamp), and the row says so. Frames are turned upright by their display rotation before
   comparing, and an output of another size is scaled back to the original's (deface's ffmpeg
   writer rounds both sides up to a multiple of 16: 640x360 comes out 640x368).
3. Duration and sync, from ffprobe (``-show_entries stream=index,codec_type,start_time,duration,
   nb_frames,r_frame_rate -show_entries format=duration``): decoded frame count equal; video
   duration within one frame (1/fps of the input); audio kept when the input has it; A/V offset
   (audio start - video start) and audio duration within one frame.
4. Output file size over input file size (the bitrate ratio, durations being equal).

A tool that fails on a clip (non-zero exit, no output, an output that does not decode, or a
still picture where the input is animated: deface turns GIFs into stills) is a row saying so,
with the tail of its stderr; it does not stop the run.

Run from the repository root (``pip install -e .[bench,verify]``: scikit-image and dlib)::

    python benchmarks/video.py                  # 14 default clips, ~20 min on 2 cores
    python benchmarks/video.py --clips 'intel-sample-videos/asl_gestures/no.mkv'
    python benchmarks/video.py --presets fast,balanced,thorough --stride 4
    python benchmarks/video.py --all --out DIR  # every clip of the data folder
    python benchmarks/video.py --skip-veil --with-copy --clips '*/preview/classroom.gif'

Progress goes to stderr, the tables to stdout. The working folder (``--out``, default a new
temporary folder) keeps ``table.md``, ``results.json``, the outputs (``out/<tool>/<clip
path>``), each run's log (``logs/``), the reference detections (``detections/``, reused by a
later run with the same stride in the same folder) and ``misses-<tool>.png``: up to 24 missed
faces per tool, original crop beside output crop, labelled clip, frame, height, SSIM and
contrast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common import Timing, positive_int, require_modules, stopwatch
from faces import machine

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "video"
# The four clips >= 720 px, faces of every size, Matroska, animated GIF, audio (d12, d18).
DEFAULT_CLIPS = (
    "liveportrait/assets/examples/source/s32.mp4",
    "liveportrait/assets/examples/source/s18.mp4",
    "liveportrait/assets/examples/driving/d13.mp4",
    "liveportrait/assets/examples/source/s13.mp4",
    "face_recognition/examples/short_hamilton_clip.mp4",
    "intel-sample-videos/one-by-one-person-detection.mp4",
    "intel-sample-videos/asl_gestures/book.mkv",
    "intel-sample-videos/asl_gestures/help.mkv",
    "intel-sample-videos/asl_gestures/no.mkv",
    "intel-sample-videos/asl_gestures/thanks.mkv",
    "intel-sample-videos/preview/classroom.gif",
    "intel-sample-videos/preview/head-pose-face-detection-female-and-male.gif",
    "liveportrait/assets/examples/driving/d12.mp4",
    "liveportrait/assets/examples/driving/d18.mp4",
)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif", ".avi", ".3gp"})
PRESETS = ("fast", "balanced", "thorough")

# The reference detector: independent of the passes veil runs (scales 0.5-2, threshold 0.1).
REF_SCALE = 1.3
REF_THRESHOLD = 0.5
HOG_UPSAMPLE = 0  # dlib's 80x80 window: finds frontal faces from ~80 px tall, ~70 ms per 720p
SAME_FACE_IOU = 0.3
MIN_FACE_PX = 24
DEFAULT_STRIDE = 2
# docs/METRICS.md, section 1: the pixel test of "obscured".
MAX_SSIM = 0.6
CENTRE_SHARE = 0.6
MIN_CENTRE_PX = 10
SSIM_WINDOW = 7  # skimage's default window, as in benchmarks/faces.py
# SSIM per window is (luminance term) x (2 s_xy + C2) / (s_x^2 + s_y^2 + C2), C2 = (0.03 * 255)^2
# (Wang et al. 2004). Flattening a window completely (s_y = 0) leaves C2 / (s_x^2 + C2), which
# stays >= 0.6 while s_x^2 < C2 (1 / 0.6 - 1): faces whose mean local grey std is below ~6.2
# (dim or flat ones) cannot fail the test under any smooth blur, only under a change of
# brightness. They are counted as usual and also reported apart ("low-contrast").
SSIM_C2 = (0.03 * 255) ** 2
LOW_CONTRAST_STD = math.sqrt(SSIM_C2 * (1 / MAX_SSIM - 1))

HD_SHORT_SIDE = 720
TARGET_SPEEDUP = 1.5
TARGET_COVERAGE = 0.995
SHEET_FACES = 24
THUMB_PX = 96
RUN_TIMEOUT_S = 3600
BUSY_WARNING_CORES = 0.25
DETECTOR_ID = f"centerface@{REF_SCALE}/t{REF_THRESHOLD}+hog{HOG_UPSAMPLE}/min{MIN_FACE_PX}"

RGB = npt.NDArray[np.uint8]
Grey = npt.NDArray[np.uint8]
_PROGRESS_LINE = re.compile(r"it/s\]|s/it\]|\d+it \[|^\s*\d+%\|")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- clips -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    path: Path
    #: Path relative to the data folder, the clip's name in tables and under out/.
    name: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)


def select_clips(data: Path, globs: Sequence[str] | None, every: bool) -> list[Clip]:
    """The clips to measure: every video under ``data``, those matching ``globs`` (relative
    to ``data``), or the default set; in the order asked, without duplicates."""
    if every:
        paths = sorted(
            p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        )
    elif globs:
        paths = []
        for pattern in globs:
            matches = sorted(p for p in data.glob(pattern) if p.is_file())
            if not matches:
                log(f"video benchmark: nothing in {data} matches {pattern!r}")
            paths += matches
    else:
        paths = [data / name for name in DEFAULT_CLIPS]
        for missing in (p for p in paths if not p.is_file()):
            log(f"video benchmark: default clip {missing} is missing; left out")
        paths = [p for p in paths if p.is_file()]
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        sys.exit(f"video benchmark: no clips selected in {data}")
    return [Clip(p, p.relative_to(data.resolve()).as_posix()) for p in unique]


# -- ffprobe ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """What ffprobe says about a file's first video and first audio stream."""

    fps: float | None
    video_start_s: float
    video_duration_s: float | None
    audio_start_s: float | None  # None: no audio stream
    audio_duration_s: float | None

    @property
    def has_audio(self) -> bool:
        return self.audio_start_s is not None


def _seconds(value: Any) -> float | None:
    if value in (None, "", "N/A"):
        return None
    text = str(value)
    if ":" in text:  # Matroska DURATION tag, 00:00:02.200000000
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return float(text)


def _rate(value: Any) -> float | None:
    try:
        num, den = str(value).split("/")
        return int(num) / int(den) if int(den) and int(num) else None
    except ValueError:
        return None


def probe(path: Path) -> Probe | None:
    """ffprobe's view of ``path``; None when ffprobe is missing or cannot read it."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    argv = [
        ffprobe,
        "-v",
        "error",
        "-show_entries",
        "stream=index,codec_type,start_time,duration,nb_frames,r_frame_rate",
        "-show_entries",
        "stream_tags=DURATION",
        "-show_entries",
        "format=duration",
        "-of",
        "json",
        str(path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    info = json.loads(done.stdout or "{}")
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        return None
    file_s = _seconds(info.get("format", {}).get("duration"))

    def duration(stream: dict[str, Any]) -> float | None:
        # Matroska keeps no stream duration, at most a DURATION tag; else the file's.
        tagged = _seconds(stream.get("tags", {}).get("DURATION"))
        return _seconds(stream.get("duration")) or tagged or file_s

    return Probe(
        fps=_rate(video.get("r_frame_rate")),
        video_start_s=_seconds(video.get("start_time")) or 0.0,
        video_duration_s=duration(video),
        audio_start_s=None if audio is None else (_seconds(audio.get("start_time")) or 0.0),
        audio_duration_s=None if audio is None else duration(audio),
    )


def sync_failures(before: Probe, after: Probe, frames_in: int, frames_out: int) -> list[str]:
    """How the output's timeline differs from the input's by more than one frame; [] if not."""
    tolerance = 1 / (before.fps or 30.0) + 1e-3  # a millisecond for rounding in the muxers
    failures = []
    if frames_out != frames_in:
        failures.append(f"frames {frames_out}/{frames_in}")
    if before.video_duration_s is not None and after.video_duration_s is not None:
        delta = after.video_duration_s - before.video_duration_s
        if abs(delta) > tolerance:
            failures.append(f"video {delta:+.2f} s")
    if before.has_audio:
        if not after.has_audio:
            failures.append("audio lost")
        else:
            assert before.audio_start_s is not None and after.audio_start_s is not None
            offset = (after.audio_start_s - after.video_start_s) - (
                before.audio_start_s - before.video_start_s
            )
            if abs(offset) > tolerance:
                failures.append(f"A/V offset {offset:+.3f} s")
            if before.audio_duration_s is not None and after.audio_duration_s is not None:
                delta = after.audio_duration_s - before.audio_duration_s
                if abs(delta) > tolerance:
                    failures.append(f"audio {delta:+.2f} s")
    return failures


# -- decoding --------------------------------------------------------------------------------
def decoded(path: Path) -> Iterator[Any]:
    """The video frames of ``path`` in decode order (PyAV ``VideoFrame``s)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def upright(frame: Any) -> RGB:
    """The frame as RGB, turned as its display matrix says (as ffmpeg's autorotate does)."""
    rgb: RGB = frame.to_ndarray(format="rgb24")
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def frame_times(path: Path, fps: float | None) -> list[float]:
    """Presentation time of every frame in decode order (made non-decreasing)."""
    times: list[float] = []
    for n, frame in enumerate(decoded(path)):
        t = frame.time
        times.append(float(t) if t is not None else n / (fps or 30.0))
    return np.maximum.accumulate(np.asarray(times)).tolist() if times else []


def grey(rgb: RGB) -> Grey:
    import cv2

    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


# -- reference detector ----------------------------------------------------------------------
@dataclass(frozen=True)
class Face:
    """A face the reference detector found in an original frame (pixels, upright)."""

    xyxy: tuple[int, int, int, int]
    source: str  # "centerface" or "hog"

    @property
    def height_px(self) -> int:
        return self.xyxy[3] - self.xyxy[1]


def _clipped(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def _same_face(box: Sequence[int], others: Sequence[Sequence[int]]) -> bool:
    """IoU >= 0.3 with one of ``others``, or at least half of ``box`` inside one."""
    x1, y1, x2, y2 = box
    area = max(1, (x2 - x1) * (y2 - y1))
    for a1, b1, a2, b2 in others:
        inter = max(0, min(x2, a2) - max(x1, a1)) * max(0, min(y2, b2) - max(y1, b1))
        union = area + (a2 - a1) * (b2 - b1) - inter
        if inter / max(union, 1) >= SAME_FACE_IOU or inter >= 0.5 * area:
            return True
    return False


class ReferenceDetector:
    """The independent per-frame detector the coverage is measured against."""

    def __init__(self) -> None:
        import dlib

        from veil.detectors import Strategy
        from veil.detectors.centerface import CenterFace

        self._centerface = CenterFace(Strategy(scales=(REF_SCALE,), threshold=REF_THRESHOLD))
        self._hog = dlib.get_frontal_face_detector()
        self.frames = 0
        self.seconds = {"centerface": 0.0, "hog": 0.0}

    def detect(self, rgb: RGB) -> list[Face]:
        """Faces at least ``MIN_FACE_PX`` tall in one upright frame."""
        height, width = rgb.shape[:2]
        start = time.perf_counter()
        found = self._centerface.detect(rgb)
        middle = time.perf_counter()
        rects = self._hog(grey(rgb), HOG_UPSAMPLE)
        self.seconds["centerface"] += middle - start
        self.seconds["hog"] += time.perf_counter() - middle
        self.frames += 1
        faces = [Face(_clipped(box, width, height), "centerface") for box in found.xyxy]
        for rect in rects:
            box = _clipped(
                (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), width, height
            )
            if not _same_face(box, [f.xyxy for f in faces]):
                faces.append(Face(box, "hog"))
        return [f for f in faces if f.height_px >= MIN_FACE_PX and f.xyxy[2] > f.xyxy[0]]

    def stats(self) -> dict[str, Any]:
        per_frame = {k: 1000 * v / max(self.frames, 1) for k, v in self.seconds.items()}
        return {"frames": self.frames, "ms_per_frame": per_frame}


@dataclass
class Original:
    """What the reference detector saw in one clip."""

    frames: int
    width: int
    height: int
    times_s: list[float]
    #: Examined frame index -> faces >= MIN_FACE_PX (frames without faces left out).
    faces: dict[int, list[Face]]
    examined: int

    @property
    def face_count(self) -> int:
        return sum(len(f) for f in self.faces.values())


def analyse(
    clip: Clip, stride: int, detector: ReferenceDetector, cache: Path, fps: float | None
) -> Original:
    """Decode the original, run the reference detector on every ``stride``-th frame; the
    result is kept in ``cache`` keyed by the file's size and time, the stride and detector."""
    stat = clip.path.stat()
    key = [clip.name, stat.st_size, stat.st_mtime_ns, stride, DETECTOR_ID]
    cached = cache / f"{clip.slug}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(cached.read_text())
        if saved["key"] == key:
            faces = {
                int(i): [Face(tuple(f["xyxy"]), f["source"]) for f in fs]
                for i, fs in saved["faces"].items()
            }
            return Original(
                saved["frames"],
                saved["width"],
                saved["height"],
                saved["times_s"],
                faces,
                saved["examined"],
            )
    times: list[float] = []
    faces = {}
    width = height = examined = 0
    for n, frame in enumerate(decoded(clip.path)):
        times.append(float(frame.time) if frame.time is not None else math.nan)
        if n % stride:
            continue
        rgb = upright(frame)
        height, width = rgb.shape[:2]
        examined += 1
        found = detector.detect(rgb)
        if found:
            faces[n] = found
    if any(math.isnan(t) for t in times):
        times = [n / (fps or 30.0) for n in range(len(times))]
    times = np.maximum.accumulate(np.asarray(times)).tolist() if times else []
    original = Original(len(times), width, height, times, faces, examined)
    cache.mkdir(parents=True, exist_ok=True)
    saved_faces = {str(i): [asdict(f) for f in fs] for i, fs in faces.items()}
    payload = {**asdict(original), "faces": saved_faces, "key": key}
    cached.write_text(json.dumps(payload))
    return original


# -- tools -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    label: str  # "veil", "veil fast", "deface", "copy"
    kind: str  # "veil", "deface" or "copy"
    preset: str | None = None

    @property
    def slug(self) -> str:
        return self.label.replace(" ", "-")


@dataclass
class Run:
    """One tool on one clip: its timing, output, and why it failed (None: it did not)."""

    tool: Tool
    clip: Clip
    timing: Timing | None
    output: Path | None
    error: str | None
    log: Path


def stderr_tail(text: str, lines: int = 3, chars: int = 300) -> str:
    """The last meaningful lines of a tool's output, progress bars left out."""
    parts = [p.strip() for p in re.split(r"[\r\n]+", text) if p.strip()]
    parts = [p for p in parts if not _PROGRESS_LINE.search(p)]
    return " / ".join(parts[-lines:])[-chars:]


def timed(argv: list[str], log_path: Path) -> tuple[Timing, int | None, str]:
    """Run ``argv`` to completion (None for the exit code when it timed out), its output into
    ``log_path``; whole-process wall and CPU time."""
    timings: list[Timing] = []
    with stopwatch(timings):
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S
            )
            code, output = done.returncode, f"{done.stdout}\n{done.stderr}"
        except subprocess.TimeoutExpired as exc:
            code, output = None, f"timed out after {RUN_TIMEOUT_S} s\n{exc.stderr!r}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(argv)}\n{output}", encoding="utf-8")
    return timings[0], code, output


def _deface_command() -> str:
    beside = Path(sys.executable).with_name("deface")
    found = str(beside) if beside.exists() else shutil.which("deface")
    if found is None:
        sys.exit("video benchmark: the `deface` command is not installed (pip install deface)")
    return found


def run_tool(tool: Tool, clip: Clip, work: Path, has_audio: bool) -> Run:
    """Run ``tool`` on ``clip`` into ``work/out/<tool>/<clip path>``, timed."""
    target = work / "out" / tool.slug / clip.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # veil leaves existing outputs alone
    logs = work / "logs" / tool.slug
    log_path = logs / f"{clip.slug}.log"
    if tool.kind == "veil":
        report = logs / f"{clip.slug}.jsonl"
        report.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "veil", "clean", str(clip.path), "-o", str(target.parent)]
        argv += ["--report", str(report), "--progress", "off"]
        argv += ["--preset", tool.preset] if tool.preset else []
    elif tool.kind == "deface":
        argv = [_deface_command(), str(clip.path), "-o", str(target)]
        argv += ["--keep-audio"] if has_audio else []
    else:
        argv = ["cp", "--", str(clip.path), str(target)]
    timing, code, output = timed(argv, log_path)
    error = None
    if tool.kind == "veil":
        error, written = _veil_outcome(report, code, output)
        target = written or target
    if error is None and code != 0:
        error = f"exit {code}: {stderr_tail(output)}" if code is not None else "timed out"
    if error is None and (not target.is_file() or target.stat().st_size == 0):
        error = f"wrote no output: {stderr_tail(output)}"
    return Run(tool, clip, timing, target if error is None else None, error, log_path)


def _veil_outcome(report: Path, code: int | None, output: str) -> tuple[str | None, Path | None]:
    """veil's verdict on the clip from its report: (error or None, output path)."""
    try:
        row = json.loads(report.read_text(encoding="utf-8").splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return f"exit {code}, no report: {stderr_tail(output)}", None
    if row.get("output") and row.get("status") in ("cleaned", "unchanged"):
        return None, Path(row["output"])
    return f"{row.get('status')}: {row.get('error') or stderr_tail(output)}", None


# -- scoring ---------------------------------------------------------------------------------
@dataclass
class Miss:
    """A face the tool left visible, with thumbnails for the contact sheet."""

    clip: str
    frame: int
    height_px: int
    ssim: float
    source: str
    contrast: float  # mean local grey std of the original's centre
    before: RGB = field(repr=False)
    after: RGB = field(repr=False)


@dataclass
class Score:
    frames_out: int = 0
    paired_by: str = "order"
    resized_from: str | None = None
    faces: int = 0
    obscured: int = 0
    #: Of those, faces whose centre is too flat for the SSIM test (see LOW_CONTRAST_STD).
    low_contrast: int = 0
    low_contrast_obscured: int = 0
    misses: list[Miss] = field(default_factory=list)  # a sample, at most SHEET_FACES
    sync: list[str] | None = None  # None: ffprobe could not say
    size_ratio: float = math.nan


def _centre(box: Sequence[int], height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the central 60% of ``box``, at least 10 px each way."""
    x1, y1, x2, y2 = box
    half_w = max(MIN_CENTRE_PX, (x2 - x1) * CENTRE_SHARE) / 2
    half_h = max(MIN_CENTRE_PX, (y2 - y1) * CENTRE_SHARE) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    rows = slice(max(0, round(cy - half_h)), min(height, round(cy + half_h)))
    cols = slice(max(0, round(cx - half_w)), min(width, round(cx + half_w)))
    return rows, cols


def centre_ssim(before: Grey, after: Grey, box: Sequence[int]) -> float:
    """Grey SSIM over the central 60% of ``box`` (at least 10 px each way); NaN if too small."""
    from skimage.metrics import structural_similarity

    rows, cols = _centre(box, *before.shape)
    a, b = before[rows, cols], after[rows, cols]
    side = min(a.shape)
    if side < 3:
        return math.nan
    win_size = min(SSIM_WINDOW, side if side % 2 else side - 1)
    ssim = structural_similarity(a, b, win_size=win_size, data_range=255)  # type: ignore[no-untyped-call]
    return float(ssim)


def centre_contrast(before: Grey, box: Sequence[int]) -> float:
    """Mean grey standard deviation over SSIM-sized windows of the centre of ``box``."""
    import cv2

    rows, cols = _centre(box, *before.shape)
    crop = before[rows, cols].astype(np.float64)
    window = (SSIM_WINDOW, SSIM_WINDOW)
    mean, mean_sq = cv2.blur(crop, window), cv2.blur(crop * crop, window)
    return float(np.sqrt(np.clip(mean_sq - mean * mean, 0, None)).mean())


def _thumb(rgb: RGB, box: Sequence[int]) -> RGB:
    """A square crop around ``box`` (half its size again as margin), THUMB_PX a side."""
    import cv2

    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box
    half = max(x2 - x1, y2 - y1) * 0.75
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    crop = rgb[
        max(0, round(cy - half)) : min(height, round(cy + half)),
        max(0, round(cx - half)) : min(width, round(cx + half)),
    ]
    return np.asarray(cv2.resize(crop, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA))


def score(run: Run, original: Original, probe_in: Probe | None, rng: random.Random) -> Score:
    """Frame coverage, sync and size of one completed run; marks the run failed when its
    output is no video (a still picture, nothing decodable)."""
    import cv2

    assert run.output is not None
    result = Score(size_ratio=run.output.stat().st_size / run.clip.path.stat().st_size)
    probe_out = probe(run.output)
    try:
        out_times = frame_times(run.output, probe_out.fps if probe_out else None)
    except Exception as exc:  # PyAV raises many kinds; any of them means no usable output
        run.error = f"output does not decode: {exc}"
        return result
    result.frames_out = len(out_times)
    if not out_times or (len(out_times) == 1 and original.frames > 1):
        run.error = (
            f"wrote a still picture, not a video ({len(out_times)} of {original.frames} frames)"
        )
        return result
    if probe_in is not None and probe_out is not None:
        result.sync = sync_failures(probe_in, probe_out, original.frames, len(out_times))
    if len(out_times) == original.frames:
        pairs = list(range(original.frames))
    else:  # the output frame on screen at each original frame's time
        result.paired_by = "time"
        slack = 0.5 / (probe_in.fps if probe_in and probe_in.fps else 30.0)
        found = np.searchsorted(out_times, np.asarray(original.times_s) + slack, side="right")
        pairs = np.clip(found - 1, 0, len(out_times) - 1).tolist()
    outputs = enumerate(decoded(run.output))
    at, current = -1, None
    seen = 0  # misses so far, for the reservoir sample
    for n, frame in enumerate(decoded(run.clip.path)):
        faces = original.faces.get(n)
        if not faces or n >= len(pairs):
            continue
        while at < pairs[n]:
            step = next(outputs, None)
            if step is None:
                break
            at, current = step
        if current is None:
            break
        before, after = upright(frame), upright(current)
        if after.shape != before.shape:
            result.resized_from = f"{after.shape[1]}x{after.shape[0]}"
            size = (before.shape[1], before.shape[0])
            after = np.asarray(cv2.resize(after, size, interpolation=cv2.INTER_AREA))
        grey_before, grey_after = grey(before), grey(after)
        for face in faces:
            ssim = centre_ssim(grey_before, grey_after, face.xyxy)
            if math.isnan(ssim):
                continue
            contrast = centre_contrast(grey_before, face.xyxy)
            flat = contrast < LOW_CONTRAST_STD
            result.faces += 1
            result.low_contrast += flat
            if ssim < MAX_SSIM:
                result.obscured += 1
                result.low_contrast_obscured += flat
                continue
            seen += 1  # reservoir sampling: every miss equally likely on the sheet
            slot = len(result.misses) if len(result.misses) < SHEET_FACES else rng.randrange(seen)
            if slot < SHEET_FACES:
                miss = Miss(
                    run.clip.name,
                    n,
                    face.height_px,
                    ssim,
                    face.source,
                    contrast,
                    _thumb(before, face.xyxy),
                    _thumb(after, face.xyxy),
                )
                if slot == len(result.misses):
                    result.misses.append(miss)
                else:
                    result.misses[slot] = miss
    return result


# -- contact sheet ---------------------------------------------------------------------------
def contact_sheet(tool: str, misses: Sequence[Sequence[Miss]], total: int, path: Path) -> None:
    """Up to SHEET_FACES misses, taken in turn from each clip: original | output, labelled."""
    from PIL import Image, ImageDraw

    queues = [sorted(m, key=lambda miss: miss.frame) for m in misses if m]
    chosen: list[Miss] = []
    while len(chosen) < SHEET_FACES and any(queues):
        for queue in queues:
            if queue and len(chosen) < SHEET_FACES:
                chosen.append(queue.pop(0))
    columns, label_px, title_px, gap = 4, 26, 22, 8
    tile_w, tile_h = 2 * THUMB_PX + 2, THUMB_PX + label_px
    rows = math.ceil(len(chosen) / columns)
    sheet = Image.new(
        "RGB",
        (columns * (tile_w + gap) + gap, title_px + rows * (tile_h + gap) + gap),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (gap, 5),
        f"{tool}: {total} faces >= {MIN_FACE_PX} px left visible (SSIM >= {MAX_SSIM}); "
        f"{len(chosen)} shown, original | output",
        fill="black",
    )
    for k, miss in enumerate(chosen):
        x = gap + (k % columns) * (tile_w + gap)
        y = title_px + gap + (k // columns) * (tile_h + gap)
        sheet.paste(Image.fromarray(miss.before), (x, y))
        sheet.paste(Image.fromarray(miss.after), (x + THUMB_PX + 2, y))
        name = Path(miss.clip).name
        draw.text((x, y + THUMB_PX + 1), f"{name[:28]} f{miss.frame}", fill="black")
        detail = f"{miss.height_px}px {miss.source} ssim {miss.ssim:.2f} std {miss.contrast:.1f}"
        draw.text((x, y + THUMB_PX + 13), detail, fill="#444444")
    sheet.save(path)


# -- summary ---------------------------------------------------------------------------------
@dataclass
class Row:
    """The figures of one tool on one clip (or a total)."""

    clip: str
    tool: str
    resolution: str
    hd: bool
    frames: int
    audio: bool
    error: str | None
    wall_s: float | None
    cpu_s: float | None
    other_load_cores: float | None
    faces: int = 0
    obscured: int = 0
    low_contrast: int = 0
    low_contrast_obscured: int = 0
    frames_out: int = 0
    paired_by: str = "order"
    resized_from: str | None = None
    sync: list[str] | None = None
    in_bytes: int = 0
    out_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def fps(self) -> float | None:
        return self.frames / self.wall_s if self.ok and self.wall_s else None

    @property
    def coverage(self) -> float | None:
        return self.obscured / self.faces if self.ok and self.faces else None

    @property
    def missed_low_contrast(self) -> int:
        return self.low_contrast - self.low_contrast_obscured

    @property
    def coverage_testable(self) -> float | None:
        """Coverage of the faces with enough contrast for the SSIM test to tell."""
        testable = self.faces - self.low_contrast
        obscured = self.obscured - self.low_contrast_obscured
        return obscured / testable if self.ok and testable else None


def make_row(run: Run, original: Original, probe_in: Probe | None, result: Score | None) -> Row:
    timing = run.timing
    row = Row(
        clip=run.clip.name,
        tool=run.tool.label,
        resolution=f"{original.width}x{original.height}",
        hd=min(original.width, original.height) >= HD_SHORT_SIDE,
        frames=original.frames,
        audio=bool(probe_in and probe_in.has_audio),
        error=run.error,
        wall_s=timing.wall_s if timing else None,
        cpu_s=timing.cpu_s if timing else None,
        other_load_cores=timing.other_load_cores if timing else None,
        in_bytes=run.clip.path.stat().st_size,
    )
    if result is not None:
        row.faces, row.obscured = result.faces, result.obscured
        row.low_contrast = result.low_contrast
        row.low_contrast_obscured = result.low_contrast_obscured
        row.frames_out, row.paired_by = result.frames_out, result.paired_by
        row.resized_from, row.sync = result.resized_from, result.sync
        row.out_bytes = run.output.stat().st_size if run.output else 0
    return row


def total(rows: Sequence[Row], label: str) -> Row:
    """One tool's sum over its completed clips in ``rows``."""
    done = [r for r in rows if r.ok]
    syncs = [r.sync for r in done if r.sync is not None]
    failed = len(rows) - len(done)
    return Row(
        clip=label,
        tool=rows[0].tool,
        resolution="",
        hd=False,
        frames=sum(r.frames for r in done),
        audio=False,
        error=f"{failed} of {len(rows)} clips failed" if failed and not done else None,
        wall_s=sum(r.wall_s or 0.0 for r in done),
        cpu_s=sum(r.cpu_s or 0.0 for r in done),
        other_load_cores=None,
        faces=sum(r.faces for r in done),
        obscured=sum(r.obscured for r in done),
        low_contrast=sum(r.low_contrast for r in done),
        low_contrast_obscured=sum(r.low_contrast_obscured for r in done),
        frames_out=sum(r.frames_out for r in done),
        sync=[f"{sum(not s for s in syncs)}/{len(syncs)} ok"]
        + ([f"{failed} failed"] if failed else []),
        in_bytes=sum(r.in_bytes for r in done),
        out_bytes=sum(r.out_bytes for r in done),
    )


def speed_ratio(rows: Sequence[Row], peer_rows: Sequence[Row]) -> tuple[float | None, int]:
    """frames/s of ``rows`` over the peer's on the clips both completed, and how many."""
    peer = {r.clip: r for r in peer_rows}
    both = [(r, peer[r.clip]) for r in rows if r.ok and r.clip in peer and peer[r.clip].ok]
    mine = sum(r.wall_s or 0.0 for r, _ in both)
    theirs = sum(p.wall_s or 0.0 for _, p in both)
    return (theirs / mine if mine and theirs else None), len(both)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, fmt: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else fmt.format(value)
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


HEADER = (
    "clip", "px", "frames", "tool", "wall s", "CPU s", "fps", "fps vs deface",
    "faces", "missed", "of which low-contrast", "coverage", "coverage w/o low-contrast", "sync",
    "size out/in", "note",
)  # fmt: skip


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_cells(row: Row, ratio: str, clip: str = "", px: str = "", frames: str = "") -> list[str]:
    """One line of the table; ``clip``, ``px`` and ``frames`` only on a clip's first line."""
    lead = [clip, px, frames, row.tool, _num(row.wall_s, "{:.1f}"), _num(row.cpu_s, "{:.1f}")]
    if not row.ok:
        return [*lead, "failed", *[""] * 8, _md(row.error or "")]
    sync = "-" if row.sync is None else ("ok" if not row.sync else "; ".join(row.sync))
    notes = []
    if row.paired_by == "time":
        notes.append(f"paired by time ({row.frames_out} frames out)")
    if row.resized_from:
        notes.append(f"output {row.resized_from}, scaled back")
    size = row.out_bytes / row.in_bytes if row.in_bytes else None
    return [
        *lead,
        _num(row.fps, "{:.1f}"),
        ratio,
        str(row.faces),
        str(row.faces - row.obscured),
        str(row.missed_low_contrast),
        _pct(row.coverage),
        _pct(row.coverage_testable),
        _md(sync),
        _num(size, "{:.2f}x"),
        "; ".join(notes),
    ]


def render(rows: Sequence[Row], tools: Sequence[Tool]) -> tuple[str, dict[str, Any]]:
    """The markdown table (clips >= 720p and their total, the others and theirs, then all
    clips) and the totals as data."""
    by_clip: dict[str, list[Row]] = {}
    for row in rows:
        by_clip.setdefault(row.clip, []).append(row)
    lines = [_md_line(HEADER), "|" + "---|" * 4 + "---:|" * 11 + "---|"]
    groups = (
        (f"clips >= {HD_SHORT_SIDE}p", [c for c, rs in by_clip.items() if rs[0].hd], True),
        (f"clips < {HD_SHORT_SIDE}p", [c for c, rs in by_clip.items() if not rs[0].hd], True),
        ("all clips", list(by_clip), False),
    )
    totals: dict[str, Any] = {}
    for label, clips, itemised in groups:
        if not clips:
            continue
        for clip in clips if itemised else ():
            first = by_clip[clip][0]
            frames = f"{first.frames}{' +audio' if first.audio else ''}"
            for n, row in enumerate(by_clip[clip]):
                heading = (Path(clip).name, row.resolution, frames) if n == 0 else ()
                lines.append(_md_line(table_cells(row, _ratio_cell(row, by_clip[clip]), *heading)))
        per_tool = {
            t.label: [r for c in clips for r in by_clip[c] if r.tool == t.label] for t in tools
        }
        totals[label] = {}
        for n, tool in enumerate(tools):
            summed = total(per_tool[tool.label], label)
            ratio, common = None, 0
            if tool.kind != "deface" and "deface" in per_tool:
                ratio, common = speed_ratio(per_tool[tool.label], per_tool["deface"])
            no_peer = tool.kind == "deface" or "deface" not in per_tool
            cell = "" if no_peer else f"**{_num(ratio, '{:.2f}x')}**"
            if ratio is not None and common < len(clips):
                cell += f" ({common} of {_clips(len(clips))})"
            heading = (f"**{label}**", _clips(len(clips)), "") if n == 0 else ()
            lines.append(_md_line(table_cells(summed, cell, *heading)))
            totals[label][tool.label] = {
                "clips": len(clips),
                "failed": sum(not r.ok for r in per_tool[tool.label]),
                "frames": summed.frames,
                "wall_s": summed.wall_s,
                "cpu_s": summed.cpu_s,
                "fps": summed.fps,
                "fps_vs_deface": ratio,
                "clips_compared": common,
                "faces": summed.faces,
                "missed": summed.faces - summed.obscured,
                "coverage": summed.coverage,
                "low_contrast_faces": summed.low_contrast,
                "missed_low_contrast": summed.missed_low_contrast,
                "coverage_without_low_contrast": summed.coverage_testable,
                "sync": summed.sync,
                "size_ratio": summed.out_bytes / summed.in_bytes if summed.in_bytes else None,
            }
    return "\n".join(lines), totals


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _ratio_cell(row: Row, clip_rows: Sequence[Row]) -> str:
    peer = next((r for r in clip_rows if r.tool == "deface"), None)
    if row.tool == "deface" or peer is None:
        return ""
    if not peer.ok or not row.ok or not row.wall_s or not peer.wall_s:
        return "-"
    return f"{peer.wall_s / row.wall_s:.2f}x"


def targets(totals: dict[str, Any], tools: Sequence[Tool]) -> list[str]:
    lines = []
    hd = totals.get(f"clips >= {HD_SHORT_SIDE}p", {})
    every = totals.get("all clips", {})
    for tool in (t for t in tools if t.kind == "veil"):
        ratio = hd.get(tool.label, {}).get("fps_vs_deface")
        if hd and "deface" in hd:
            met = "met" if ratio is not None and ratio >= TARGET_SPEEDUP else "NOT met"
            lines.append(
                f"- {tool.label}: frames/s over deface's on the {HD_SHORT_SIDE}p clips "
                f"{_num(ratio, '{:.2f}x')} (target >= {TARGET_SPEEDUP}x): {met}"
            )
        figures = every.get(tool.label, {})
        coverage = figures.get("coverage")
        met = "met" if coverage is not None and coverage >= TARGET_COVERAGE else "NOT met"
        lines.append(
            f"- {tool.label}: coverage of faces >= {MIN_FACE_PX} px, all clips, {_pct(coverage)} "
            f"(target >= {100 * TARGET_COVERAGE:.1f}%): {met}; without the low-contrast faces "
            f"{_pct(figures.get('coverage_without_low_contrast'))}"
        )
    return lines


# -- environment -----------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import importlib.metadata as meta
    import platform

    import av

    found = {"python": platform.python_version()}
    for package in ("veil", "deface", "onnxruntime", "av", "dlib-bin", "scikit-image"):
        with contextlib.suppress(meta.PackageNotFoundError):
            found[package] = meta.version(package)
    found["av's FFmpeg"] = str(getattr(av, "ffmpeg_version_info", "?"))
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        first = subprocess.run([ffprobe, "-version"], capture_output=True, text=True).stdout
        found["ffprobe"] = [*first.split(), "?", "?", "?"][2]
    return found


def veil_commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)

    commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    if (
        git("diff", "--quiet", "HEAD", "--", "src").returncode == 1
        or git("ls-files", "--others", "--exclude-standard", "src").stdout.strip()
    ):
        commit += " + uncommitted changes in src/"
    return commit


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Faces in video, veil against deface: speed, frame coverage, sync, size "
        "(issue 6)."
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="video data folder")
    parser.add_argument("--out", type=Path, metavar="DIR", help="working folder (default: temp)")
    parser.add_argument(
        "--clips", nargs="+", metavar="GLOB", help="clips (globs relative to --data)"
    )
    parser.add_argument("--all", action="store_true", help="every video under --data")
    parser.add_argument(
        "--stride",
        type=positive_int,
        default=DEFAULT_STRIDE,
        metavar="N",
        help="check every Nth frame of each clip (default: %(default)s)",
    )
    parser.add_argument(
        "--presets",
        default="",
        metavar="LIST",
        help="veil presets to run, comma-separated (default: veil's default only)",
    )
    parser.add_argument("--skip-deface", action="store_true", help="do not run deface")
    parser.add_argument("--skip-veil", action="store_true", help="do not run veil")
    parser.add_argument(
        "--with-copy", action="store_true", help="add a do-nothing control (the clip copied)"
    )
    args = parser.parse_args(argv)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown presets {unknown}; choose from {', '.join(PRESETS)}")
    args.preset_list = presets
    return args


def tools_from(args: argparse.Namespace) -> list[Tool]:
    tools = []
    if not args.skip_veil:
        if args.preset_list:
            tools += [Tool(f"veil {p}", "veil", p) for p in args.preset_list]
        else:
            tools.append(Tool("veil", "veil"))
    if not args.skip_deface:
        tools.append(Tool("deface", "deface"))
    if args.with_copy:
        tools.append(Tool("copy", "copy"))
    if not tools:
        sys.exit("video benchmark: no tool left to run")
    return tools


def measure_clip(
    clip: Clip,
    tools: Sequence[Tool],
    work: Path,
    stride: int,
    detector: ReferenceDetector,
    rng: random.Random,
    progress: str,
) -> list[tuple[Run, Row, Score | None]]:
    """Every tool on one clip, timed, then the clip's reference faces and each output scored."""
    clip.path.read_bytes()  # page cache warm, so the first tool does not pay for the read
    probe_in = probe(clip.path)
    has_audio = bool(probe_in and probe_in.has_audio)
    runs = []
    for tool in tools:
        run = run_tool(tool, clip, work, has_audio)
        runs.append(run)
        wall = run.timing.wall_s if run.timing else math.nan
        failed = f", FAILED: {run.error}" if run.error else ""
        log(f"{progress} {clip.name}: {tool.label} {wall:.1f} s{failed}")
    begun = time.perf_counter()
    fps = probe_in.fps if probe_in else None
    original = analyse(clip, stride, detector, work / "detections", fps)
    log(
        f"{progress} {clip.name}: {original.frames} frames, {original.face_count} faces >= "
        f"{MIN_FACE_PX} px in {original.examined} examined ({time.perf_counter() - begun:.1f} s)"
    )
    measured = []
    for run in runs:
        result = None
        if run.error is None:
            begun = time.perf_counter()
            result = score(run, original, probe_in, rng)
            took = f"({time.perf_counter() - begun:.1f} s)"
            if run.error is None:
                log(
                    f"  {run.tool.label}: {result.obscured}/{result.faces} obscured, sync "
                    f"{result.sync or 'ok'} {took}"
                )
            else:
                log(f"  {run.tool.label}: FAILED: {run.error} {took}")
        if run.error is not None:
            result = None
        measured.append((run, make_row(run, original, probe_in, result), result))
    return measured


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_modules(
        "video",
        ("av", "cv2", "dlib", "skimage", "deface", "onnxruntime", "veil", "PIL"),
        "run `pip install -e .[bench,verify]` in this environment",
    )
    clips = select_clips(args.data, args.clips, args.all)
    tools = tools_from(args)
    work = (args.out or Path(tempfile.mkdtemp(prefix="veil-video-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(
        f"{_clips(len(clips))} from {args.data}, tools {', '.join(t.label for t in tools)}, "
        f"stride {args.stride}; working folder {work}"
    )
    started = time.perf_counter()
    detector = ReferenceDetector()
    rng = random.Random(6)  # the contact sheets' sample of misses, the same run after run
    measured = []
    for k, clip in enumerate(clips, 1):
        progress = f"[{k}/{len(clips)}]"
        measured += measure_clip(clip, tools, work, args.stride, detector, rng, progress)
    report(measured, tools, work, args, detector, time.perf_counter() - started)
    return 0


def report(
    measured: Sequence[tuple[Run, Row, Score | None]],
    tools: Sequence[Tool],
    work: Path,
    args: argparse.Namespace,
    detector: ReferenceDetector,
    elapsed_s: float,
) -> None:
    """Print the tables, write table.md, results.json and the contact sheets."""
    rows = [row for _, row, _ in measured]
    table, totals = render(rows, tools)
    host, found, commit, today = machine(), versions(), veil_commit(), date.today().isoformat()
    stats = detector.stats()
    if stats["frames"]:
        cost = (
            f"{stats['frames']} frames examined this run, {stats['ms_per_frame']['centerface']:.0f}"
            f" + {stats['ms_per_frame']['hog']:.0f} ms each"
        )
    else:
        cost = f"detections from {work / 'detections'}"
    stride = "every frame" if args.stride == 1 else f"one frame in {args.stride}"
    clip_count = len({row.clip for row in rows})
    head = [
        f"# Faces in video: veil against deface ({today})",
        "",
        f"Machine: {host['text']}. veil {commit}. "
        + ", ".join(f"{k} {v}" for k, v in found.items())
        + ".",
        f"Command: `python benchmarks/video.py {' '.join(sys.argv[1:])}` "
        f"({_clips(clip_count)}, {elapsed_s / 60:.1f} min in all).",
        f"fps = input frames / whole-process wall time. Coverage: faces >= {MIN_FACE_PX} px "
        f"found in the original by CenterFace (scale {REF_SCALE}, threshold {REF_THRESHOLD}) "
        f"and dlib HOG on {stride} ({cost}); obscured when grey SSIM < {MAX_SSIM} over the "
        f"central {100 * CENTRE_SHARE:.0f}% of the face box. Low-contrast: a face whose centre "
        f"has a mean local grey std < {LOW_CONTRAST_STD:.1f}, where no smooth blur brings SSIM "
        f"under {MAX_SSIM}. Sync: frame count, durations and A/V offset within one frame.",
        "",
    ]
    body = [table, "", *targets(totals, tools)]
    # /proc/stat counts in 10 ms ticks: the load during a run shorter than a second is noise.
    loads = [
        r.other_load_cores for r in rows if r.other_load_cores is not None and (r.wall_s or 0) >= 1
    ]
    if loads and max(loads) > BUSY_WARNING_CORES:
        body.append(
            f"- other processes kept up to {max(loads):.2f} cores busy during the timed runs "
            f"(mean {sum(loads) / len(loads):.2f}); speed figures are less reliable"
        )
    for tool in tools:
        misses = [s.misses for run, _, s in measured if s is not None and run.tool == tool]
        count = sum(r.faces - r.obscured for r in rows if r.tool == tool.label and r.ok)
        if count:
            sheet = work / f"misses-{tool.slug}.png"
            contact_sheet(tool.label, misses, count, sheet)
            body.append(f"- {tool.label}: {count} missed faces, a sample in {sheet.name}")
    failures = [
        f"- {run.tool.label} on {run.clip.name}: {_md(run.error)} (log: {run.log})"
        for run, _, _ in measured
        if run.error is not None
    ]
    if failures:
        body += ["", "Failed runs:", *failures]
    text = "\n".join(head + body)
    print(text)
    (work / "table.md").write_text(text + "\n", encoding="utf-8")
    results = {
        "date": today,
        "machine": host,
        "veil_commit": commit,
        "versions": found,
        "command": sys.argv,
        "stride": args.stride,
        "reference_detector": {"id": DETECTOR_ID, **stats},
        "low_contrast_std": LOW_CONTRAST_STD,
        "rows": [
            {
                **asdict(r),
                "fps": r.fps,
                "coverage": r.coverage,
                "coverage_without_low_contrast": r.coverage_testable,
            }
            for r in rows
        ],
        "totals": totals,
        "elapsed_s": elapsed_s,
    }
    (work / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    log(f"wrote {work / 'table.md'}, {work / 'results.json'} and the contact sheets")


if __name__ == "__main__":
    sys.exit(main())
