"""What is in a folder, and reading a file that may not be a file.

A folder can hold more than photos: named pipes (FIFOs), sockets, devices, symbolic links that
point nowhere or at themselves. Opening a FIFO blocks until someone writes to it, so veil would
hang; silently leaving them out would break "every input gets one line". Each such entry is
listed with the reason it cannot be cleaned, and reading never blocks.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .atomic import is_temporary
from .errors import UnsupportedFormat, UsageError

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, in plain words; None for a regular file (or a
    symbolic link to one)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "not a file: a symbolic link that loops back on itself"
        if path.is_symlink():
            return "not a file: a broken symbolic link (its target does not exist)"
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "not a file: a symbolic link to a folder (not followed)"
    return _kind(mode)


def _kind(mode: int) -> str:
    """What a non-regular, non-folder entry is, as a reason."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"not a file: {kind}"


def entries(folder: Path) -> list[tuple[Path, str | None]]:
    """Every entry below ``folder`` but sub-folders, recursively, in a stable order, each with
    `not_a_file`'s reason (None for a file to clean). Symbolic links to folders are listed, not
    followed (a link can loop, or lead out of the tree); veil's own temporary files and folders
    (with what they hold: a killed dataset worker's holds an uncleaned original) are left out.
    """
    found: list[tuple[Path, str | None]] = []
    for path in sorted(_walk(folder)):
        if not is_temporary(path.name):
            found.append((path, not_a_file(path)))
    return found


def _walk(folder: Path) -> list[Path]:
    paths: list[Path] = []
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.is_dir(follow_symlinks=False):
                if not is_temporary(entry.name):
                    paths += _walk(Path(entry.path))
            else:
                paths.append(Path(entry.path))
    return paths


def given_entries(given: Path) -> list[tuple[Path, str | None]]:
    """An input as given on the command line: a folder's `entries`, or the one entry a file
    (or a FIFO, or a link) is. A name that is nothing at all is a `UsageError`: a typo."""
    if not given.exists() and not given.is_symlink():
        raise UsageError(f"input not found: {given}")
    return entries(given) if given.is_dir() else [(given, not_a_file(given))]


def files_in(folder: Path) -> list[Path]:
    """Every file below ``folder`` that can be read as one, recursively, in a stable order."""
    return [path for path, problem in entries(folder) if problem is None]


def read_regular(path: Path, size: int = -1) -> bytes:
    """The first ``size`` bytes of ``path`` (all with -1). Never blocks: a FIFO, socket or
    device raises `UnsupportedFormat` instead of waiting for a writer that never comes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsupportedFormat(_kind(mode))
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(size)
    finally:
        os.close(fd)
