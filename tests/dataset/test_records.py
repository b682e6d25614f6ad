"""A video or recording held in memory (a WebDataset member, a Parquet cell) is cleaned through
files in a temporary folder of the output folder, never the system's temp folder: gone after the
record, whatever became of it, and swept by the next run when a SIGKILL took its worker first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from veil import _lifetime
from veil.atomic import is_temporary, sweep
from veil.dataset.policy import Policy
from veil.dataset.records import Cleaner, Image, _clean_on_disk
from veil.errors import CorruptInput, WriteFailed
from veil.result import Result
from veil.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ORIGINAL = b"RIFF an original recording, with its tags and its voice"


class Seen:
    """A stand-in `Pipeline.clean_file`: notes where it was asked to read and write, and
    writes an output (or fails, as a record that cannot be cleaned does)."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.paths: list[tuple[Path, Path]] = []

    def clean_file(self, src: Path, dst: Path) -> Result:
        self.paths.append((src, dst))
        assert src.read_bytes() == ORIGINAL
        if self.fails:
            raise CorruptInput("not a recording after all")
        dst.write_bytes(b"cleaned")
        return Result(str(src), str(dst), "cleaned")


def _member() -> Image:
    return Image("000001.wav", ORIGINAL, ".wav")


def test_a_member_is_cleaned_in_a_temporary_folder_of_the_output_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    pipe = Seen()
    data, result = _clean_on_disk(pipe, _member(), tmp_path)  # type: ignore[arg-type]
    assert data == b"cleaned" and result.status == "cleaned"
    [(src, dst)] = pipe.paths
    assert src.parent == dst.parent and src.parent.parent == tmp_path
    assert is_temporary(src.parent.name)
    assert list(tmp_path.iterdir()) == []


def test_a_member_that_fails_leaves_nothing_either(tmp_path: Path) -> None:
    pipe = Seen(fails=True)
    with pytest.raises(CorruptInput):
        _clean_on_disk(pipe, _member(), tmp_path)  # type: ignore[arg-type]
    assert pipe.paths and list(tmp_path.iterdir()) == []


def test_no_room_for_the_member_stops_the_run_rather_than_failing_the_record(
    tmp_path: Path,
) -> None:
    """The folder is on the output's disk now: a full or read-only one is `WriteFailed`."""
    blocked = tmp_path / "a file, not a folder"
    blocked.write_bytes(b"")
    with pytest.raises(WriteFailed):
        _clean_on_disk(Seen(), _member(), blocked)  # type: ignore[arg-type]


def test_the_cleaner_cleans_through_its_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaner = Cleaner(Settings(), Policy(), scratch=tmp_path / "out")
    pipe = Seen()
    monkeypatch.setattr(cleaner.obscuring, "clean_file", pipe.clean_file)
    outcome = cleaner.record("000001", "000000.tar", {}, [_member()])
    assert outcome.row.status == "cleaned" and outcome.images == [b"cleaned"]
    [(src, _)] = pipe.paths
    assert src.parent.parent == tmp_path / "out"
    assert list((tmp_path / "out").iterdir()) == []


_KILLED_MID_RECORD = """
import sys, time
from pathlib import Path
from veil.dataset.records import Image, _clean_on_disk

class Stuck:
    def clean_file(self, src, dst):
        print(src, flush=True)
        time.sleep(60)

_clean_on_disk(Stuck(), Image("000001.wav", b"RIFF the original", ".wav"), Path(sys.argv[1]))
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="tells a dead writer by /proc")
def test_a_worker_killed_mid_record_leaves_nothing_the_next_run_does_not_remove(
    tmp_path: Path,
) -> None:
    """SIGKILL: no ``finally`` runs. The original must not stay in the system's temp folder
    (no run ever looks there) but in the output folder, which the next run sweeps."""
    out, system_tmp = tmp_path / "out", tmp_path / "tmp"
    system_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(system_tmp), "PYTHONPATH": str(REPO / "src")}
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_MID_RECORD), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        try:
            assert child.stdout is not None
            src = Path(child.stdout.readline().strip())
        finally:
            child.send_signal(signal.SIGKILL)
    assert src.parent.parent == out and src.is_file()
    assert list(system_tmp.iterdir()) == []
    deadline = time.monotonic() + 10  # reaped already (wait), but /proc may lag a moment
    while Path(f"/proc/{child.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sweep(out) == 1
    assert list(out.iterdir()) == []


class Swallows:
    """A stand-in pipeline whose library caught the worker's `Stop` and raised its own error,
    as onnxruntime's module init does (``ImportError: initialization failed``)."""

    def clean_bytes(self, data: bytes, ext: str, name: str) -> None:
        raise ImportError("initialization failed")

    def clean_file(self, src: Path, dst: Path) -> None:
        raise ImportError("initialization failed")


@pytest.fixture
def told_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a busy worker that has just been sent SIGTERM."""
    monkeypatch.setattr(_lifetime, "_busy", True)
    monkeypatch.setattr(_lifetime, "_stopping", True)


def _cleaner(tmp_path: Path) -> Cleaner:
    cleaner = Cleaner(Settings(), Policy(), scratch=tmp_path)
    cleaner.obscuring = Swallows()  # type: ignore[assignment]
    return cleaner


def test_an_error_raised_while_the_worker_stops_is_the_stop_s_not_the_record_s(
    tmp_path: Path, told_to_stop: None
) -> None:
    """Marked failed, the record would be written into its shard as failed and kept out of
    every resumed run (a CI run caught a whole shard of them)."""
    photo = Image("000001.jpg", b"\xff\xd8 a photo", ".jpg")
    with pytest.raises(_lifetime.Stop):
        _cleaner(tmp_path).record("000001", "000000.tar", {}, [photo])
    src = tmp_path / "a.jpg"
    src.write_bytes(photo.data)
    with pytest.raises(_lifetime.Stop):
        _cleaner(tmp_path).file("000001", "000000", {}, src, tmp_path / "b.jpg")


def test_the_same_error_in_a_worker_not_told_to_stop_fails_the_record_alone(
    tmp_path: Path,
) -> None:
    photo = Image("000001.jpg", b"\xff\xd8 a photo", ".jpg")
    outcome = _cleaner(tmp_path).record("000001", "000000.tar", {}, [photo])
    assert outcome.row.status == "failed" and "initialization failed" in (outcome.row.error or "")
    assert not outcome.written
