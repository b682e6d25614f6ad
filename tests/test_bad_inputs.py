"""Bad inputs fail (or are skipped) one by one with a clear reason: no output, no temp file,
and the batch goes on to the next file."""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from helpers import WRITTEN, backdrop, file_hashes, leftovers, png_bomb, read_report, scene


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(scene()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png(width: int = 768, height: int = 512) -> bytes:
    buf = io.BytesIO()
    pixels = scene() if (width, height) == (768, 512) else backdrop(height, width)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


# Words of the libraries rather than about the file: "decoder error -2", "could not create
# decoder object", an errno, a repr.
JARGON = r"object|<_io\.|Traceback|decoder|errno|invalid argument|-\d\b|\b0x[0-9a-f]"


@dataclass(frozen=True)
class Bad:
    name: str
    content: Callable[[], bytes]
    status: str
    #: what the error must say (regex, case-insensitive)
    reason: str
    options: tuple[str, ...] = ()


CASES = [
    Bad("random.jpg", lambda: os.urandom(4096), "failed", r"CorruptInput.*not a valid JPEG"),
    Bad(
        "garbage_after_soi.jpg",
        lambda: b"\xff\xd8\xff" + random.Random(3).randbytes(4000),
        "failed",
        r"CorruptInput",
    ),
    Bad("truncated.jpg", lambda: _jpeg()[: len(_jpeg()) // 2], "failed", r"truncated"),
    Bad("truncated.png", lambda: _png()[: len(_png()) // 2], "failed", r"truncated"),
    Bad("empty.jpg", lambda: b"", "failed", r"CorruptInput.*empty"),
    Bad("empty.png", lambda: b"", "failed", r"CorruptInput.*empty"),
    Bad("bomb.png", png_bomb, "failed", r"TooLarge.*20000x20000.*limit"),
    Bad(
        "two_megapixels.png",
        lambda: _png(1700, 1200),
        "failed",
        r"TooLarge.*1700x1200.*limit of 1 MP",
        ("--max-megapixels", "1"),
    ),
    Bad("camera.nef", lambda: b"II*\x00" + bytes(200), "skipped", r"RAW.*\.nef"),
    Bad(
        "clip.mp4",
        lambda: b"\x00\x00\x00\x18ftypmp42" + bytes(200),
        "failed",
        r"CorruptInput.*cannot read MP4",
    ),
    Bad("notes.txt", lambda: b"a shopping list\n", "skipped", r"unsupported.*\.txt"),
]


def _run_with_good_neighbour(
    tmp_path: Path, cli, name: str, content: bytes, options: tuple[str, ...] = ()
):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    (folder / "zz_good.png").write_bytes(_png(80, 60))  # sorts after the bad file
    report = tmp_path / "report.jsonl"
    run = cli("clean", folder, "-o", tmp_path / "out", "--report", report, *options)
    rows = {Path(r["input"]).name: r for r in read_report(report)}
    return run, rows


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_batch_goes_on(case: Bad, tmp_path: Path, cli) -> None:
    run, rows = _run_with_good_neighbour(tmp_path, cli, case.name, case.content(), case.options)

    bad = rows[case.name]
    assert bad["status"] == case.status
    assert bad["output"] is None
    assert re.search(case.reason, bad["error"], re.IGNORECASE), bad["error"]
    # "clear": a sentence about the file, not a Python object's repr or a library's status
    assert not re.search(JARGON, bad["error"], re.IGNORECASE), bad["error"]
    assert not (tmp_path / "out" / case.name).exists()
    assert rows["zz_good.png"]["status"] in WRITTEN, "the batch continues past a bad file"
    assert (tmp_path / "out" / "zz_good.png").is_file()
    assert not leftovers(tmp_path)
    assert run.code == (1 if case.status == "failed" else 0)


def test_all_bad_inputs_in_one_batch(tmp_path: Path, cli) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for case in CASES:
        if not case.options:
            (folder / case.name).write_bytes(case.content())
    (folder / "nested").mkdir()
    (folder / "nested" / "good.png").write_bytes(_png(80, 60))
    before = file_hashes(folder)
    report = tmp_path / "r.jsonl"

    run = cli("clean", folder, "-o", tmp_path / "out", "--report", report)

    assert run.code == 1
    rows = read_report(report)
    assert len(rows) == len(before)
    statuses = {Path(r["input"]).name: r["status"] for r in rows}
    assert statuses.pop("good.png") in WRITTEN
    assert set(statuses.values()) <= {"failed", "skipped"}
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written == [tmp_path / "out" / "nested" / "good.png"]
    assert file_hashes(folder) == before, "inputs are never modified"
    assert not leftovers(tmp_path)


def test_default_limit_refuses_a_bomb(tmp_path: Path, cli) -> None:
    """The default --max-megapixels (200) already refuses a 400 MP header."""
    run, rows = _run_with_good_neighbour(tmp_path, cli, "bomb.png", png_bomb())
    assert rows["bomb.png"]["status"] == "failed"
    assert "TooLarge" in rows["bomb.png"]["error"]
    assert run.code == 1


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not stop root from reading the file",
)
def test_unreadable_file(tmp_path: Path, cli) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    locked = folder / "locked.png"
    locked.write_bytes(_png(80, 60))
    locked.chmod(0)
    try:
        run, rows = _run_with_good_neighbour(tmp_path, cli, "other.txt", b"x")
    finally:
        locked.chmod(0o644)
    assert rows["locked.png"]["status"] == "failed"
    assert re.search(r"permission|cannot read", rows["locked.png"]["error"], re.IGNORECASE)
    assert not (tmp_path / "out" / "locked.png").exists()
    assert run.code == 1


def test_failed_write_leaves_no_temp_file(tmp_path: Path, cli) -> None:
    """The output path is taken by a folder: the write fails, the temp file is removed."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(80, 60))
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    report = tmp_path / "r.jsonl"
    run = cli("clean", folder, "-o", tmp_path / "out", "--report", report, "--overwrite")
    (row,) = read_report(report)
    assert row["status"] == "failed" and row["output"] is None
    assert "WriteFailed" in row["error"]
    assert run.code == 1
    assert not leftovers(tmp_path)
    assert (tmp_path / "out" / "a.png").is_dir()


def test_stale_temp_files_are_not_inputs(tmp_path: Path, cli) -> None:
    """A ``*.veil-tmp`` left by a killed run is not cleaned as if it were a photo."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(80, 60))
    (folder / ".a.png.x1.veil-tmp").write_bytes(b"half")
    report = tmp_path / "r.jsonl"
    assert cli("clean", folder, "-o", tmp_path / "out", "--report", report).code == 0
    assert [Path(r["input"]).name for r in read_report(report)] == ["a.png"]
