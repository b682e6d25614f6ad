"""Dataset mode: anonymise training data record by record, under a consent policy, on this
machine or on Ray, and account for every record in a Parquet manifest.

>>> from veil.dataset import run                                      # doctest: +SKIP
>>> summary = run("shards/", "shards-clean/", policy="gdpr.toml")     # doctest: +SKIP
>>> summary.totals["dropped"], summary.manifest                        # doctest: +SKIP
(412, PosixPath('shards-clean/manifest.parquet'))

Needs the ``dataset`` extra (pyarrow), and ``ray`` for the Ray engine: ``pip install
'.[dataset,ray]'`` in veil's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..atomic import sweep
from ..errors import UsageError, WriteFailed
from ..extras import needs
from ..progress import bar as progress_bar
from ..progress import shown
from ..settings import Settings
from .layouts import LAYOUTS, Options, Shard, Work, detect
from .policy import Policy

Engine = Literal["local", "ray"]
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Summary:
    """What a run did: the manifest, the totals, what was not copied."""

    manifest: Path
    layout: str
    #: Records by status (cleaned, kept, dropped, failed), ``records``, ``faces`` and
    #: ``dropped_by_rule``.
    totals: dict[str, Any]
    #: Records the input held when the run was planned: the manifest must have as many rows.
    expected: int
    #: Input files that are neither records nor their siblings, so not written.
    left_out: list[str]
    #: Shards done by this call (the others were done by an earlier, interrupted run).
    shards_run: int
    shards_total: int

    @property
    def complete(self) -> bool:
        return bool(self.totals["records"] == self.expected)


def run(
    input: str | Path,
    output: str | Path,
    policy: str | Path | Policy | None = None,
    *,
    engine: Engine = "local",
    workers: int | None = None,
    settings: Settings | None = None,
    layout: str = "auto",
    image_column: str | None = None,
    shard_size: int = 1000,
    ray_address: str | None = None,
    progress: bool | None = None,
) -> Summary:
    """Clean the dataset in ``input`` into ``output`` (same layout), resuming an earlier run
    into the same ``output``. Raises `UsageError` for what cannot start, and `WriteFailed`
    when the output cannot be written (disk full, read-only): the run stops, and the same call
    resumes it once the disk is fixed."""
    try:
        # pyarrow (the dataset extra) is imported by the run, not by this package: the CLI
        # reads the layouts' names for its --layout choices, and must start without it.
        from . import manifest
    except ImportError as exc:
        raise UsageError(f"veil dataset needs {needs('dataset')} ({exc})") from None
    source, out = Path(input), Path(output)
    if not source.is_dir():
        raise UsageError(f"input must be a folder of the dataset: {source}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output must be a folder, and {out} is not a folder")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise UsageError(f"output folder {out} must not be inside the input folder {source}")
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if shard_size < 1:
        raise UsageError("shard size must be at least 1")
    chosen = _policy(policy)
    settings = settings or Settings()
    kind = detect(source, layout)
    options = Options(shard_size=shard_size, image_column=image_column)
    shape = LAYOUTS[kind].from_options(source, options)
    shards = shape.shards()
    try:
        manifest.claim(
            out,
            {
                "input": str(source.resolve()),
                "layout": kind,
                "policy": repr(chosen),
                "settings": repr((settings.cleaning, settings.checking)),
                **shape.fingerprint(options),
                "shards": _fingerprint(source, shards),
            },
        )
        sweep(out)  # what a killed run left half-written
        todo = tuple(s for s in shards if not manifest.is_done(out, s.name))
        work = Work(shape, todo, out, settings, chosen, workers or _default_workers(len(todo)))
        _execute(work, sum(s.records for s in shards), engine, ray_address, progress)
        # Every shard is done: a temporary file now is a lost worker's (a Ray node that died
        # mid-shard, its shard redone elsewhere).
        sweep(out)
        table = manifest.assemble(out, [s.name for s in shards])
    except WriteFailed as exc:
        raise WriteFailed(
            f"{exc}; the shards finished are kept: make room (or make the folder writable) and "
            "run the same command again to resume"
        ) from exc
    return Summary(
        manifest=out / manifest.MANIFEST,
        layout=kind,
        totals=manifest.totals(table),
        expected=sum(s.records for s in shards),
        left_out=shape.left_out(),
        shards_run=len(todo),
        shards_total=len(shards),
    )


def _fingerprint(root: Path, shards: list[Shard]) -> str:
    """A digest of the shard plan and the sizes of the files in it: resuming after the input
    changed would skip shards that now hold other records, so it is refused instead."""
    digest = hashlib.sha256()
    for shard in shards:
        names = shard.files or (shard.name,)
        sizes = [(root / name).stat().st_size for name in names]
        digest.update(json.dumps([shard.name, names, shard.records, sizes]).encode())
    return digest.hexdigest()


def _policy(policy: str | Path | Policy | None) -> Policy:
    if isinstance(policy, Policy):
        return policy
    return Policy() if policy is None else Policy.load(Path(policy))


def _default_workers(shards: int) -> int:
    return max(1, min(os.cpu_count() or 1, shards))


def _execute(
    work: Work, total: int, engine: Engine, address: str | None, progress: bool | None
) -> None:
    bar = progress_bar(
        "record", shown(progress), total, initial=total - sum(s.records for s in work.todo)
    )
    try:
        if engine == "ray":
            from .ray_engine import run_ray

            run_ray(work, bar.update, address)
        else:
            from .local import run_local

            run_local(work, bar.update)
    finally:
        bar.close()


__all__ = ["ENGINES", "Policy", "Summary", "run"]
