"""The local engine: shards cleaned in a pool of worker processes on this machine (no
servers), or in this process when one worker is asked for."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

from .layouts import Shard, Work
from .records import Cleaner

# Each worker process holds one Cleaner (the models load once per process).
_CLEANER: Cleaner | None = None


def _init_worker(work: Work) -> None:
    global _CLEANER
    # One onnxruntime thread per worker: the processes already fill the cores.
    _CLEANER = Cleaner(work.settings, work.policy, threads=1)


def _clean(work: Work, shard: Shard) -> int:
    assert _CLEANER is not None
    return work.clean(shard, _CLEANER)


def run_local(work: Work, done: Callable[[int], None]) -> None:
    """Clean every shard of ``work``; ``done(records)`` after each shard."""
    if work.workers == 1:
        cleaner = Cleaner(work.settings, work.policy, threads=None)
        for shard in work.todo:
            done(work.clean(shard, cleaner))
        return
    # Spawned, not forked: forking a process that already runs onnxruntime's threads is unsafe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        work.workers, mp_context=context, initializer=_init_worker, initargs=(work,)
    ) as pool:
        futures = [pool.submit(_clean, work, shard) for shard in work.todo]
        try:
            for future in as_completed(futures):
                done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
