"""The Ray engine: the shards to clean as a Ray Dataset, cleaned by ``map_batches`` with a
callable class, so each actor loads the detector once and cleans shard after shard.

Each batch is one shard (``batch_size=1``): a shard is already many records, and it is the
unit that is written atomically and resumed. The shard's output and manifest part are
written by the actor to the output folder, which must be shared by every node (a local
disk for ``ray.init()`` on one machine; a network file system on a cluster). One GPU per
actor when the cluster has GPUs (onnxruntime-gpu then runs CenterFace on CUDA).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UsageError
from ..extras import needs
from .layouts import Work
from .records import Cleaner


class ShardCleaner:
    """A Ray actor's state: one Cleaner; called with a batch of shard names."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.cleaner = Cleaner(work.settings, work.policy, threads=1)

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, list[Any]]:
        names = [str(name) for name in batch["shard"]]
        records = [self.work.clean(self.work.shard(n), self.cleaner) for n in names]
        return {"shard": names, "records": records}


def run_ray(work: Work, done: Callable[[int], None], address: str | None = None) -> None:
    """Clean every shard of ``work`` on Ray with ``work.workers`` actors; ``done(records)``
    after each shard. Starts a local Ray with that many CPUs unless ``address`` names a
    cluster (or Ray is already initialised)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise UsageError(f"the ray engine needs {needs('ray')} ({exc})") from None
    if not work.todo:
        return
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = work.workers
        ray.init(address=address, logging_level=logging.WARNING, **options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # plans, timings: not for users
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # veil's own bar counts records, Ray's counted blocks
    try:
        _clean(ray, work, done)
    finally:
        if started:
            ray.shutdown()


def _clean(ray: Any, work: Work, done: Callable[[int], None]) -> None:
    gpus = ray.cluster_resources().get("GPU", 0)
    items = [{"shard": shard.name} for shard in work.todo]
    shards = ray.data.from_items(items, override_num_blocks=len(items))
    cleaned = shards.map_batches(
        ShardCleaner,
        fn_constructor_kwargs={"work": work},
        batch_size=1,
        batch_format="numpy",
        # One shard in flight per actor: shards go to whichever actor is free, so neither
        # waits at the end behind shards queued for the other.
        compute=ray.data.ActorPoolStrategy(size=work.workers, max_tasks_in_flight_per_actor=1),
        num_cpus=0 if gpus else 1,
        num_gpus=1 if gpus else 0,
    )
    for row in cleaned.iter_rows():
        done(int(row["records"]))
