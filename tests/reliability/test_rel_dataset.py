"""`veil dataset` under faults: a full or read-only output disk, SIGKILL and SIGTERM mid-run.

Whatever stops a run, the error is one clear line with exit code 1 (never a traceback), the run
state stays valid, and the same command run again finishes the job: its output and manifest
are then byte for byte those of a run that was never stopped, and no temporary file is left.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("pyarrow", reason="dataset mode needs pip install 'veil[dataset]'")

from helpers import alive, descendants, file_hashes, leftovers, textured
from helpers import make_shards as shards_of
from veil.dataset import run
from veil.dataset.manifest import MANIFEST

SHARDS, PER = 6, 4
LINUX = sys.platform.startswith("linux")


def make_shards(root: Path, shards: int = SHARDS, per: int = PER) -> None:
    """WebDataset tar shards of small faceless JPEGs, each with EXIF and a JSON sidecar."""
    shards_of(root, shards, per, fields={"country": "US"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The input, and every file of an uninterrupted run's output (path: SHA-256)."""
    root = tmp_path_factory.mktemp("dataset")
    make_shards(root / "in")
    summary = run(root / "in", root / "reference", workers=1, progress=False)
    assert summary.complete and summary.totals["cleaned"] == SHARDS * PER
    return root / "in", file_hashes(root / "reference")


def command(source: Path, out: Path, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "veil", "dataset", str(source), str(out), "--progress", "off"]
    return [*base, *extra]


def finish(source: Path, out: Path, reference: dict[str, str]) -> None:
    """The same command again completes the run: output and manifest as if never stopped."""
    summary = run(source, out, workers=1, progress=False)
    assert summary.complete
    assert not leftovers(out)
    assert file_hashes(out) == reference


def clean_error(err: str) -> None:
    assert "Traceback" not in err, err
    assert "veil: error: cannot write" in err, err
    assert "run the same command again" in err, err


# -- a disk that fails writes ------------------------------------------------------------------
def _fail_on(monkeypatch: pytest.MonkeyPatch, matches: Callable[[Path], bool]) -> None:
    """The disk is full when a file matching ``matches`` is moved into place (the last step of
    every atomic write, so its temporary file was written: it must be removed)."""
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if matches(Path(dst)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda p: p.name == "run.json", id="run state"),
        pytest.param(lambda p: p.name == "000002.tar", id="shard output"),
        pytest.param(lambda p: p.name.startswith("000003.tar."), id="manifest part"),
        pytest.param(lambda p: p.name == MANIFEST, id="manifest"),
    ],
)
def test_a_full_disk_stops_the_run_with_a_clear_error_and_it_resumes(
    tmp_path: Path,
    dataset: tuple[Path, dict[str, str]],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    where: Callable[[Path], bool],
) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    _fail_on(monkeypatch, where)
    failed = cli("dataset", source, out, "--workers", "1", "--progress", "off")
    assert failed.code == 1, failed.err
    clean_error(failed.err)
    assert "No space left on device" in failed.err
    assert not leftovers(out)
    monkeypatch.undo()
    finish(source, out, reference)


def test_a_full_disk_in_a_folder_dataset_fails_no_record(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder shard is written file by file: a sibling that cannot be written stops the run
    (no record is marked failed, which would keep it out for good), and the resume redoes the
    shard."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(4):
        Image.fromarray(textured(128, 128, seed=i)).save(source / f"p{i}.jpg", quality=90)
        (source / f"p{i}.json").write_text(json.dumps({"n": i}))
        (source / f"p{i}.txt").write_text(f"caption {i}")
    run(source, tmp_path / "reference", shard_size=2, workers=1, progress=False)
    out = tmp_path / "out"
    _fail_on(monkeypatch, lambda p: p.name == "p3.txt")
    failed = cli("dataset", source, out, "--shard-size", "2", "--workers", "1", "--progress", "off")
    assert failed.code == 1, failed.err
    clean_error(failed.err)
    assert not leftovers(out)
    monkeypatch.undo()
    summary = run(source, out, shard_size=2, workers=1, progress=False)
    assert summary.complete and summary.shards_run == 1 and summary.totals["failed"] == 0
    assert file_hashes(out) == file_hashes(tmp_path / "reference")


def test_a_file_size_limit_fails_every_worker_with_a_clear_error(
    tmp_path: Path, dataset: tuple[Path, dict[str, str]]
) -> None:
    """A real error from the kernel, in spawned workers: RLIMIT_FSIZE makes a write past 64 KiB
    fail with EFBIG (SIGXFSZ ignored, so the write returns the error instead of killing)."""
    source, reference = dataset
    out = tmp_path / "out"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    done = subprocess.run(
        [*command(source, out), "--workers", "2"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    clean_error(done.stderr)
    assert "File too large" in done.stderr
    assert not leftovers(out) and not (out / MANIFEST).exists()
    finish(source, out, reference)


class Lock:
    """Makes a folder unwritable: its permissions for a user, the immutable flag for root (whom
    permissions do not stop)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if os.geteuid() != 0:
            folder.chmod(0o500)
        elif (
            shutil.which("chattr") is None
            or subprocess.run(
                ["chattr", "+i", str(folder)], capture_output=True, check=False
            ).returncode
        ):
            pytest.skip("running as root, and chattr +i does not work here")
        self.locked = True

    def undo(self) -> None:
        if self.locked and os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(self.folder)], check=True)
        self.folder.chmod(0o755)
        self.locked = False


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Lock]]:
    made: list[Lock] = []

    def lock(folder: Path) -> Lock:
        made.append(Lock(folder))
        return made[-1]

    yield lock
    for each in made:
        if each.locked:
            each.undo()


def test_a_read_only_output_is_a_clear_error_and_resumes_once_writable(
    tmp_path: Path,
    dataset: tuple[Path, dict[str, str]],
    cli: Any,
    read_only: Callable[[Path], Lock],
) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    out.mkdir()
    lock = read_only(out)
    failed = cli("dataset", source, out, "--workers", "1", "--progress", "off")
    assert failed.code == 1, failed.err
    clean_error(failed.err)
    assert any(s in failed.err for s in ("Permission denied", "Operation not permitted"))
    lock.undo()
    finish(source, out, reference)


def test_an_output_that_is_a_file_is_a_usage_error(
    tmp_path: Path, dataset: tuple[Path, dict[str, str]], cli: Any
) -> None:
    source, _ = dataset
    (tmp_path / "out").write_text("not a folder")
    failed = cli("dataset", source, tmp_path / "out", "--progress", "off")
    assert failed.code == 2 and "Traceback" not in failed.err
    assert "veil: error:" in failed.err and "not a folder" in failed.err


# -- kills -------------------------------------------------------------------------------------
def living(pids: set[int]) -> set[int]:
    return {pid for pid in pids if alive(pid)}


def start_and_wait_for_a_write(
    source: Path, out: Path, log: Path, shards_done: int = 1
) -> tuple[subprocess.Popen[bytes], set[int]]:
    """``veil dataset`` with two workers, once ``shards_done`` shards are done and a worker is
    writing another (its temporary file exists); the child and its worker processes. Its
    stderr goes to ``log``: a pipe would stay open while an orphaned worker lives, and hang
    the test."""
    with log.open("wb") as err:
        child = subprocess.Popen(
            [*command(source, out), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: the test can kill it all
        )
    parts = out / ".veil-dataset" / "parts"
    deadline = time.monotonic() + 120
    while not (
        len(list(parts.glob("*.parquet"))) >= shards_done
        and any(p.parent == out for p in leftovers(out))  # a shard's, not the run state's
    ):
        if child.poll() is not None:
            pytest.fail(f"the run ended before it could be stopped: {log.read_text()}")
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.01)
    return child, descendants(child.pid)


def gone(pids: set[int], within_s: float = 5.0) -> bool:
    """Whether every process of ``pids`` has exited within ``within_s`` (multiprocessing's
    resource tracker takes a moment to notice its parent has gone)."""
    deadline = time.monotonic() + within_s
    while living(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not living(pids)


def settled(out: Path, wait_s: float = 3.0) -> int:
    time.sleep(wait_s)
    return sum(1 for p in out.rglob("*") if p.is_file())


@pytest.mark.skipif(not LINUX, reason="finds worker processes through /proc")
def test_sigkill_of_the_parent_takes_its_workers_along(
    tmp_path: Path, dataset: tuple[Path, dict[str, str]]
) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    child, workers = start_and_wait_for_a_write(source, out, tmp_path / "err")
    assert workers, "no worker processes found"
    child.kill()
    child.wait()
    first = settled(out)
    assert gone(workers, 0), "workers outlived their parent"
    assert settled(out) == first, "files were still being written after the kill"
    assert not (out / MANIFEST).exists()
    finish(source, out, reference)


@pytest.mark.skipif(not LINUX, reason="finds worker processes through /proc")
def test_sigkill_of_every_process_leaves_temporaries_the_next_run_removes(
    tmp_path: Path, dataset: tuple[Path, dict[str, str]]
) -> None:
    """The OOM killer or ``kill -9`` on the group: no process gets to clean up after itself."""
    source, reference = dataset
    out = tmp_path / "out"
    child, workers = start_and_wait_for_a_write(source, out, tmp_path / "err")
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    # Gone for good, not zombies waiting for init: the next run tells a dead writer's file
    # from a live one's by its process id.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(out), "the kill left no temporary file: this test tests nothing"
    finish(source, out, reference)


@pytest.mark.skipif(not LINUX, reason="finds worker processes through /proc")
def test_sigterm_stops_like_ctrl_c(tmp_path: Path) -> None:
    """Stopped at once, not when the shards in hand are done: two long shards, no part after.
    Long: 16 tiny records took under a second, and once a shard finished in the moment between
    the test seeing it start and the signal arriving (a suite run on 2 loaded cores)."""
    make_shards(tmp_path / "in", shards=2, per=96)
    out = tmp_path / "out"
    child, workers = start_and_wait_for_a_write(tmp_path / "in", out, tmp_path / "err", 0)
    child.terminate()
    child.wait(timeout=30)
    err = (tmp_path / "err").read_text()
    assert child.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err, err
    assert gone(workers) and not leftovers(out)
    assert not list((out / ".veil-dataset" / "parts").glob("*")), "shards finished after the stop"
    summary = run(tmp_path / "in", out, workers=1, progress=False)
    assert summary.complete and summary.shards_run == 2 and not leftovers(out)
