"""`veil clean` and `veil scan` against hostile inputs, kills and full disks (issue 16, items 1-8).

Each case here once broke veil: a corrupt video ended the whole batch, a non-UTF-8 name or a
FIFO crashed or hung it, a full disk left a traceback and half a report line, killed parents
left workers writing, and interrupted batches lost what they had finished.
"""

from __future__ import annotations

import errno
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from clips import make_clip
from helpers import (
    CliRun,
    alive,
    astronaut,
    backdrop,
    children,
    cmdline,
    exif_block,
    leftovers,
    read_report,
    scene,
)


def _jpeg(seed: int = 0, size: tuple[int, int] = (384, 256)) -> bytes:
    pixels = scene()
    pixels = pixels[::2, ::2] if size == (384, 256) else backdrop(size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=80 + seed % 10, exif=exif_block())
    return buf.getvalue()


def _damaged(clip: bytes, handler: bytes) -> bytes:
    """``clip`` with the media box of one track (``b"SoundHandler"`` or ``b"VideoHandler"``)
    renamed, as one flipped byte does: that track's codec can no longer be read."""
    at = clip.index(b"minf", clip.index(handler))
    return clip[:at] + b"mXnf" + clip[at + 4 :]


def _rows(report: Path) -> dict[str, dict[str, Any]]:
    rows = read_report(report)
    by_input = {row["input"]: row for row in rows}
    assert len(by_input) == len(rows), "an input has more than one line"
    return by_input


@pytest.mark.video
def test_corrupt_videos_fail_alone_in_a_pool(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    """A video whose sound or picture track is damaged fails with a plain reason; the other
    files of the batch, in the other worker too, are cleaned and reported."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(tmp_path / "clip.mp4", frames=4)
    clip = (tmp_path / "clip.mp4").read_bytes()
    (folder / "sound.mp4").write_bytes(_damaged(clip, b"SoundHandler"))
    (folder / "picture.mp4").write_bytes(_damaged(clip, b"VideoHandler"))
    (folder / "good.mp4").write_bytes(clip)
    for i in range(3):
        (folder / f"photo{i}.jpg").write_bytes(_jpeg(i))
    out, report = tmp_path / "out", tmp_path / "report.jsonl"

    run = cli("clean", folder, "-o", out, "--report", report, "--jobs", "2")

    assert run.code == 1, run.err
    rows = _rows(report)
    assert len(rows) == 6
    for name in ("sound", "picture"):
        row = rows[str(folder / f"{name}.mp4")]
        assert row["status"] == "failed"
        assert "CorruptInput" in row["error"] and "track is damaged" in row["error"]
        assert not (out / f"{name}.mp4").exists()
    assert {rows[str(folder / n)]["status"] for n in ("good.mp4", "photo0.jpg")} == {"cleaned"}
    assert "Traceback" not in run.err
    assert not leftovers(out)


def test_name_not_utf8_reported_and_rerun(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    """``caf\\xe9.jpg`` (Latin-1 from an old card) with --report: a valid UTF-8 JSON line that
    reads back as the same name, and a rerun resumes instead of crashing."""
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")
    (folder / name).write_bytes(_jpeg())
    report = tmp_path / "report.jsonl"

    for _ in range(2):
        run = cli("clean", folder, "-o", tmp_path / "out", "--report", report)
        assert run.code == 0, run.err
        text = report.read_bytes().decode("utf-8")  # strict: valid UTF-8
        (row,) = [json.loads(line) for line in text.splitlines()]
        assert row["input"] == str(folder / name) and row["status"] == "cleaned"
    assert (tmp_path / "out" / name).is_file()
    scan = cli("scan", folder / name)
    assert scan.code == 0 and "Traceback" not in scan.err


def _odd_entries(folder: Path) -> dict[str, str]:
    """Entries that are not files, each with the reason its row must give."""
    os.mkfifo(folder / "fifo.jpg")
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "sub").mkdir()
    (folder / "linked").symlink_to(folder / "sub")
    return {
        "fifo.jpg": "named pipe",
        "dangling.jpg": "broken symbolic link",
        "loop.jpg": "loops back",
        "linked": "link to a folder",
    }


def test_entries_that_are_not_files_each_get_a_line(
    tmp_path: Path, cli: Callable[..., CliRun]
) -> None:
    """A FIFO named like a photo neither hangs clean nor scan (given alone or in a folder);
    it, broken and looping links and links to folders each get one skipped line, with why."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(_jpeg())
    reasons = _odd_entries(folder)
    report = tmp_path / "report.jsonl"

    started = time.monotonic()
    run = cli("clean", folder, "-o", tmp_path / "out", "--report", report)
    alone = cli("clean", folder / "fifo.jpg", "-o", tmp_path / "out2")
    scan = cli("scan", folder, "--json")
    assert time.monotonic() - started < 60

    assert run.code == 0, run.err
    rows = _rows(report)
    assert len(rows) == 1 + len(reasons)
    assert rows[str(folder / "photo.jpg")]["status"] == "cleaned"
    for name, why in reasons.items():
        row = rows[str(folder / name)]
        assert row["status"] == "skipped" and why in row["error"], row
    assert alone.code == 0 and "1 skipped" in alone.err.replace("1 files", "1 file")
    scanned = {r["path"]: r["error"] for r in json.loads(scan.out)}
    assert len(scanned) == 1 + len(reasons)
    assert "named pipe" in scanned[str(folder / "fifo.jpg")]


def _limit_file_size(limit: int) -> Callable[[], None]:
    """In the child: files larger than ``limit`` bytes fail to grow (EFBIG), as on a full
    disk, without needing one; SIGXFSZ is ignored so the write fails instead of killing."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _veil(*args: Any, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "veil", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_report_on_a_full_disk(tmp_path: Path) -> None:
    """When the report cannot grow: a one-line error (no traceback), exit 1, a partial report
    of whole JSON lines only, and a rerun with room resumes to a complete report."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(backdrop(24, 24)).save(folder / f"flat{i:02}.png")
    report = tmp_path / "report.jsonl"
    args = ("clean", folder, "-o", tmp_path / "out", "--report", report, "--faces", "off")

    full = _veil(*args, preexec_fn=_limit_file_size(1200))
    _, err = full.communicate(timeout=120)

    assert full.returncode == 1, err
    assert "Traceback" not in err and "cannot write the report" in err, err
    partial = report.with_name(report.name + ".partial")
    lines = partial.read_bytes().decode("utf-8").splitlines(keepends=True)
    assert lines and all(line.endswith("\n") for line in lines)
    recorded = [json.loads(line) for line in lines]
    assert 0 < len(recorded) < 12

    again = _veil(*args)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    rows = _rows(report)
    assert len(rows) == 12 and {r["status"] for r in rows.values()} == {"unchanged"}
    assert not partial.exists()
    assert not leftovers(tmp_path / "out")


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _photos(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        (folder / f"p{i:03}.jpg").write_bytes(_jpeg(i))


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.jpg"))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_batch_resumes_as_if_never_stopped(
    tmp_path: Path,
    sig: signal.Signals,
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kill the parent mid-batch: its workers go with it and stop writing (SIGTERM: exit 130,
    nothing left behind at once); the rerun, spelled with an absolute path instead of a
    relative one, produces the report an uninterrupted run produces, and no leftovers."""
    _photos(tmp_path / "in", 24)
    monkeypatch.chdir(tmp_path)
    report = Path("report.jsonl")
    child = _veil("clean", "in", "-o", "out", "--report", report, "--jobs", "2")
    assert _wait_for(lambda: len(_outputs(tmp_path / "out")) >= 3, 120), child.stderr
    workers = children(child.pid)
    assert workers
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert child.returncode == 130 and "interrupted" in err, err
        assert not leftovers(tmp_path / "out")
    assert _wait_for(lambda: not any(alive(w) for w in workers), 10), "workers outlived parent"
    written = len(_outputs(tmp_path / "out"))
    time.sleep(1.0)
    assert len(_outputs(tmp_path / "out")) == written, "outputs appeared after the kill"
    assert written < 24

    resumed = cli("clean", tmp_path / "in", "-o", tmp_path / "out", "--report", report)
    assert resumed.code == 0, resumed.err
    single = cli("clean", tmp_path / "in", "-o", tmp_path / "once", "--report", "once.jsonl")
    assert single.code == 0

    def essence(path: Path, out: str) -> list[tuple[Any, ...]]:
        return [
            (Path(r["input"]).name, r["status"], len(r["faces"]), r["metadata_removed"])
            for r in read_report(path)
            if r["output"] == str(tmp_path / out / Path(r["input"]).name)
        ]

    assert len(essence(report, "out")) == 24
    assert essence(report, "out") == essence(Path("once.jsonl"), "once")
    assert not leftovers(tmp_path / "out") and not leftovers(tmp_path)
    assert not report.with_name(report.name + ".partial").exists()


def test_long_names_and_leftovers_of_a_dead_run(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    """A name of 255 bytes (the file system's limit) is cleaned; temporary files of a dead
    writer are removed by the next run, a live writer's are not touched."""
    folder = tmp_path / "in"
    folder.mkdir()
    long_name = "n" * 251 + ".jpg"
    (folder / long_name).write_bytes(_jpeg())
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = out / f".{dead.stdout.strip()}-abcd1234.veil-tmp"
    live = out / f".{os.getpid()}-abcd1234.veil-tmp"
    for path in (stale, live):
        path.write_bytes(b"half an output")

    run = cli("clean", folder, "-o", out)

    assert run.code == 0, run.err
    assert (out / long_name).is_file()
    assert not stale.exists() and live.exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_a_worker_killed_mid_batch_costs_nothing(tmp_path: Path) -> None:
    """A worker killed mid-batch (the OOM killer, say) breaks the pool: the files it held are
    retried alone in a fresh pool, and every file is cleaned and reported once."""
    _photos(tmp_path / "in", 16)
    report = tmp_path / "report.jsonl"
    child = _veil(
        "clean", tmp_path / "in", "-o", tmp_path / "out", "--report", report, "--jobs", "2"
    )
    try:
        assert _wait_for(lambda: len(_outputs(tmp_path / "out")) >= 2, 120), child.stderr
        workers = [p for p in children(child.pid) if b"spawn_main" in cmdline(p)]
        assert len(workers) == 2  # not the resource tracker, also a child
        os.kill(workers[0], signal.SIGKILL)
        _, err = child.communicate(timeout=180)
    finally:  # a failed assertion must not leave the batch running into the next test
        child.kill()
        child.communicate()

    assert child.returncode == 0, err
    rows = _rows(report)
    assert len(rows) == 16 and {r["status"] for r in rows.values()} == {"cleaned"}, err
    assert not alive(workers[0])
    assert len(_outputs(tmp_path / "out")) == 16
    assert not leftovers(tmp_path / "out")


def test_no_room_to_build_the_int8_model_still_detects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 model is built in a temporary folder on first use; with no room there (a full
    disk, a file-size limit) detection goes on with the fp32 model instead of failing every
    file with "could not load CenterFace: File too large"."""
    from veil.detectors import centerface

    def full_disk() -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(centerface, "int8_model_bytes", full_disk)
    faces = centerface.CenterFace(centerface.Strategy(scales=(1.0,))).detect(astronaut())

    assert len(faces) == 1


def test_report_paths_keep_the_spelling_they_were_given(
    tmp_path: Path, cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative input and output folder give relative paths in both columns of the report
    (the output was made absolute while the input was not)."""
    _photos(tmp_path / "in", 1)
    monkeypatch.chdir(tmp_path)

    run = cli("clean", "in", "-o", "out", "--report", "r.jsonl")

    assert run.code == 0, run.err
    (row,) = read_report(tmp_path / "r.jsonl")
    assert (row["input"], row["output"]) == ("in/p000.jpg", "out/p000.jpg")


def test_verify_gives_entries_that_are_not_files_a_line(
    tmp_path: Path, cli: Callable[..., CliRun]
) -> None:
    """`veil verify` of a folder holding a FIFO and odd links: one line for every entry."""
    pytest.importorskip("dlib", reason="veil verify needs the verify extra")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(_jpeg())
    reasons = _odd_entries(folder)
    assert cli("clean", folder, "-o", tmp_path / "out").code == 0

    run = cli("verify", folder, tmp_path / "out", "--report", tmp_path / "proof.jsonl")

    assert run.code == 0, run.err
    rows = {Path(r["original"]).name: r["status"] for r in read_report(tmp_path / "proof.jsonl")}
    assert rows == {"photo.jpg": "protected", **dict.fromkeys(reasons, "skipped")}


def test_a_failed_write_names_the_output_not_its_temporary_name(
    tmp_path: Path, cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs are staged under a temporary name; a failure says the path the person asked for."""
    import veil.pipeline

    def full_disk(dst: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(veil.pipeline, "atomic_write", full_disk)
    (tmp_path / "photo.jpg").write_bytes(_jpeg())

    run = cli("clean", tmp_path / "photo.jpg", "-o", tmp_path / "out", "--report", tmp_path / "r")

    assert run.code == 1
    (row,) = read_report(tmp_path / "r")
    assert row["error"] == (
        f"WriteFailed: cannot write {tmp_path / 'out' / 'photo.jpg'}: No space left on device"
    )
    assert not leftovers(tmp_path / "out")


class _BreaksAfterOne:
    """A stand-in for the process pool whose first instance runs one job and then breaks
    between two submissions, the way a worker killed right after `wait` returned leaves it:
    the next `submit` raises `BrokenProcessPool` although no future reported the break yet."""

    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        self.fails = type(self).made == 1
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], src: Path, dst: Path) -> Any:
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        from veil.result import Result

        self.submitted += 1
        if self.fails and self.submitted > 1:
            raise BrokenProcessPool("a child process terminated abruptly")
        dst.write_bytes(src.read_bytes())
        future: Future[Result] = Future()
        future.set_result(Result(input=str(src), output=str(dst), status="cleaned"))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_pool_that_breaks_between_submissions_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI once hit: a worker dies after `wait` returned a finished job, and the next
    `submit` raises. The batch must go on in a fresh pool, not end with a traceback."""
    from veil import batch
    from veil.settings import Settings

    monkeypatch.setattr(batch, "ProcessPoolExecutor", _BreaksAfterOne)
    monkeypatch.setattr(_BreaksAfterOne, "made", 0)
    (tmp_path / "in").mkdir()
    jobs = []
    for n in range(5):
        src = tmp_path / "in" / f"{n}.jpg"
        src.write_bytes(b"x%d" % n)
        jobs.append(batch.Job(src, tmp_path / "out" / src.name))
    (tmp_path / "out").mkdir()

    results = batch.clean_batch(jobs, Settings(jobs=2), progress=False)

    assert [r.status for r in results] == ["cleaned"] * 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{n}.jpg" for n in range(5)]
    assert _BreaksAfterOne.made == 2
