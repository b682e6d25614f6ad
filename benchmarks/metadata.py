"""Metadata removal on real camera files: veil beside ``exiftool -all=`` and mat2 (METRICS.md 3).

Every media file of the three corpora under ``../shared/data/metadata`` is cleaned by each tool,
then every input and every output is read with the same oracle the tests use
(``exiftool -j -G0:1 -a -n -ee``, counted by ``tests/helpers.identifying_tags``, so the rule of
what is identifying lives in one place). Per tool and corpus it reports: files with identifying
tags before; outputs written; outputs with zero identifying tags; the residual identifying tags;
files refused, with reasons; and fidelity. For still images: decoded pixels, EXIF orientation
applied, identical to the input's (all frames up to ``MAX_FRAMES``); an input ICC profile kept;
the picture the same way up. Pillow decodes them, except: JPEG XL, decoded by libjxl
(imagecodecs), since Pillow has none and veil's plugin is under test; a PNG or TIFF deeper than
8 bits, also compared at its full depth (imagecodecs, tifffile), since Pillow narrows 16-bit
colour to 8; and a DNG, read as a RAW developer reads it (LibRaw, through rawpy): identical
means every visible sensor value, the colour filter pattern, the black and white levels and
the colour matrix the same, the same way up means LibRaw's flip the same, since Pillow reads
only a DNG's preview; and an SVG, drawn by resvg (what veil's svg extra ships) and compared
as RGBA pixels. For videos (and the made corpus's WMA recording): no GPS, location,
serial or owner tag and no data track left (ffprobe), and the video and audio streams
bit-identical (ffmpeg ``streamhash``).

With ``--made`` a fourth corpus, ``made``, is built into the working folder and run the same
way: files the benchmark makes itself with planted identifying metadata, in containers the real
corpora hold no real sample of (DNG, JPEG XL, WMV and WMA, PPM and PGM, animated AVIF, 16-bit
TIFF and PNG, a HEIF photo and a PNG each named ``.jpg``; benchmarks/made_corpus.py). They are
not camera files, and the report says so, listing each with the container it really is and a
table of what each tool made of each. They stay out of the throughput set.

The tools run as their real command lines, each on its own copy of the media files:

* veil: ``python -m veil clean CORPUS -o OUT --faces off --voice keep --report R.jsonl``, one
  call per corpus (its report gives each file's status and the reason for a refusal).
* exiftool: ``exiftool -all= -o OUTFILE INFILE``, one call per file, as scripts call it.
* mat2: ``mat2 FILE...`` in one call per corpus over copies (it writes ``NAME.cleaned.EXT``
  beside each); a file without that output was refused, with mat2's message for it.

Throughput is measured on the JPEG set (every .jpg/.jpeg of the corpora): veil, exiftool per
file, exiftool in one batch call (``exiftool -all= -r -o OUT/%d%f.%e .``) and mat2, each as one
timed whole-process run, with the load other processes put on the machine meanwhile.

Run from the repository root (needs exiftool, mat2 and ffmpeg on PATH)::

    python benchmarks/metadata.py                       # all corpora, a few minutes
    python benchmarks/metadata.py --limit 10            # first 10 media files per corpus
    python benchmarks/metadata.py --tools veil --out D  # only veil, keep working files in D
    python benchmarks/metadata.py --made                # the made corpus too
    python benchmarks/metadata.py --corpora made        # only the made corpus, under a minute

It prints a table per corpus, a combined table (with more than one corpus), the made files'
table (with ``--made``) and the throughput table, and writes
``results.json``, ``table.md`` and ``residuals.txt`` (per tool: every output with identifying
tags left, by tag, every fidelity failure, every refusal) to the working folder (``--out``, else
a new temporary folder).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "metadata"
sys.path.insert(0, str(REPO_ROOT / "tests"))
from common import (  # noqa: E402
    Timing,
    cpu_model,
    positive_int,
    render_markdown,
    render_text,
    stopwatch,
)
from helpers import exiftool_read, identifying_tags  # noqa: E402  (the METRICS.md 3 oracle)
from made_corpus import CORPUS as MADE  # noqa: E402
from made_corpus import MADE as MADE_FILES  # noqa: E402
from made_corpus import build_corpus  # noqa: E402

TOOLS = ("veil", "exiftool", "mat2")
LABELS = {"veil": "veil", "exiftool": "exiftool -all=", "mat2": "mat2"}
# Formats exiftool labels application/* that are still pictures or video containers.
MEDIA_APPLICATION_EXTS = {".psd", ".eps", ".dcm", ".miff", ".mxf"}
# Files exiftool cannot identify are media when their extension says so: the corpora hold
# deliberately broken media (a 0-byte .jpg) that a cleaner must refuse, and picture formats
# newer than exiftool 12.57 (WordPerfect graphics .wpg, astronomy .xisf).
MEDIA_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif",
              ".gif", ".mp4", ".mov", ".nef", ".wpg", ".xisf"}  # fmt: skip
JPEG_EXTS = {".jpg", ".jpeg"}
# Still formats whose image sequences exiftool labels video/mp4 (an ISO BMFF track): their
# frames are compared as pictures, all up to MAX_FRAMES, not as streams.
SEQUENCE_EXTS = {".avif", ".heic", ".heif", ".hif"}
DNG_MIME = "image/x-adobe-dng"
SVG_MIME = "image/svg+xml"
JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")  # codestream, container
MAX_FRAMES = 64  # beyond this only the first frame is compared (cost, not principle)
READ_CHUNK = 100  # paths per exiftool read: one process, bounded by helpers' 300 s timeout
# Video tags METRICS.md 3 singles out for video: where, and which device or person.
VIDEO_PRIVATE = re.compile(r"GPS|Location|ISO6709|Coordinates|Serial|Owner", re.IGNORECASE)
BUSY_WARNING_CORES = 0.25  # as benchmarks/faces.py: above this, speed figures are flagged

Array = npt.NDArray[Any]


# -- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Media:
    """One media file of a corpus: ``rel`` is its path inside the corpus folder."""

    corpus: str
    rel: str
    source: Path
    mime: str

    @property
    def is_video(self) -> bool:
        """Checked as streams (tags, data tracks, stream hashes): videos and, from the made
        corpus only, sound recordings (the real corpora's loader takes no audio)."""
        ext = Path(self.rel).suffix.lower()
        if ext in SEQUENCE_EXTS:
            return False
        return self.mime.startswith(("video/", "audio/")) or ext == ".mxf"

    @property
    def is_dng(self) -> bool:
        return self.mime == DNG_MIME

    @property
    def is_svg(self) -> bool:
        return self.mime == SVG_MIME

    @property
    def is_jpeg(self) -> bool:
        return Path(self.rel).suffix.lower() in JPEG_EXTS


def _mimes(paths: Sequence[Path]) -> dict[str, str]:
    """exiftool's MIMEType per path ('' when it cannot tell), read in one call."""
    found: dict[str, str] = {}
    for start in range(0, len(paths), 500):
        chunk = [str(p) for p in paths[start : start + 500]]
        proc = subprocess.run(
            ["exiftool", "-j", "-q", "-q", "-MIMEType", "--", *chunk],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        rows = json.loads(proc.stdout) if proc.stdout.strip() else []
        found.update({row["SourceFile"]: row.get("MIMEType", "") for row in rows})
    return {str(p): found.get(str(p), "") for p in paths}


def is_media(path: Path, mime: str) -> bool:
    ext = path.suffix.lower()
    if mime.startswith(("image/", "video/")):
        return True
    return ext in MEDIA_APPLICATION_EXTS or (not mime and ext in MEDIA_EXTS)


def load_corpora(
    data: Path, limit: int | None
) -> tuple[dict[str, list[Media]], dict[str, Counter[str]]]:
    """Media files per corpus (sorted, first ``limit``), and what was excluded, by reason."""
    corpora = sorted(p for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
    if not corpora:
        sys.exit(f"metadata benchmark: no corpus folders in {data}; see ../shared/data/README.md")
    media: dict[str, list[Media]] = {}
    excluded: dict[str, Counter[str]] = {}
    for folder in corpora:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        mimes = _mimes(files)
        chosen, skipped = [], Counter[str]()
        for path in files:
            mime = mimes[str(path)]
            if is_media(path, mime):
                chosen.append(Media(folder.name, str(path.relative_to(folder)), path, mime))
            else:
                skipped[f"{path.suffix.lower() or '(none)'} ({mime or 'unknown to exiftool'})"] += 1
        media[folder.name] = chosen[:limit]
        excluded[folder.name] = skipped
    return media, excluded


def stage(files: Sequence[Media], root: Path) -> None:
    """Fresh copies of ``files`` below ``root/<corpus>/<rel>`` (tools get their own copies)."""
    for corpus in {m.corpus for m in files}:
        shutil.rmtree(root / corpus, ignore_errors=True)
    for m in files:
        dst = root / m.corpus / m.rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(m.source, dst)


# -- timing ----------------------------------------------------------------------------------
def run(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, cwd=cwd)


# -- tools -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a tool did with one input: its output (None when refused) and why not."""

    output: Path | None
    status: str
    error: str | None = None


@dataclass
class ToolRun:
    tool: str
    outcomes: dict[str, Outcome]  # by the input's path inside its corpus
    timing: Timing


def run_veil(source: Path, out: Path, report: Path) -> ToolRun:
    """One ``veil clean`` over a corpus folder; outcomes read from its report."""
    shutil.rmtree(out, ignore_errors=True)  # veil keeps outputs that exist
    report.unlink(missing_ok=True)
    # Metadata only, as the peers do it: no face obscured and no voice changed (the default
    # anonymises speech, which re-encodes a sound track).
    argv = [sys.executable, "-m", "veil", "clean", str(source), "-o", str(out), "--faces", "off"]
    argv += ["--voice", "keep"]
    timing: list[Timing] = []
    with stopwatch(timing):
        proc = run([*argv, "--report", str(report)])
    if proc.returncode not in (0, 1) or not report.exists():  # 1: some files failed, that is data
        sys.exit(f"metadata benchmark: veil exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    outcomes = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rel = str(Path(row["input"]).relative_to(source))
        output = Path(row["output"]) if row["output"] else None
        outcomes[rel] = Outcome(output, row["status"], row["error"])
    return ToolRun("veil", outcomes, timing[0])


def run_exiftool_each(source: Path, out: Path, rels: Sequence[str]) -> ToolRun:
    """``exiftool -all= -o OUTFILE INFILE`` per file, the loop timed as a whole."""
    shutil.rmtree(out, ignore_errors=True)
    for rel in rels:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    timing: list[Timing] = []
    with stopwatch(timing):
        for rel in rels:
            proc = run(["exiftool", "-all=", "-o", str(out / rel), "--", str(source / rel)])
            outcomes[rel] = _exiftool_outcome(proc, out / rel, source / rel)
    return ToolRun("exiftool", outcomes, timing[0])


def _exiftool_outcome(proc: subprocess.CompletedProcess[str], dst: Path, src: Path) -> Outcome:
    if dst.exists():
        return Outcome(dst, "written")
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")] or [proc.stderr]
    return Outcome(None, "refused", _plain(lines[0], src) or f"exit {proc.returncode}")


def run_exiftool_batch(source: Path, out: Path) -> Timing:
    """One ``exiftool -all= -r`` over the folder, mirroring it below ``out`` (throughput)."""
    shutil.rmtree(out, ignore_errors=True)
    timing: list[Timing] = []
    with stopwatch(timing):
        run(["exiftool", "-all=", "-r", "-o", f"{out}/%d%f.%e", "."], cwd=source)
    return timing[0]


def run_mat2(scratch: Path, rels: Sequence[str]) -> ToolRun:
    """One ``mat2`` call over copies in ``scratch``; NAME.cleaned.EXT beside each or refused."""
    timing: list[Timing] = []
    with stopwatch(timing):
        proc = run(["mat2", *(str(scratch / rel) for rel in rels)])
    outcomes = {}
    for rel in rels:
        src = scratch / rel
        dst = src.with_name(f"{src.stem}.cleaned{src.suffix}")
        if dst.exists():
            outcomes[rel] = Outcome(dst, "written")
            continue
        # mat2 cleans files in parallel and its messages interleave, so ask again for this
        # one file (untimed) to get its own reason.
        again = run(["mat2", str(src)])
        said = [ln for ln in (again.stdout + again.stderr).splitlines() if ln.strip()]
        error = _plain(said[-1], src) if said else f"no output (exit {proc.returncode})"
        outcomes[rel] = Outcome(None, "refused", error)
    return ToolRun("mat2", outcomes, timing[0])


def _plain(message: str, path: Path) -> str:
    """A tool's message without the file's path, so equal reasons count together."""
    text = message.replace(str(path), "FILE").replace(" - FILE", "").replace("[-] ", "")
    return text.strip().rstrip(":").strip()


# -- oracle and fidelity ---------------------------------------------------------------------
def read_tags(paths: Sequence[Path]) -> dict[Path, dict[str, Any]]:
    """Every tag of every path, with helpers.exiftool_read in chunks (one process each)."""
    rows: dict[Path, dict[str, Any]] = {}
    for start in range(0, len(paths), READ_CHUNK):
        chunk = list(paths[start : start + READ_CHUNK])
        for path, row in zip(chunk, exiftool_read(*chunk), strict=True):
            rows[path] = row
    return rows


def _has_icc(row: dict[str, Any], icc: bytes | None) -> bool:
    return bool(icc) or any(key.startswith("ICC_Profile:") for key in row)


def displayed_frames(path: Path) -> tuple[list[Image.Image], bytes | None]:
    """Frames as displayed (EXIF orientation applied), all up to MAX_FRAMES, and the ICC."""
    with path.open("rb") as f:
        head = f.read(12)
    if head.startswith(JXL_SIGNATURES):
        return jxl_frames(path), None
    with Image.open(path) as im:
        icc = im.info.get("icc_profile")
        # An MPO's later frames are previews and stereo pairs, not the picture; cleaners drop them.
        count = 1 if im.format == "MPO" else getattr(im, "n_frames", 1)
        frames = []
        for index in range(count if count <= MAX_FRAMES else 1):
            im.seek(index)
            frames.append(ImageOps.exif_transpose(im))
        return frames, icc


def jxl_frames(path: Path) -> list[Image.Image]:
    """A JPEG XL file's frames, decoded by libjxl (imagecodecs), orientation applied as libjxl
    does by default: Pillow has no JPEG XL decoder of its own, and veil's plugin is the tool
    under test. The ICC profile is not read (the made file has none)."""
    import imagecodecs

    data = path.read_bytes()
    whole, first = imagecodecs.jpegxl_decode(data), imagecodecs.jpegxl_decode(data, index=0)
    stack = [whole] if whole.shape == first.shape else list(whole)
    return [Image.fromarray(frame) for frame in (stack if len(stack) <= MAX_FRAMES else stack[:1])]


def deep_samples(path: Path) -> Array | None:
    """A 16-bit PNG's or a TIFF's first picture at its full depth, as stored (no orientation
    applied), or None for other kinds: Pillow narrows 16-bit colour to 8 bits, so the displayed
    comparison alone would call a picture that lost its low byte identical."""
    with path.open("rb") as f:
        head = f.read(25)
    # IHDR's bit depth (byte 24) first: decoding every 8-bit PNG twice would be wasted work.
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[24:25] == b"\x10":
        import imagecodecs

        return np.asarray(imagecodecs.png_decode(path.read_bytes()))
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        import tifffile

        return np.asarray(tifffile.imread(path, key=0))
    return None


def _orient(samples: Array, orientation: int) -> Array:
    """``samples`` as displayed under EXIF ``orientation`` (as ImageOps.exif_transpose)."""
    turned = {3: np.rot90(samples, 2), 6: np.rot90(samples, -1), 8: np.rot90(samples, 1),
              2: samples[:, ::-1], 4: samples[::-1], 5: np.rot90(samples, 1)[::-1],
              7: np.rot90(samples, -1)[::-1]}  # fmt: skip
    return turned.get(orientation, samples)


def deep_problem(src: Path, dst: Path) -> str | None:
    """Why a deeper-than-8-bit input's output is not the same to the bit, or None when it is
    (or when the input is 8-bit or of another kind: the displayed comparison covers those)."""
    try:
        before = deep_samples(src)
    except Exception:  # an input the full-depth readers cannot read: Pillow's check stands
        return None
    if before is None or before.dtype.itemsize == 1:
        return None
    try:
        after = deep_samples(dst)
    except Exception as exc:
        return f"output not readable at full depth ({type(exc).__name__}: {exc})"
    if after is None or after.dtype != before.dtype:
        got = "not a 16-bit PNG nor a TIFF" if after is None else after.dtype
        return f"samples {before.dtype} -> {got}"
    a = _orient(before, _orientation(src))
    b = _orient(after, _orientation(dst))
    if a.shape != b.shape:
        return f"full-depth shape {a.shape} -> {b.shape}"
    if np.array_equal(a, b):
        return None
    changed = (a != b).reshape(a.shape[0], a.shape[1], -1).any(axis=2)
    return f"{before.dtype} samples differ: {int(changed.sum())} of {changed.size} px"


def _orientation(path: Path) -> int:
    """The EXIF orientation Pillow would apply (1 where Pillow cannot open the file)."""
    try:
        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # the samples compare as stored then
        return 1


def _icc_colour(profile: bytes) -> bytes:
    """The profile without its creation date (bytes 24-35) and profile ID (84-99, an MD5 over
    the rest): a cleaner may zero the date, which dates the device's set-up, and must then
    recompute the ID; neither changes a colour (ICC.1:2010, 7.2.1 and 7.2.18)."""
    return profile[:24] + bytes(12) + profile[36:84] + bytes(16) + profile[100:]


def _comparable(a: Image.Image, b: Image.Image) -> tuple[Array, Array]:
    """Pixel arrays to compare: raw when the modes agree, else RGBA (a palette may be
    reordered without changing a single colour, so palette images compare as colours too)."""
    if a.mode == b.mode and a.mode not in ("P", "PA"):
        return np.asarray(a), np.asarray(b)
    return np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA"))


def _upright(a: Image.Image, b: Image.Image) -> bool:
    """False when ``b`` is ``a`` turned or mirrored: some other rotation or flip of ``b``
    matches ``a`` clearly better than ``b`` itself (compared as small grey thumbnails)."""
    size = (64, 64)
    small_a = np.asarray(a.convert("L").resize(size), dtype=np.float64)
    small_b = np.asarray(b.convert("L").resize(size), dtype=np.float64)
    same = float(np.mean(np.abs(small_a - small_b)))
    variants = [np.rot90(small_b, k) for k in (1, 2, 3)] + [small_b[::-1], small_b[:, ::-1]]
    if a.width != a.height:  # only size-preserving turns are possible candidates
        variants = [small_b[::-1, ::-1], small_b[::-1], small_b[:, ::-1]]
    best = min(float(np.mean(np.abs(small_a - v))) for v in variants)
    return not best < 0.5 * same - 1.0


@dataclass
class StillCheck:
    """Fidelity of one still image's output: METRICS.md 3."""

    checked: bool = False  # False when the input does not decode
    identical: bool = False
    upright: bool = True
    icc_had: bool = False
    icc_kept: bool = False
    problems: list[str] = field(default_factory=list)


def check_still(
    src: Path, dst: Path, row_in: dict[str, Any], row_out: dict[str, Any]
) -> StillCheck:
    result = StillCheck()
    try:
        before, icc_in = displayed_frames(src)
    except Exception:  # any decoder failure means "not checkable", not a fault
        return result
    result.checked = True
    result.icc_had = _has_icc(row_in, icc_in)
    try:
        after, icc_out = displayed_frames(dst)
    except Exception as exc:  # the tool's output, whatever the decoder says, is the finding
        result.upright = False
        result.problems.append(f"output does not decode ({type(exc).__name__}: {exc})")
        return result
    result.icc_kept = _has_icc(row_out, icc_out)
    if result.icc_had and not result.icc_kept:
        result.problems.append("ICC profile dropped")
    elif icc_in and icc_out and _icc_colour(icc_in) != _icc_colour(icc_out):
        result.problems.append("ICC profile changed beyond its date and ID")
    if len(after) != len(before):
        result.problems.append(f"frames {len(before)} -> {len(after)}")
    differing = []
    for index, (a, b) in enumerate(zip(before, after, strict=False)):
        if a.size != b.size:
            if a.size == b.size[::-1]:
                result.upright = False
            differing.append(f"frame {index}: displayed size {a.size} -> {b.size}")
            continue
        pa, pb = _comparable(a, b)
        if np.array_equal(pa, pb):
            continue
        if not _upright(a, b):
            result.upright = False
        diff = np.abs(pa.astype(np.int64) - pb.astype(np.int64))
        changed = diff.reshape(pa.shape[0], pa.shape[1], -1).max(axis=2) > 0
        mode = a.mode if a.mode == b.mode else f"{a.mode} -> {b.mode}"
        differing.append(
            f"frame {index} ({mode}): {int(changed.sum())} of {changed.size} px differ, "
            f"max |diff| {int(diff.max())}"
        )
    if differing:
        result.problems.append("pixels differ: " + "; ".join(differing[:3]))
        if not result.upright:
            result.problems.append("displayed the wrong way up")
    result.identical = not differing and len(after) == len(before)
    if result.identical and len(before) == 1:
        deeper = deep_problem(src, dst)
        if deeper:
            result.problems.append(deeper)
            result.identical = False
    return result


def check_dng(src: Path, dst: Path) -> StillCheck:
    """Fidelity of a DNG's output, read as a RAW developer reads it (LibRaw, through rawpy):
    Pillow decodes only a DNG's TIFF preview, if any, never its sensor data. Identical means
    every visible sensor value, the colour filter pattern, the black and white levels and the
    colour matrix the same; the same way up means LibRaw's flip (from Orientation) the same.
    An ICC profile does not apply (a DNG's colour is its matrices)."""
    import rawpy

    result = StillCheck()
    try:
        before = _raw_facts(src, rawpy)
    except Exception:  # LibRaw cannot read the input: not checkable, not a fault
        return result
    result.checked = True
    try:
        after = _raw_facts(dst, rawpy)
    except Exception as exc:
        result.upright = False
        result.problems.append(f"output not read by LibRaw ({type(exc).__name__}: {exc})")
        return result
    result.upright = before["flip"] == after["flip"]
    if not result.upright:
        result.problems.append(f"displayed the wrong way up (flip {before['flip']} -> "
                               f"{after['flip']})")  # fmt: skip
    differing = [k for k in before if k != "flip" and not np.array_equal(before[k], after[k])]
    if differing:
        result.problems.append("differs as LibRaw reads it: " + ", ".join(differing))
    result.identical = not differing
    return result


def check_svg(src: Path, dst: Path) -> StillCheck:
    """Fidelity of an SVG's output, as it is drawn: both rendered by resvg (what veil's svg
    extra ships; no system fonts, so text is not compared), identical RGBA pixels. A linked
    file the input drew and the output no longer links shows as a difference, rightly."""
    import resvg_py

    def drawn(path: Path) -> Array:
        png = resvg_py.svg_to_bytes(svg_path=str(path), skip_system_fonts=True)
        return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"))

    result = StillCheck()
    try:
        before = drawn(src)
    except Exception:  # resvg cannot draw the input: not checkable, not a fault
        return result
    result.checked = True
    try:
        after = drawn(dst)
    except Exception as exc:
        result.problems.append(f"output not drawn by resvg ({type(exc).__name__}: {exc})")
        return result
    if before.shape != after.shape:
        result.problems.append(f"drawn at {before.shape[1]}x{before.shape[0]}, now "
                               f"{after.shape[1]}x{after.shape[0]}")  # fmt: skip
        return result
    diff = np.abs(before.astype(np.int64) - after.astype(np.int64))
    if diff.any():
        changed = int((diff.max(axis=2) > 0).sum())
        result.problems.append(f"drawing differs: {changed} px, max |diff| {int(diff.max())}")
    result.identical = not diff.any()
    return result


def _raw_facts(path: Path, rawpy: Any) -> dict[str, Any]:
    with rawpy.imread(str(path)) as raw:
        return {
            "sensor values": raw.raw_image_visible.copy(),
            "colour filter pattern": raw.raw_pattern.copy(),
            "black levels": list(raw.black_level_per_channel),
            "white level": raw.white_level,
            "colour matrix": raw.rgb_xyz_matrix.copy(),
            "flip": raw.sizes.flip,
        }


@dataclass
class VideoCheck:
    checked: bool = False  # False when ffmpeg cannot read the input's streams
    identical: bool = False
    private_tags: list[str] = field(default_factory=list)
    data_tracks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def stream_hashes(path: Path) -> list[str] | None:
    """sha256 of every video (not cover art) and audio stream's packets, copied not decoded."""
    proc = run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:V?", "-map", "0:a?",
                "-c", "copy", "-f", "streamhash", "-hash", "sha256", "-"])  # fmt: skip
    lines = proc.stdout.split()
    return lines if proc.returncode == 0 and lines else None


def data_tracks(path: Path) -> list[str]:
    """Data streams (telemetry, GPS, timecode) ffprobe lists, as 'index:tag handler'."""
    proc = run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)])
    streams = json.loads(proc.stdout).get("streams", []) if proc.stdout.strip() else []
    found = []
    for s in streams:
        if s.get("codec_type") == "data":
            handler = s.get("tags", {}).get("handler_name", "")
            found.append(f"{s['index']}:{s.get('codec_tag_string', '?')} {handler}".strip())
    return found


def check_video(src: Path, dst: Path, row_out: dict[str, Any]) -> VideoCheck:
    result = VideoCheck()
    result.private_tags = [k for k in identifying_tags(row_out) if VIDEO_PRIVATE.search(k)]
    result.data_tracks = data_tracks(dst)
    if result.private_tags:
        result.problems.append("location/serial/owner tags left: " + ", ".join(result.private_tags))
    if result.data_tracks:
        result.problems.append("data tracks left: " + ", ".join(result.data_tracks))
    before = stream_hashes(src)
    if before is None:
        return result
    result.checked = True
    after = stream_hashes(dst)
    result.identical = after == before
    if not result.identical:
        result.problems.append(
            "video/audio streams not bit-identical"
            + (" (output unreadable)" if after is None else f" ({len(before)} -> {len(after)})")
        )
    return result


# -- scoring ---------------------------------------------------------------------------------
@dataclass
class FileScore:
    rel: str
    video: bool
    tags_before: int
    status: str
    error: str | None = None
    residual: list[str] = field(default_factory=list)  # "key=value" of tags left
    still: StillCheck | None = None
    moving: VideoCheck | None = None

    @property
    def written(self) -> bool:
        return self.status in ("written", "cleaned", "unchanged")

    @property
    def problems(self) -> list[str]:
        check = self.still or self.moving
        return check.problems if check else []


def score_run(
    files: Sequence[Media], run_: ToolRun, src_root: Path, tags: dict[Path, dict[str, Any]]
) -> list[FileScore]:
    scores = []
    for m in files:
        src = src_root / m.rel
        row_in = tags[src]
        outcome = run_.outcomes.get(m.rel, Outcome(None, "missing", "not in the tool's output"))
        score = FileScore(m.rel, m.is_video, len(identifying_tags(row_in)), outcome.status)
        if outcome.output is None:
            score.error = outcome.error or outcome.status
        else:
            row_out = tags[outcome.output]
            score.residual = [f"{k}={_short(row_out[k])}" for k in identifying_tags(row_out)]
            if m.is_video:
                score.moving = check_video(src, outcome.output, row_out)
            elif m.is_dng:
                score.still = check_dng(src, outcome.output)
            elif m.is_svg:
                score.still = check_svg(src, outcome.output)
            else:
                score.still = check_still(src, outcome.output, row_in, row_out)
        scores.append(score)
    return scores


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def summarise(scores: Sequence[FileScore], timing: Timing | None) -> dict[str, Any]:
    written = [s for s in scores if s.written]
    stills = [s.still for s in written if s.still is not None and s.still.checked]
    videos = [s.moving for s in written if s.moving is not None]
    refusals = Counter(_reason(s.error) for s in scores if not s.written)
    return {
        "files": len(scores),
        "identifying_before": sum(s.tags_before > 0 for s in scores),
        "outputs": len(written),
        "outputs_clean": sum(not s.residual for s in written),
        "residual_tags": sum(len(s.residual) for s in written),
        "refused": len(scores) - len(written),
        "refusal_reasons": dict(refusals.most_common()),
        "stills_checked": len(stills),
        "stills_identical": sum(c.identical for c in stills),
        "stills_upright": sum(c.upright for c in stills),
        "icc_had": sum(c.icc_had for c in stills),
        "icc_kept": sum(c.icc_had and c.icc_kept for c in stills),
        "stills_unchecked": sum(s.still is not None and not s.still.checked for s in written),
        "videos": len(videos),
        "videos_private_tags": sum(bool(v.private_tags) for v in videos),
        "videos_data_tracks": sum(bool(v.data_tracks) for v in videos),
        "videos_checked": sum(v.checked for v in videos),
        "videos_identical": sum(v.identical for v in videos),
        "timing": asdict(timing) if timing else None,
        "files_per_s": len(scores) / timing.wall_s if timing and timing.wall_s else None,
    }


def _reason(error: str | None) -> str:
    """Group refusal messages: numbers that differ file to file count as one reason."""
    return re.sub(r"\b\d+\b", "N", error or "no output")[:120]


def combine(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sums over corpora (timing summed as wall seconds)."""
    total: dict[str, Any] = {}
    for s in summaries:
        for key, value in s.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
            elif key == "refusal_reasons":
                merged = Counter(total.get(key, {}))
                merged.update(value)
                total[key] = dict(merged.most_common())
    walls = [s["timing"]["wall_s"] for s in summaries if s["timing"]]
    total["timing"] = {"wall_s": sum(walls)} if len(walls) == len(summaries) else None
    total["files_per_s"] = total["files"] / sum(walls) if total["timing"] else None
    return total


# -- output ----------------------------------------------------------------------------------
def _frac(part: int, whole: int) -> str:
    return f"{part}/{whole}" if whole else "-"


def table_rows(by_tool: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows = metrics, one column per tool."""
    spec: list[tuple[str, Any]] = [
        ("media files", lambda s: str(s["files"])),
        ("files with identifying tags before", lambda s: str(s["identifying_before"])),
        ("outputs written", lambda s: str(s["outputs"])),
        ("files refused (no output)", lambda s: str(s["refused"])),
        ("**outputs with zero identifying tags**", lambda s: f"**{s['outputs_clean']}**"),
        ("identifying tags left, total", lambda s: str(s["residual_tags"])),
        ("stills: pixels identical (displayed)", lambda s: _frac(s["stills_identical"],
                                                                   s["stills_checked"])),
        ("stills: same way up", lambda s: _frac(s["stills_upright"], s["stills_checked"])),
        ("stills: ICC profile kept", lambda s: _frac(s["icc_kept"], s["icc_had"])),
        ("stills not pixel-checked (input undecodable)", lambda s: str(s["stills_unchecked"])),
        ("videos: outputs without location/serial/owner tags",
         lambda s: _frac(s["videos"] - s["videos_private_tags"], s["videos"])),
        ("videos: outputs without data tracks",
         lambda s: _frac(s["videos"] - s["videos_data_tracks"], s["videos"])),
        ("videos: streams bit-identical",
         lambda s: _frac(s["videos_identical"], s["videos_checked"])),
        ("wall time, whole process (s)",
         lambda s: f"{s['timing']['wall_s']:.1f}" if s["timing"] else "-"),
    ]  # fmt: skip
    return [[label, *(fmt(s) for s in by_tool.values())] for label, fmt in spec]


def throughput_rows(speed: dict[str, tuple[Timing, int]], files: int) -> list[list[str]]:
    base = speed.get("exiftool per file")
    rows = []
    for name, (t, written) in speed.items():
        rate = files / t.wall_s
        ratio = f"{rate / (files / base[0].wall_s):.2f}x" if base else "-"
        # CPU seconds are steadier than wall time when others share the machine.
        cpu_ratio = f"{base[0].cpu_s / t.cpu_s:.2f}x" if base and t.cpu_s else "-"
        load = "-" if t.other_load_cores is None else f"{t.other_load_cores:.2f}"
        rows.append([name, str(written), f"{t.wall_s:.1f}", f"{t.cpu_s:.1f}", f"{rate:.1f}",
                     ratio, cpu_ratio, load])  # fmt: skip
    return rows


THROUGHPUT_HEADER = ("tool", "outputs", "wall s", "CPU s", "files/s", "files/s vs exiftool "
                     "per file", "CPU vs exiftool per file", "other load (cores)")  # fmt: skip


def residuals_text(scores: dict[str, dict[str, list[FileScore]]]) -> str:
    """Per tool and corpus: outputs with identifying tags (which), fidelity failures, refusals."""
    out = []
    for tool, corpora in scores.items():
        out.append(f"# {LABELS[tool]}")
        for corpus, files in corpora.items():
            left = [s for s in files if s.written and s.residual]
            failed = [s for s in files if s.written and s.problems]
            refused = [s for s in files if not s.written]
            unchecked = [s for s in files if s.written and s.still and not s.still.checked]
            out.append(f"\n## {corpus}: {len(left)} outputs with identifying tags, "
                       f"{len(failed)} fidelity failures, {len(refused)} refused")  # fmt: skip
            out += [f"- tags left: {s.rel} [{s.status}] {len(s.residual)}: "
                    + "; ".join(s.residual) for s in left]  # fmt: skip
            out += [f"- fidelity: {s.rel} [{s.status}]: " + " | ".join(s.problems) for s in failed]
            out += [f"- refused: {s.rel} [{s.status}]: {s.error}" for s in refused]
            out += [f"- pixels not checked: {s.rel} [{s.status}]: the input does not decode"
                    for s in unchecked]  # fmt: skip
        out.append("")
    return "\n".join(out) + "\n"


# -- environment -----------------------------------------------------------------------------
def _first_line(argv: Sequence[str]) -> str:
    try:
        proc = run(argv)
    except OSError:
        return "not installed"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


def environment() -> dict[str, Any]:
    """Machine and versions for the header: results only compare with the same ones."""
    cpu = cpu_model()
    commit = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    # Others edit src/ while benchmarks run: say when the measured veil is not the commit.
    dirty = run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"]).stdout
    return {
        "cores": os.cpu_count() or 1,
        "cpu": cpu,
        "load_average_1m": os.getloadavg()[0],
        "veil": f"{version('veil')} at {commit}{' + uncommitted src changes' if dirty else ''}",
        "exiftool": _first_line(["exiftool", "-ver"]),
        "mat2": _first_line(["mat2", "--version"]),
        "ffmpeg": _first_line(["ffmpeg", "-version"]).split(" Copyright")[0],
        "pillow": version("pillow"),
        "pillow_heif": version("pillow-heif"),
        "python": platform.python_version(),
    }


def header_text(env: dict[str, Any], today: str) -> str:
    return (
        f"Metadata removal, {today}, {env['cores']} cores ({env['cpu']}), "
        f"load average {env['load_average_1m']:.2f} at start\n"
        f"veil {env['veil']}; {env['exiftool'] and 'exiftool ' + env['exiftool']}; "
        f"{env['mat2']}; {env['ffmpeg']}; Pillow {env['pillow']}, pillow-heif "
        f"{env['pillow_heif']}; Python {env['python']}"
    )


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Metadata removal and fidelity of veil beside `exiftool -all=` and mat2 "
        "(docs/METRICS.md section 3)."
    )
    parser.add_argument(
        "data", nargs="?", type=Path, default=DEFAULT_DATA,
        help="folder of corpus folders (default: ../shared/data/metadata)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N media files per corpus"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="working folder (default: a temporary folder)"
    )
    parser.add_argument(
        "--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="tools to run (default: all)"
    )
    parser.add_argument(
        "--made", action="store_true",
        help=f"add the corpus '{MADE}': files this benchmark makes, with planted metadata, in "
        "containers the real corpora lack (benchmarks/made_corpus.py)",
    )  # fmt: skip
    parser.add_argument(
        "--corpora", nargs="+", metavar="NAME",
        help=f"only these corpora (folder names in DATA; '{MADE}' implies --made)",
    )  # fmt: skip
    return parser.parse_args(argv)


def load_made(folder: Path, limit: int | None) -> list[Media]:
    """The made corpus, built afresh into ``folder``, in `MADE_FILES` order (first ``limit``)."""
    build_corpus(folder)
    paths = [folder / made.name for made in MADE_FILES][:limit]
    mimes = _mimes(paths)
    return [Media(MADE, p.name, p, mimes[str(p)]) for p in paths]


def select_corpora(
    args: argparse.Namespace, work: Path
) -> tuple[dict[str, list[Media]], dict[str, Counter[str]]]:
    """The corpora ``--corpora`` and ``--made`` ask for: real ones from DATA, then the made one."""
    wanted = set(args.corpora or [])
    made = args.made or MADE in wanted
    media: dict[str, list[Media]] = {}
    excluded: dict[str, Counter[str]] = {}
    if not wanted or wanted - {MADE}:
        media, excluded = load_corpora(args.data, args.limit)
        if MADE in media:
            sys.exit(f"metadata benchmark: {args.data} has a corpus named {MADE!r}; rename it")
        unknown = sorted(wanted - {MADE} - set(media))
        if unknown:
            sys.exit(f"metadata benchmark: no corpus {', '.join(unknown)} in {args.data}")
        if wanted:
            media = {c: files for c, files in media.items() if c in wanted}
            excluded = {c: skipped for c, skipped in excluded.items() if c in wanted}
    if made:
        media[MADE] = load_made(work / "made-source" / MADE, args.limit)
        excluded[MADE] = Counter()
    return media, excluded


def _corpus_title(corpus: str, files: int) -> str:
    if corpus == MADE:
        return f"{corpus} ({files} files made by this benchmark with planted metadata)"
    return f"{corpus} ({files} media files)"


def made_rows(scores: dict[str, list[FileScore]], files: Sequence[Media]) -> list[list[str]]:
    """Per made file: identifying tags before, and per tool what became of it."""
    rows = []
    for index, m in enumerate(files):
        by_tool = [by_file[index] for by_file in scores.values()]
        # Tags before are the input's, read once: the same in every tool's score.
        rows.append([m.rel, str(by_tool[0].tags_before), *map(_file_cell, by_tool)])
    return rows


def made_listing(files: Sequence[Media]) -> list[str]:
    """One line per made file: what container it really is and what was planted in it."""
    about = {made.name: made for made in MADE_FILES}
    return [f"- {m.rel}: {about[m.rel].container}; planted: {about[m.rel].planted}" for m in files]


def _file_cell(s: FileScore) -> str:
    if not s.written:
        return "refused"
    left = "clean" if not s.residual else f"{len(s.residual)} left"
    check = s.still or s.moving
    if check is None or not check.checked:
        return f"{left}, not checked"
    return f"{left}, {'identical' if check.identical else 'changed'}"


MADE_HEADER = ("file", "tags before")
MADE_NOTE = (
    "Files made by this benchmark (benchmarks/made_corpus.py) with planted identifying "
    "metadata, 256x192, not camera files. Cells: identifying tags left (clean: none), then "
    "fidelity: DNG as LibRaw reads it (sensor values, pattern, levels, matrix), JPEG XL "
    "decoded by libjxl, 16-bit PNG/TIFF compared at 16 bits, SVG as resvg draws it, WMV and "
    "WMA by stream hashes (the WMA counts in the video rows)."
)


def _check_tools(tools: Sequence[str]) -> None:
    needed = {"exiftool", "ffmpeg", "ffprobe", *(t for t in tools if t != "veil")}
    missing = sorted(cmd for cmd in needed if shutil.which(cmd) is None)
    if missing:
        sys.exit(
            f"metadata benchmark: {', '.join(missing)} not on PATH "
            "(apt-get install exiftool mat2 ffmpeg, or leave the tool out with --tools)"
        )


def clean_corpus(
    tool: str, corpus: str, files: Sequence[Media], work: Path
) -> tuple[ToolRun, list[Path]]:
    """Run one tool over one corpus; the run and the output files it wrote."""
    source = work / "in" / corpus
    rels = [m.rel for m in files]
    if tool == "veil":
        done = run_veil(source, work / "veil" / corpus, work / f"veil-{corpus}.jsonl")
    elif tool == "exiftool":
        done = run_exiftool_each(source, work / "exiftool" / corpus, rels)
    else:
        stage(files, work / "mat2")  # mat2 writes beside its input: a copy of its own
        done = run_mat2(work / "mat2" / corpus, rels)
    outputs = [o.output for o in done.outcomes.values() if o.output is not None]
    return done, outputs


def _written(done: ToolRun) -> int:
    return sum(o.output is not None for o in done.outcomes.values())


def throughput(
    files: Sequence[Media], tools: Sequence[str], work: Path
) -> dict[str, tuple[Timing, int]]:
    """Whole-process time and outputs of each tool on the JPEG set (each on its own copies)."""
    root = work / "jpeg"
    stage(files, root / "in")
    for m in files:  # warm the page cache so no tool pays for the first read
        (root / "in" / m.corpus / m.rel).read_bytes()
    rels = [f"{m.corpus}/{m.rel}" for m in files]
    speed: dict[str, tuple[Timing, int]] = {}
    if "veil" in tools:
        done = run_veil(root / "in", root / "veil", root / "veil.jsonl")
        speed["veil"] = (done.timing, _written(done))
    if "exiftool" in tools:
        done = run_exiftool_each(root / "in", root / "exif-each", rels)
        speed["exiftool per file"] = (done.timing, _written(done))
        timing = run_exiftool_batch(root / "in", root / "exif-batch")
        batch_out = root / "exif-batch"
        speed["exiftool batch"] = (timing, sum(p.is_file() for p in batch_out.rglob("*")))
    if "mat2" in tools:
        stage(files, root / "mat2")
        done = run_mat2(root / "mat2", rels)
        speed["mat2"] = (done.timing, _written(done))
    return speed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = [t for t in TOOLS if t in args.tools]
    _check_tools(tools)
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # big real photos are fine
    # Pillow's advice on palette transparency: the comparison converts to RGBA anyway.
    warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
    Image.MAX_IMAGE_PIXELS = None
    import pillow_heif

    pillow_heif.register_heif_opener()
    work = (args.out or Path(tempfile.mkdtemp(prefix="veil-metadata-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env, today = environment(), date.today().isoformat()
    media, excluded = select_corpora(args, work)
    everything = [m for files in media.values() for m in files]
    print(f"{len(everything)} media files from {', '.join(media)}; working folder {work}",
          flush=True)  # fmt: skip
    for corpus, skipped in excluded.items():
        kinds = ", ".join(f"{n} {kind}" for kind, n in skipped.most_common())
        print(f"  {corpus}: {len(media[corpus])} media; excluded {sum(skipped.values())}: {kinds}")
    stage(everything, work / "in")

    runs: dict[str, dict[str, ToolRun]] = {t: {} for t in tools}
    outputs: list[Path] = []
    for corpus, files in media.items():
        for tool in tools:
            done, written = clean_corpus(tool, corpus, files, work)
            runs[tool][corpus] = done
            outputs += written
            print(f"  {tool} on {corpus}: {len(written)} of {len(files)} written in "
                  f"{done.timing.wall_s:.1f} s", flush=True)  # fmt: skip

    print(f"reading {len(everything) + len(outputs)} files with exiftool ...", flush=True)
    tags = read_tags([work / "in" / m.corpus / m.rel for m in everything] + outputs)
    scores = {
        tool: {c: score_run(media[c], runs[tool][c], work / "in" / c, tags) for c in media}
        for tool in tools
    }
    (work / "residuals.txt").write_text(residuals_text(scores), encoding="utf-8")
    summaries = {
        tool: {c: summarise(scores[tool][c], runs[tool][c].timing) for c in media} for tool in tools
    }
    combined = {tool: combine(list(summaries[tool].values())) for tool in tools}

    # Camera JPEGs only: the made corpus's .jpg files are a HEIF and a PNG in disguise.
    jpegs = [m for m in everything if m.is_jpeg and m.corpus != MADE]
    speed: dict[str, tuple[Timing, int]] = {}
    if jpegs:
        print(f"throughput on {len(jpegs)} JPEGs ...", flush=True)
        speed = throughput(jpegs, tools, work)

    header = ["metric", *(LABELS[t] for t in tools)]
    head = header_text(env, today)
    text, markdown = [f"\n{head}"], [f"_{head}_"]
    sections = [(_corpus_title(c, len(media[c])), summaries_for(summaries, c)) for c in media]
    if len(media) > 1:
        made_too = f", {MADE} files included" if MADE in media else ""
        sections.append((f"all corpora ({len(everything)} media files{made_too})", combined))
    for title, by_tool in sections:
        rows = table_rows(by_tool)
        text += [f"\n{title}", render_text(header, rows)]
        markdown += [f"\n**{title}**\n", render_markdown(header, rows)]
        for tool, s in by_tool.items():
            if s["refusal_reasons"]:
                reasons = "; ".join(f"{n}x {r}" for r, n in s["refusal_reasons"].items())
                text.append(f"  {LABELS[tool]} refused: {reasons}")
    if MADE in media:
        title = f"{MADE}: each file and what each tool made of it"
        header_made = [*MADE_HEADER, *(LABELS[t] for t in tools)]
        rows = made_rows({t: scores[t][MADE] for t in tools}, media[MADE])
        listing = made_listing(media[MADE])
        text += [f"\n{title}", MADE_NOTE, *listing, render_text(header_made, rows)]
        markdown += [f"\n**{title}**\n", f"_{MADE_NOTE}_\n", *listing, "",
                     render_markdown(header_made, rows)]  # fmt: skip
    if speed:
        title = (f"throughput on the JPEG set ({len(jpegs)} files, --faces off for veil, "
                 f"{env['cores']} cores)")  # fmt: skip
        rows = throughput_rows(speed, len(jpegs))
        text += [f"\n{title}", render_text(THROUGHPUT_HEADER, rows)]
        markdown += [f"\n**{title}**\n", render_markdown(THROUGHPUT_HEADER, rows)]
        busy = [n for n, (t, _) in speed.items() if (t.other_load_cores or 0) > BUSY_WARNING_CORES]
        if busy:
            text.append(f"  warning: other processes were busy during {', '.join(busy)}; "
                        "speed figures are not reliable")  # fmt: skip
    print("\n".join(text))

    results = {
        "date": today,
        "environment": env,
        "data": str(args.data),
        "command": " ".join(["python benchmarks/metadata.py", *sys.argv[1:]]),
        "excluded": {c: dict(v) for c, v in excluded.items()},
        "made": [
            {"name": m.name, "container": m.container, "planted": m.planted} for m in MADE_FILES
        ]
        if MADE in media
        else None,
        "corpora": summaries,
        "combined": combined,
        "throughput": {
            "files": len(jpegs),
            "runs": {
                n: {**asdict(t), "outputs": k, "files_per_s": len(jpegs) / t.wall_s}
                for n, (t, k) in speed.items()
            },
        },
        "files": {tool: {c: [asdict(s) for s in scores[tool][c]] for c in media} for tool in tools},
    }
    (work / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (work / "table.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
    print(f"\nwrote {work / 'results.json'}, {work / 'table.md'}, {work / 'residuals.txt'}")
    return 0


def summaries_for(
    summaries: dict[str, dict[str, dict[str, Any]]], corpus: str
) -> dict[str, dict[str, Any]]:
    return {tool: by_corpus[corpus] for tool, by_corpus in summaries.items()}


if __name__ == "__main__":
    sys.exit(main())
