"""The Ray engine: the shards to clean as a Ray Dataset, cleaned by ``map_batches`` with a
callable class, so each actor loads the detector once and cleans shard after shard.

Each batch is one shard (``batch_size=1``): a shard is already many records, and it is the
unit that is written atomically and resumed. The shard's output and manifest part are
written by the actor to the output folder, which must be shared by every node (a local
disk for ``ray.init()`` on one machine; a network file system on a cluster). One GPU per
actor when the cluster has GPUs (onnxruntime-gpu then runs CenterFace on CUDA).

A node that dies mid-run costs the shards its actors were cleaning a second go elsewhere; a
full or read-only output comes back from the actor as data and stops the run with veil's
`WriteFailed` (see docs/cluster.md).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UsageError, WriteFailed
from ..extras import needs
from .layouts import Work
from .records import Cleaner


class ShardCleaner:
    """A Ray actor's state: one Cleaner; called with a batch of shard names."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.cleaner = Cleaner(work.settings, work.policy, threads=1, scratch=work.out)

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, list[Any]]:
        names = [str(name) for name in batch["shard"]]
        records, errors = [], []
        for name in names:
            # A full or read-only disk comes back as data: the driver stops the run with it
            # (a Ray task error would reach the user as Ray's traceback, not veil's message).
            try:
                records.append(self.work.clean(self.work.shard(name), self.cleaner))
                errors.append("")
            except WriteFailed as exc:
                records.append(0)
                errors.append(str(exc))
        return {"shard": names, "records": records, "error": errors}


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
        else:
            _reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, **options)
        except ConnectionError as exc:  # "auto" with no cluster running here
            raise UsageError(f"cannot join the Ray cluster at {address}: {exc}") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # plans, timings: not for users
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # veil's own bar counts records, Ray's counted blocks
    try:
        _clean(ray, work, done)
    finally:
        if started:
            ray.shutdown()


def _reachable(address: str) -> None:
    """`UsageError` unless ``HOST:PORT`` answers: Ray itself retries a wrong address for
    minutes, printing a warning every few seconds, before it gives up."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({reason}); give the head node's "
            "HOST:PORT, as printed by ray start --head"
        ) from None


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
        # A node lost mid-shard takes its actor along; Ray Data's defaults (max_restarts and
        # max_task_retries -1: passing them is deprecated) restart the actor where there is
        # room and run the shard again from the start. That never writes a record twice: the
        # shard's output and manifest part are replaced whole, and only the part counts.
        # tests/reliability/test_rel_ray_cluster.py holds Ray to it.
    )
    for row in cleaned.iter_rows():
        if row["error"]:
            raise WriteFailed(str(row["error"]))
        done(int(row["records"]))
