"""Batches: existing outputs, untouched inputs, resuming after a crash, parallel workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

import veil
from helpers import WRITTEN, backdrop, exif_block, file_hashes, leftovers, read_report, scene

OLD = 1_000_000_000  # an mtime far in the past: a rewritten output gets a new one


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    files = [folder / "a.jpg", folder / "sub" / "b.png", folder / "sub" / "c.webp"]
    files[1].parent.mkdir()
    Image.fromarray(scene()).save(files[0], "JPEG", quality=90, exif=exif_block())
    Image.fromarray(backdrop(90, 120)).save(files[1], "PNG")
    Image.fromarray(scene()).save(files[2], "WEBP", quality=85)
    return files


def test_existing_output_skipped_unless_overwrite(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(backdrop(60, 80)).save(src)
    dst = tmp_path / "out" / "a.png"
    dst.parent.mkdir()
    dst.write_bytes(b"someone else's file")
    report = tmp_path / "r.jsonl"

    run = cli("clean", src.parent, "-o", dst.parent, "--report", report)

    assert run.code == 0
    (row,) = read_report(report)
    assert row["status"] == "skipped" and row["output"] is None
    assert "exists" in row["error"] and "--overwrite" in row["error"]
    assert dst.read_bytes() == b"someone else's file"

    run = cli("clean", src.parent, "-o", dst.parent, "--report", report, "--overwrite")

    assert run.code == 0
    (row,) = read_report(report)
    assert row["status"] in WRITTEN and row["output"] == str(dst)
    with Image.open(dst) as im:
        assert im.format == "PNG" and im.size == (80, 60)


def test_api_skips_existing_output_unless_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(backdrop(60, 80)).save(src)
    dst = tmp_path / "out.png"
    dst.write_bytes(b"keep me")
    result = veil.clean(src, dst)
    assert result.status == "skipped" and result.output is None
    assert dst.read_bytes() == b"keep me"
    result = veil.clean(src, dst, overwrite=True)
    assert result.status in WRITTEN and dst.read_bytes() != b"keep me"


def test_api_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(backdrop(60, 80)).save(src)
    before = src.read_bytes()
    with pytest.raises(veil.UsageError):
        veil.clean(src, src)
    with pytest.raises(veil.UsageError):
        veil.clean(src, tmp_path / "." / "a.png", overwrite=True)
    with pytest.raises(veil.UsageError):
        veil.clean(src)  # type: ignore[call-overload]
    assert src.read_bytes() == before


def test_inputs_never_modified(tmp_path: Path, cli) -> None:
    files = _inputs(tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_bytes(files[0].read_bytes()[:2000])
    os.utime(files[0], (OLD, OLD))
    before = file_hashes(tmp_path / "in")
    modes = {p: p.stat().st_mode for p in (tmp_path / "in").rglob("*")}

    cli("clean", tmp_path / "in", "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    cli("clean", tmp_path / "in", "-o", tmp_path / "out", "--overwrite")

    assert file_hashes(tmp_path / "in") == before
    assert files[0].stat().st_mtime == OLD
    assert {p: p.stat().st_mode for p in (tmp_path / "in").rglob("*")} == modes


def test_resume_after_crash(tmp_path: Path, cli) -> None:
    files = _inputs(tmp_path / "in")
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    partial = report.with_name(report.name + ".partial")
    args = ("clean", tmp_path / "in", "-o", out, "--report", report)

    assert cli(*args).code == 0
    first = {r["input"]: r for r in read_report(report)}
    assert len(first) == 3 and not partial.exists()
    outputs = {Path(r["output"]).name: Path(r["output"]) for r in first.values()}
    for path in outputs.values():
        os.utime(path, (OLD, OLD))
    # A crash: the final report was never written, the partial one ends in half a line,
    # and one output went missing.
    lines = report.read_text().splitlines(keepends=True)
    report.unlink()
    partial.write_text("".join(lines) + lines[0][: len(lines[0]) // 2])
    outputs["b.png"].unlink()

    assert cli(*args).code == 0

    rows = read_report(report)
    assert sorted(r["input"] for r in rows) == sorted(str(p) for p in files)
    assert len(rows) == len(files), "exactly one line per input"
    assert all(r["status"] in WRITTEN for r in rows)
    assert not partial.exists()
    assert outputs["b.png"].is_file(), "the missing output is redone"
    assert outputs["b.png"].stat().st_mtime != OLD
    for name in ("a.jpg", "c.webp"):  # finished files are not redone
        assert outputs[name].stat().st_mtime == OLD, f"{name} was cleaned again"
    again = {r["input"]: r for r in rows}
    for name in ("a.jpg", "c.webp"):
        key = next(k for k in again if k.endswith(name))
        assert again[key] == first[key], "a resumed row keeps what the first run found"


def test_rerun_with_report_redoes_nothing(tmp_path: Path, cli) -> None:
    _inputs(tmp_path / "in")
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ("clean", tmp_path / "in", "-o", out, "--report", report)
    assert cli(*args).code == 0
    for path in out.rglob("*"):
        os.utime(path, (OLD, OLD))
    first = read_report(report)
    assert cli(*args).code == 0
    assert read_report(report) == first
    assert all(p.stat().st_mtime == OLD for p in out.rglob("*") if p.is_file())


def _small_batch(folder: Path) -> None:
    _inputs(folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    (folder / "notes.txt").write_text("hello")
    (folder / "sub" / "d.jpg").write_bytes((folder / "a.jpg").read_bytes())


def test_jobs_2_same_statuses_as_jobs_1(tmp_path: Path, cli) -> None:
    _small_batch(tmp_path / "in")
    results = {}
    for jobs in ("1", "2"):
        report = tmp_path / f"r{jobs}.jsonl"
        run = cli(
            "clean",
            tmp_path / "in",
            "-o",
            tmp_path / f"out{jobs}",
            "--report",
            report,
            "--jobs",
            jobs,
        )
        assert run.code == 1  # broken.png
        results[jobs] = [
            (r["input"], r["status"], len(r["faces"]), r["metadata_removed"])
            for r in read_report(report)
        ]
    assert results["1"] == results["2"]
    assert sum(s in WRITTEN for _, s, _, _ in results["1"]) == 4
    tree = [
        sorted(str(p.relative_to(tmp_path / f"out{j}")) for p in (tmp_path / f"out{j}").rglob("*"))
        for j in ("1", "2")
    ]
    assert tree[0] == tree[1]
    assert not leftovers(tmp_path)


def test_console_says_why_files_were_skipped(tmp_path: Path, cli) -> None:
    """A rerun names the reason for its skips, grouped, not only ``4 skipped`` (issue 16)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray(backdrop(40, 60)).save(src / f"p{i}.png")
    (src / "notes.txt").write_text("a shopping list\n")
    out = tmp_path / "out"
    assert cli("clean", src, "-o", out).code == 0

    run = cli("clean", src, "-o", out)

    assert run.code == 0, run.err
    grouped = "skipped 5 files: output exists (use --overwrite to replace it): "
    (line,) = [line for line in run.err.splitlines() if line.startswith(grouped)]
    assert line.endswith(" and 2 more"), "a long group names a few files, then counts"
    assert f"skipped: {src / 'notes.txt'}: unsupported file type .txt" in run.err
    assert "6 files: 0 cleaned, 0 unchanged, 6 skipped, 0 failed; 0 faces obscured" in run.err

    alone = cli("clean", src / "p0.png", "-o", out / "flat")
    again = cli("clean", src / "p0.png", "-o", out / "flat")

    assert alone.code == again.code == 0
    assert "1 file: 0 cleaned, 1 unchanged, 0 skipped, 0 failed; 0 faces obscured" in alone.err
    reason = f"skipped: {src / 'p0.png'}: output exists (use --overwrite to replace it)"
    assert reason in again.err.splitlines()


def test_a_stop_while_a_job_is_handed_to_a_worker_leaves_no_staged_file(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM can land while a job is being submitted, before the batch counts it as
    running; the staged file it made for that job is this process's own, which no sweep of
    this process removes, so it must go at once."""
    from collections import deque

    from veil import batch

    class Interrupted:
        def submit(self, *args: object) -> None:
            raise KeyboardInterrupt

    (tmp_path / "out").mkdir()
    job = batch.Job(tmp_path / "in.jpg", tmp_path / "out" / "in.jpg")
    running: dict = {}
    with pytest.raises(KeyboardInterrupt):
        list(batch._submit(Interrupted(), deque([(0, job)]), running))  # type: ignore[arg-type]
    assert running == {} and leftovers(tmp_path / "out") == []
