"""Worker processes that never outlive their parent, and stop cleanly when told to.

A batch's workers are spawned processes. If the parent is killed (SIGKILL, OOM killer), nothing
tells them: they would go on cleaning and writing outputs no report will ever name. Each worker
therefore asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also
polls its parent id (every other system, and a parent that died before the request was made).

SIGTERM in a worker means "stop now": while it works on a file, `Stop` is raised so that the
``finally`` blocks under it remove its temporary files; while idle, it exits at once. Ctrl-C
reaches every process of the terminal's group: workers ignore it and let the parent decide.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn, TypeVar

from .atomic import remove_pending

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0
_busy = False
_stopping = False

T = TypeVar("T")


class Stop(BaseException):  # a signal, not an error: a BaseException like KeyboardInterrupt
    """Raised in a worker told to stop (SIGTERM, or its parent died) while it works."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    global _stopping
    if _stopping:
        return  # a second SIGTERM (the parent's, and its death's): already on the way out
    _stopping = True
    if _busy:
        raise Stop
    _exit()


def _exit() -> NoReturn:
    remove_pending()
    os._exit(128 + signal.SIGTERM)


def die_with_parent(parent: int) -> None:
    """Call first in a worker's initializer; ``parent`` is the pid of the process that spawned
    it (``os.getpid()`` there, passed along), so that a parent already gone is noticed too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass  # the poll below still notices, within a second
    if os.getppid() != parent:
        _exit()
    threading.Thread(target=_watch, args=(parent,), name="veil-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def working() -> Iterator[None]:
    """Marks the worker busy: a SIGTERM inside raises `Stop` instead of exiting at once."""
    global _busy
    _busy = True
    try:
        yield
    finally:
        _busy = False


def stop_if_told() -> None:
    """Raise `Stop` if this worker was told to stop. For ``except Exception`` blocks that would
    blame their input: a library can catch the `Stop` raised inside it and raise its own error
    instead (onnxruntime's module init turns it into ``ImportError: initialization failed``),
    and that error is the stop's, not the file's, so no file may be marked failed for it."""
    if _stopping and _busy:
        raise Stop


def run_stoppable(fn: Callable[[], T]) -> T:
    """``fn()`` in a worker; if it is stopped, its temporary files are gone when this exits."""
    try:
        with working():
            return fn()
    except Stop:
        _exit()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main process: SIGTERM behaves like Ctrl-C (KeyboardInterrupt), so a batch stops
    the same way, keeps what it finished and leaves nothing behind."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now, not after the work in hand: SIGTERM (each removes its
    temporary files as it goes), then SIGKILL for one that has not ended within 10 s (stuck
    in a long native call: its caller sweeps what it left)."""
    # The executor has no public handle on its processes; _processes is the same from 3.8 on.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=10)
