"""veil against damaged files: seeded mutations of every kind it cleans, counted by outcome.

For each format a small file is made here (a face, and identifying metadata: EXIF with GPS,
serials and owner, PNG text, container tags), then mutated many ways with fixed seeds: bytes
flipped anywhere, bytes flipped in the headers (the first KB, and for ISO BMFF video the last
1.5 KB where the ``moov`` box sits), cut short, and runs of bytes zeroed. Each mutant is cleaned
by `Pipeline.run`, the door every command uses, with a time limit. An outcome is one of:

* ``written``: cleaned or unchanged. The output is then read back by exiftool (if on PATH, the
  METRICS.md 3 oracle from tests/helpers) and by veil's own scan, each counted apart: outputs
  with identifying tags, and outputs the scan still flags.
* ``refused``: failed or skipped with a `VeilError`, the planned way. Messages that still speak
  library jargon (errno, "decoder", "object", "Invalid argument") are counted.
* ``bug``: any other exception, caught by the door's last resort ("veil failed unexpectedly")
  or, in versions before it, escaping the door (which ended the whole batch).
* ``hang``: no outcome within the limit.

Run from the repository root::

    python benchmarks/fuzz.py                    # every format, 60 mutants each (~5 min)
    python benchmarks/fuzz.py --mutants 10 --formats jpeg,mp4

It prints one table row per format and the totals, with the machine and date, and exits 1 if
any mutant hung or hit a bug.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from clips import KINDS, make_clip  # noqa: E402  (test fixtures: clips with a face)
from helpers import (  # noqa: E402  (the METRICS.md 3 oracle and the test photos)
    exif_block,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    save_png_with_text,
    scene,
)
from veil.pipeline import Pipeline  # noqa: E402
from veil.settings import Settings  # noqa: E402

#: Words that say how a library failed rather than what is wrong with the file.
JARGON = re.compile(r"errno|decoder|object|invalid argument|-\d\b|0x[0-9a-f]+", re.IGNORECASE)
UNEXPECTED = "veil failed unexpectedly"


def _photo(fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        from PIL import Image

        im = Image.fromarray(scene()[::2, ::2])
        if fmt == "PNG":
            save_png_with_text(im, path)
        elif fmt == "GIF":
            im.convert("P").save(path, "GIF", comment=b"Dam square, owner Jane Doe")
        elif fmt == "HEIF":
            import pillow_heif

            pillow_heif.register_heif_opener()
            im.save(path, "HEIF", exif=exif_block())
        else:
            im.save(path, fmt, exif=exif_block())

    return make


def _clip(kind: int) -> Callable[[Path], None]:
    return lambda path: make_clip(path, KINDS[kind], frames=4)


MAKERS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "jpeg": (".jpg", _photo("JPEG")),
    "png": (".png", _photo("PNG")),
    "tiff": (".tif", _photo("TIFF")),
    "webp": (".webp", _photo("WEBP")),
    "gif": (".gif", _photo("GIF")),
    "heic": (".heic", _photo("HEIF")),
    "mp4": (".mp4", _clip(0)),
    "mkv": (".mkv", _clip(2)),
}


def mutants(data: bytes, count: int, iso_bmff: bool) -> list[tuple[str, bytes]]:
    """``count`` seeded mutants of ``data``, cycling through the ways a file gets damaged."""
    found: list[tuple[str, bytes]] = []
    for seed in range(count):
        rng = random.Random(seed)
        way = ("flip", "flip-header", "cut", "zeros")[seed % 4]
        b = bytearray(data)
        if way == "flip":
            for _ in range(10):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif way == "flip-header":
            tail = iso_bmff and seed % 8 == 1  # the moov box, written last
            lo, hi = (max(0, len(b) - 1500), len(b)) if tail else (0, min(len(b), 1024))
            for _ in range(6):
                b[rng.randrange(lo, hi)] = rng.randrange(256)
        elif way == "cut":
            b = b[: rng.randrange(1, len(b))]
        else:
            start = rng.randrange(len(b))
            b[start : start + rng.randrange(16, 4096)] = bytes(min(len(b) - start, 4096))
            b = b[: len(data)]
        found.append((way, bytes(b)))
    return found


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang


def run(formats: list[str], count: int, limit_s: int) -> int:
    pipe = Pipeline(Settings(), threads=1)
    tool = exiftool_path()
    signal.signal(signal.SIGALRM, _alarm)
    totals: Counter[str] = Counter()
    problems: list[str] = []
    print(
        f"veil fuzz, {date.today()}, {platform.platform()}, {count} mutants per format, "
        f"oracle: {'exiftool' if tool else 'veil scan only'}"
    )
    print(
        "| format | mutants | written | refused | jargon | bug | hang | outputs with identifying "
        "tags (exiftool) | outputs veil's scan flags |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in formats:
            suffix, make = MAKERS[name]
            base = work / f"base{suffix}"
            make(base)
            data = base.read_bytes()
            row: Counter[str] = Counter()
            for i, (way, mutant) in enumerate(mutants(data, count, name in ("mp4",))):
                src, dst = work / f"{name}{i}{suffix}", work / "out" / f"{name}{i}{suffix}"
                src.write_bytes(mutant)
                signal.alarm(limit_s)
                try:
                    result = pipe.run(src, dst)
                except _Hang:
                    row["hang"] += 1
                    problems.append(f"hang: {name} mutant {i} ({way})")
                    continue
                except Exception as exc:  # veil before its last-resort catch (to compare)
                    row["mutants"] += 1
                    row["bug"] += 1
                    problems.append(f"bug: {name} mutant {i} ({way}): {type(exc).__name__}: {exc}")
                    continue
                finally:
                    signal.alarm(0)
                row["mutants"] += 1
                if result.status in ("cleaned", "unchanged"):
                    row["written"] += 1
                    tags, findings = _left(pipe, dst, tool)
                    row["leaks"] += bool(tags)
                    row["findings"] += bool(findings)
                    if tags or findings:
                        problems.append(f"left: {name} mutant {i} ({way}): {tags} {findings}")
                elif result.error and UNEXPECTED in result.error:
                    row["bug"] += 1
                    problems.append(f"bug: {name} mutant {i} ({way}): {result.error[:160]}")
                else:
                    row["refused"] += 1
                    if JARGON.search(result.error or ""):
                        row["jargon"] += 1
                        problems.append(f"jargon: {name} mutant {i}: {result.error}")
            row["mutants"] += row["hang"]
            totals.update(row)
            print(_line(name, row), flush=True)
    print(_line("**all**", totals))
    for problem in problems:
        print("  " + problem)
    return 1 if totals["bug"] or totals["hang"] or totals["leaks"] else 0


def _line(name: str, row: Counter[str]) -> str:
    keys = ("mutants", "written", "refused", "jargon", "bug", "hang", "leaks", "findings")
    return f"| {name} | " + " | ".join(str(row[k]) for k in keys) + " |"


def _left(pipe: Pipeline, output: Path, tool: str | None) -> tuple[list[str], list[str]]:
    """Identifying tags exiftool still reads in an output, and what veil's own scan still
    reports there (its findings include "present but unreadable", so they can be stricter)."""
    findings = [f"{f.name}: {f.value}" for f in pipe.scan(output).metadata]
    if tool is None:
        return [], findings
    (row,) = exiftool_read(output)
    return identifying_tags(row), findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mutants", type=int, default=60, help="per format (default: 60)")
    parser.add_argument(
        "--formats", default=",".join(MAKERS), help=f"comma-separated, of: {', '.join(MAKERS)}"
    )
    parser.add_argument("--limit", type=int, default=60, metavar="S", help="seconds per file")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(MAKERS))
    if unknown:
        parser.error(f"unknown formats: {', '.join(unknown)}")
    return run(formats, args.mutants, args.limit)


if __name__ == "__main__":
    sys.exit(main())
