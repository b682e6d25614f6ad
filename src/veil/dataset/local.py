"""The local engine: shards cleaned in a pool of worker processes on this machine (no
servers), or in this process when one worker is asked for.

Workers never outlive the run: a killed parent takes them along, and Ctrl-C, SIGTERM or an
error stops them at once, each removing the temporary file it was writing (`_lifetime`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .. import _lifetime
from ..atomic import sweep
from ..errors import VeilError
from .layouts import Shard, Work
from .records import Cleaner

# Each worker process holds one Cleaner (the models load once per process).
_CLEANER: Cleaner | None = None


def _init_worker(work: Work, parent: int) -> None:
    global _CLEANER
    _lifetime.die_with_parent(parent)
    # One onnxruntime thread per worker: the processes already fill the cores.
    _CLEANER = Cleaner(work.settings, work.policy, threads=1, scratch=work.out)


def _clean(work: Work, shard: Shard) -> int:
    cleaner = _CLEANER
    assert cleaner is not None
    return _lifetime.run_stoppable(lambda: work.clean(shard, cleaner))


def run_local(work: Work, done: Callable[[int], None]) -> None:
    """Clean every shard of ``work``; ``done(records)`` after each shard."""
    if work.workers == 1:
        cleaner = Cleaner(work.settings, work.policy, threads=None, scratch=work.out)
        for shard in work.todo:
            done(work.clean(shard, cleaner))
        return
    # Spawned, not forked: forking a process that already runs onnxruntime's threads is unsafe.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        work.workers, mp_context=context, initializer=_init_worker, initargs=(work, os.getpid())
    )
    try:
        futures = [pool.submit(_clean, work, shard) for shard in work.todo]
        for future in as_completed(futures):
            done(future.result())
    except BrokenProcessPool as exc:
        _stop(pool, work)
        raise VeilError(
            "a worker process died (out of memory, or killed from outside) while cleaning a "
            "shard; the shards finished are kept: run the same command again to resume "
            "(with fewer --workers if memory ran out)"
        ) from exc
    except BaseException:
        _stop(pool, work)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor, work: Work) -> None:
    """Stop the workers now rather than let them finish their shards: each removes its
    temporary file, and the shard is redone when the run resumes. One that had to be killed
    (stuck in a long native call) cannot: its files are swept once it is gone."""
    _lifetime.stop_workers(pool)
    sweep(work.out)
