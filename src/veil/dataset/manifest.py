"""The manifest: one Parquet row per input record, written shard by shard.

Each finished shard leaves a part file, ``OUTPUT/.veil-dataset/parts/<shard>.parquet``,
written atomically after the shard's output is in place: a part that exists is a shard that
is done, which is what resuming skips. The manifest, ``OUTPUT/manifest.parquet``, is put
together from the parts at the end, in shard order, so a rerun makes the same file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UsageError
from ..result import RECORD_STATUSES
from .records import Row
from .writes import write

STATE = ".veil-dataset"
MANIFEST = "manifest.parquet"
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("shard", pa.string()),
        ("status", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("error", pa.string()),
        ("faces", pa.int32()),
        ("boxes", pa.list_(pa.list_(pa.float32()))),
        ("metadata_removed", pa.list_(pa.string())),
        ("fields_removed", pa.list_(pa.string())),
        ("bytes_in", pa.int64()),
        ("bytes_out", pa.int64()),
        ("speech", pa.float32()),
        ("voice", pa.string()),
        ("plates", pa.int32()),
        ("text", pa.int32()),
    ]
)
STATUSES = RECORD_STATUSES


def part_path(out: Path, shard: str) -> Path:
    # Shard names are relative paths; a readable, unique file name per shard.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", shard)
    digest = hashlib.sha256(shard.encode()).hexdigest()[:8]
    return out / STATE / "parts" / f"{safe}.{digest}.parquet"


def is_done(out: Path, shard: str) -> bool:
    return part_path(out, shard).is_file()


def write_part(out: Path, shard: str, rows: list[Row]) -> None:
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write(part_path(out, shard), buffer.getvalue())


def assemble(out: Path, shards: list[str]) -> pa.Table:
    """The manifest of every shard (all must be done), written to ``OUTPUT/manifest.parquet``."""
    parts = [pq.read_table(part_path(out, shard), schema=SCHEMA) for shard in shards]
    table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write(out / MANIFEST, buffer.getvalue())
    return table


def totals(table: pa.Table) -> dict[str, Any]:
    """Records by status and dropped records by rule."""
    statuses = Counter(table.column("status").to_pylist())
    rules = Counter(
        rule
        for rule, status in zip(
            table.column("rule").to_pylist(), table.column("status").to_pylist(), strict=True
        )
        if status == "dropped"
    )
    counts: dict[str, Any] = {status: statuses.get(status, 0) for status in STATUSES}
    counts["records"] = table.num_rows
    counts["faces"] = sum(table.column("faces").to_pylist())
    counts["dropped_by_rule"] = dict(sorted(rules.items(), key=lambda kv: str(kv[0])))
    return counts


def claim(out: Path, run: dict[str, Any]) -> None:
    """Record what this output folder is a run of; a resumed run must be the same run (the
    same input, layout, policy and settings), or its shards would mix two runs."""
    path = out / STATE / "run.json"
    if path.is_file():
        earlier = json.loads(path.read_text())
        if earlier != run:
            changed = sorted(k for k in {*earlier, *run} if earlier.get(k) != run.get(k))
            what = ", ".join("input files" if k == "shards" else k for k in changed)
            raise UsageError(
                f"{out} holds a run with another {what}; resume it with the same input and "
                "options, or choose a new output folder"
            )
        return
    write(path, json.dumps(run, indent=1, sort_keys=True).encode())
