"""`veil.atomic`'s temporary folders: private, removed whole, and swept only when their owner is
gone (a live writer's folder, another veil's at work in the same output, is never touched)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from veil import atomic
from veil.atomic import discard, remove_pending, sweep, temporary_folder
from veil.files import entries


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.fixture
def other_live_pid() -> Iterator[int]:
    """The id of another process that is running for the test's length."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def _full_folder(path: Path) -> Path:
    """A temporary folder as a killed worker leaves it: an original, a half output inside."""
    (path / "deeper").mkdir(parents=True)
    (path / "in.mp4").write_bytes(b"the original, GPS and voice")
    (path / "deeper" / f".{os.getpid()}-abcd1234.veil-tmp").write_bytes(b"half an output")
    return path


@pytest.mark.parametrize("recursive", [True, False])
def test_sweep_removes_a_dead_writer_s_folder_whole_and_keeps_live_ones(
    tmp_path: Path, other_live_pid: int, recursive: bool
) -> None:
    stale = _full_folder(tmp_path / f".{_dead_pid()}-abcd1234.veil-tmp")
    mine = _full_folder(tmp_path / f".{os.getpid()}-abcd1234.veil-tmp")
    theirs = _full_folder(tmp_path / f".{other_live_pid}-abcd1234.veil-tmp")

    assert sweep(tmp_path, recursive=recursive) == 1

    assert not stale.exists()
    # A live writer's folder is left as it is, what it holds included (never walked into).
    for live in (mine, theirs):
        assert (live / "in.mp4").is_file() and (live / "deeper").is_dir()
        assert len(list((live / "deeper").iterdir())) == 1


def test_sweep_finds_a_dead_writer_s_folder_deep_in_the_output(tmp_path: Path) -> None:
    stale = _full_folder(tmp_path / "a" / "b" / f".{_dead_pid()}-abcd1234.veil-tmp")
    assert sweep(tmp_path) == 1
    assert not stale.exists() and (tmp_path / "a" / "b").is_dir()


def test_sweep_never_removes_a_folder_that_names_no_owner(tmp_path: Path) -> None:
    """An old folder with veil's suffix but no process id is no temporary folder veil made."""
    unowned = tmp_path / "dataset.veil-tmp"
    (unowned / "keep.jpg").parent.mkdir()
    (unowned / "keep.jpg").write_bytes(b"someone's photo")
    long_ago = time.time() - 30 * 24 * 3600
    os.utime(unowned, (long_ago, long_ago))
    assert sweep(tmp_path) == 0
    assert (unowned / "keep.jpg").is_file()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_sweep_removes_a_dead_writer_s_link_to_a_folder_not_what_it_points_at(
    tmp_path: Path,
) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "photo.jpg").write_bytes(b"not veil's")
    link = tmp_path / "out" / f".{_dead_pid()}-abcd1234.veil-tmp"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    assert sweep(tmp_path / "out") == 1
    assert not link.is_symlink() and (target / "photo.jpg").is_file()


def test_a_temporary_folder_is_private_and_discard_removes_it_whole(tmp_path: Path) -> None:
    folder = temporary_folder(tmp_path / "out")
    assert folder.parent == tmp_path / "out" and folder.is_dir()
    assert atomic.is_temporary(folder.name) and folder.name.startswith(f".{os.getpid()}-")
    assert folder.stat().st_mode & 0o777 == 0o700  # the original inside is no one else's
    _full_folder(folder)
    assert sweep(tmp_path) == 0  # this process is alive: its folder is its own
    discard(folder)
    assert not folder.exists() and folder not in atomic._pending
    discard(folder)  # twice is harmless, like a file's


def test_a_stopped_worker_removes_its_temporary_folders(tmp_path: Path) -> None:
    folder = _full_folder(temporary_folder(tmp_path))
    remove_pending()
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_listing_a_folder_leaves_out_what_a_temporary_folder_holds(tmp_path: Path) -> None:
    """A killed dataset worker's folder holds an uncleaned original: never taken as an input."""
    (tmp_path / "photo.jpg").write_bytes(b"a photo")
    _full_folder(tmp_path / f".{_dead_pid()}-abcd1234.veil-tmp")
    assert [path for path, _ in entries(tmp_path)] == [tmp_path / "photo.jpg"]


def test_a_killed_model_build_leaves_nothing_after_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An int8 build works in a folder of the system's temporary folder, and a cache entry is
    written through a temporary file: a build killed half-way (SIGKILL) left both behind, tens
    of MB in /tmp each time. The next build removes them; its own goes when it is done."""
    from veil import cache, int8

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path / "cache"))
    dead = _dead_pid()
    killed_build = _full_folder(tmp_path / "tmp" / f".{dead}-abcd1234.veil-tmp")
    killed_write = tmp_path / "cache" / f".{dead}-abcd1234.veil-tmp"
    killed_write.parent.mkdir()
    killed_write.write_bytes(b"half a model")
    with int8._workspace() as folder:
        assert not killed_build.exists() and folder.is_dir()
        (folder / "model.onnx").write_bytes(b"a model")
    assert entries(tmp_path / "tmp") == []

    assert cache.cached("model", [b"inputs"], lambda: b"a model") == b"a model"
    entry = f"model-{hashlib.sha256(b'inputs').hexdigest()[:16]}.onnx"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry]
