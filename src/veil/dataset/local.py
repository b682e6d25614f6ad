"""The local engine: shards cleaned in a pool of worker processes on this machine (no
servers), or in this process when one worker is asked for."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ..settings import Settings
from .layouts import Layout, Shard, clean_shard
from .policy import Policy
from .records import Cleaner

# Each worker process holds one Cleaner (the models load once per process).
_CLEANER: Cleaner | None = None


def _init_worker(settings: Settings, policy: Policy) -> None:
    global _CLEANER
    # One onnxruntime thread per worker: the processes already fill the cores.
    _CLEANER = Cleaner(settings, policy, threads=1)


def _work(layout: Layout, shard: Shard, out: Path) -> int:
    assert _CLEANER is not None
    return clean_shard(layout, shard, out, _CLEANER)


def run_local(
    layout: Layout,
    todo: list[Shard],
    out: Path,
    settings: Settings,
    policy: Policy,
    workers: int,
    done: Callable[[int], None],
) -> None:
    """Clean every shard of ``todo``; ``done(records)`` after each shard."""
    if workers == 1:
        cleaner = Cleaner(settings, policy, threads=None)
        for shard in todo:
            done(clean_shard(layout, shard, out, cleaner))
        return
    # Spawned, not forked: forking a process that already runs onnxruntime's threads is unsafe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(settings, policy)
    ) as pool:
        futures = [pool.submit(_work, layout, shard, out) for shard in todo]
        try:
            for future in as_completed(futures):
                done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
