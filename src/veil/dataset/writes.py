"""Every write of dataset mode (shard outputs, manifest parts, the manifest, the run state),
atomic, with the disk's errors as `WriteFailed`.

A full or read-only disk is not a record's fault: the run stops (no record is marked failed, so
none is skipped later), and the same command resumes once there is room. The message names the
file and the system's reason (``No space left on device``, ``Permission denied``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..atomic import atomic_output, atomic_write
from ..errors import WriteFailed


@contextmanager
def writing(dst: Path) -> Iterator[None]:
    """An `OSError` in the block becomes `WriteFailed` naming ``dst``. Only for blocks that
    write: a read error of the input is the record's, and must not stop the run."""
    try:
        yield
    except OSError as exc:
        raise WriteFailed(f"cannot write {dst}: {exc.strerror or exc}") from exc


def write(dst: Path, data: bytes) -> None:
    """``data`` to ``dst`` atomically; `WriteFailed` if the disk refuses it."""
    with writing(dst):
        atomic_write(dst, data)


@contextmanager
def output(dst: Path) -> Iterator[Path]:
    """`atomic_output` (a temporary path that replaces ``dst`` when the block succeeds) whose
    disk errors, the block's included, are `WriteFailed`."""
    with writing(dst), atomic_output(dst) as tmp:
        yield tmp
