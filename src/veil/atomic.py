"""Atomic writes, and the removal of what a killed run left half-written.

Every output is first written to a temporary file beside it and renamed into place when
complete, so a reader never sees half a file. A run killed mid-write (SIGKILL, power loss)
leaves that temporary file behind; its name carries the writer's process id, so the next run
into the same folder can tell a dead writer's leftover (removed) from a live one's (kept).

Temporary names are short and fixed-length (``.<pid>-<random>.veil-tmp``), never derived from the
output's name: an output name of up to 255 bytes, the file system's limit, still works.

Work that needs files no one will read (a dataset record's video, cleaned from disk) gets a
temporary *folder* by the same convention, in the output folder rather than the system's temp
folder: a killed writer's folder, holding an original with its GPS tags and voices, is removed
whole by the next run's sweep, where /tmp would have kept it.

Process ids are this machine's: on a cluster sharing the output folder (``veil dataset
--engine ray``), another node's temporary file is judged by a local pid. Sweeping is therefore
done only when no writer of the run is at work: as a run starts and after all its shards.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
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


def _dead_owner(name: str) -> bool:
    """Whether ``name`` is a temporary name of another process of this machine that is gone."""
    match = _OURS.fullmatch(name)
    if match is None:
        return False
    pid = int(match.group(1))
    return pid != os.getpid() and not _alive(pid)


def _stale(path: Path, now: float) -> bool:
    if _OURS.fullmatch(path.name) is not None:
        return _dead_owner(path.name)
    try:
        return now - path.lstat().st_mtime > _UNOWNED_AGE
    except OSError:
        return False


def sweep(root: Path, recursive: bool = True) -> int:
    """Remove the temporary files and folders of dead writers below ``root``; how many went.

    Writers still running (another veil into the same folder) keep theirs. Symbolic links to
    folders are not followed, and nothing but veil's temporary names is ever touched: a folder
    goes whole, with all it holds, only when its name carries the id of a process that is gone
    (no veil made a temporary folder without one, so an unowned one is no leftover of ours).
    """
    if not root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for folder, dirs, names in os.walk(root) if recursive else [(str(root), *_listing(root))]:
        for name in [d for d in dirs if is_temporary(d)]:
            # Never walked into: a live writer's folder is its own, a dead one's goes whole.
            dirs.remove(name)
            if _dead_owner(name) and _removed(Path(folder) / name):
                removed += 1
        for name in names:
            path = Path(folder) / name
            if is_temporary(name) and _stale(path, now) and _removed(path):
                removed += 1
    return removed


def _removed(path: Path) -> bool:
    try:
        _remove(path)
    except OSError:
        return False  # read-only or already gone: a later run tries again
    return True


def _listing(root: Path) -> tuple[list[str], list[str]]:
    """The names of ``root``'s folders and of its other entries (links to folders among them)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return [], []
    dirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    return dirs, [e.name for e in entries if not e.is_dir(follow_symlinks=False)]


def _remove(path: Path) -> None:
    """Remove a temporary file, or a temporary folder with all it holds; a link is removed,
    never followed. `OSError` when it cannot be."""
    if stat.S_ISDIR(path.lstat().st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


#: This process's temporary files and folders not yet published or removed: a worker told to
#: stop removes them whatever line it was stopped at (`_lifetime`), even before a ``try`` could.
_pending: set[Path] = set()
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def temporary_beside(dst: Path) -> Path:
    """A new, empty, private temporary file in ``dst``'s folder (same file system)."""
    return _make(dst.parent, _new_file)


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600))


def temporary_folder(parent: Path) -> Path:
    """A new, empty, private temporary folder in ``parent``, for files that are never published;
    `discard` removes it with all it holds, and so does `sweep` once this process is gone."""
    return _make(parent, lambda path: os.mkdir(path, 0o700))


def _make(parent: Path, create: Callable[[Path], None]) -> Path:
    """A new temporary name in ``parent``, made by ``create`` (which fails if it exists)."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        # Named here rather than by mkstemp so that it is known before it exists.
        path = parent / f".{os.getpid()}-{secrets.token_hex(5)}{SUFFIX}"
        _pending.add(path)
        try:
            create(path)
            return path
        except FileExistsError:
            _pending.discard(path)
        except BaseException:  # a stop may land after it was made: the name is ours
            with contextlib.suppress(OSError):
                _remove(path)
            _pending.discard(path)
            raise


def discard(tmp: Path) -> None:
    """Remove a temporary file (or folder, with all it holds) that will not be published."""
    with contextlib.suppress(FileNotFoundError):
        _remove(tmp)
    _pending.discard(tmp)


def rename(tmp: Path, dst: Path) -> None:
    """Move a temporary file that is already complete on disk into place."""
    os.replace(tmp, dst)
    _pending.discard(tmp)


def remove_pending() -> None:
    """Remove every temporary file and folder of this process (a worker that is being stopped)."""
    for path in list(_pending):
        with contextlib.suppress(OSError):
            _remove(path)
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
