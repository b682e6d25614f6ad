"""Atomic writes, and the removal of what a killed run left half-written.

Every output is first written to a temporary file beside it and renamed into place when
complete, so a reader never sees half a file. A run killed mid-write (SIGKILL, power loss)
leaves that temporary file behind; its name carries the writer's process id, so the next run
into the same folder can tell a dead writer's leftover (removed) from a live one's (kept).

Temporary names are short and fixed-length (``.<pid>-<random>.veil-tmp``), never derived from the
output's name: an output name of up to 255 bytes, the file system's limit, still works.

Process ids are this machine's: on a cluster sharing the output folder (``veil dataset
--engine ray``), another node's temporary file is judged by a local pid. Sweeping is therefore
done only when no writer of the run is at work: as a run starts and after all its shards.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".veil-tmp"
_OURS = re.compile(r"\.(\d+)-[A-Za-z0-9_]+\.veil-tmp")
#: Temporary files of older veil versions carry no process id: removed once this old.
_UNOWNED_AGE = 24 * 3600.0


def is_temporary(name: str) -> bool:
    """Whether a file name is one of veil's temporary files (never an input)."""
    return name.endswith(SUFFIX)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    # A killed process stays a zombie until it is reaped (slowly, by some containers' init):
    # it is dead and writes nothing more.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _stale(path: Path, now: float) -> bool:
    match = _OURS.fullmatch(path.name)
    if match is not None:
        return int(match.group(1)) != os.getpid() and not _alive(int(match.group(1)))
    try:
        return now - path.lstat().st_mtime > _UNOWNED_AGE
    except OSError:
        return False


def sweep(root: Path, recursive: bool = True) -> int:
    """Remove the temporary files of dead writers below ``root``; how many went.

    Writers still running (another veil into the same folder) keep theirs. Symbolic links to
    folders are not followed, and nothing but veil's temporary names is ever touched.
    """
    if not root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for folder, _, names in os.walk(root) if recursive else [(str(root), [], _names(root))]:
        for name in names:
            path = Path(folder) / name
            if is_temporary(name) and _stale(path, now):
                try:
                    path.unlink()
                    removed += 1
                except OSError:
                    pass  # read-only or already gone: a later run tries again
    return removed


def _names(root: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(root) if not e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


#: This process's temporary files not yet published or removed: a worker told to stop removes
#: them whatever line it was stopped at (`_lifetime`), even before a ``try`` could.
_pending: set[Path] = set()
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def temporary_beside(dst: Path) -> Path:
    """A new, empty, private temporary file in ``dst``'s folder (same file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    while True:
        # Named here rather than by mkstemp so that it is known before it exists.
        path = dst.parent / f".{os.getpid()}-{secrets.token_hex(5)}{SUFFIX}"
        _pending.add(path)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600))
            return path
        except FileExistsError:
            _pending.discard(path)
        except BaseException:  # a stop may land after the file was made: the name is ours
            with contextlib.suppress(OSError):
                path.unlink()
            _pending.discard(path)
            raise


def discard(tmp: Path) -> None:
    """Remove a temporary file that will not be published."""
    tmp.unlink(missing_ok=True)
    _pending.discard(tmp)


def rename(tmp: Path, dst: Path) -> None:
    """Move a temporary file that is already complete on disk into place."""
    os.replace(tmp, dst)
    _pending.discard(tmp)


def remove_pending() -> None:
    """Remove every temporary file of this process (a worker that is being stopped)."""
    for path in list(_pending):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    _pending.clear()


def atomic_write(dst: Path, data: bytes) -> None:
    """Write ``data`` to ``dst`` so that ``dst`` is either absent/old or complete, never partial."""
    with atomic_output(dst) as tmp:
        tmp.write_bytes(data)


def _current_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; it is put straight back
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def publish(tmp: Path, dst: Path) -> None:
    """Move a finished temporary file into place: flushed to disk first, with the permissions
    any new file of this user gets (`temporary_beside` made it private, 0600)."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, dst)
    _pending.discard(tmp)


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """A temporary path beside ``dst`` that replaces ``dst`` only when the block finishes
    without error; on any error (or a stop) it is deleted and ``dst`` is left as it was.

    >>> with atomic_output(Path("out/clip.mp4")) as tmp:  # doctest: +SKIP
    ...     remux(src, tmp)
    """
    tmp = temporary_beside(dst)
    try:
        yield tmp
        publish(tmp, dst)
    except BaseException:
        discard(tmp)
        raise
