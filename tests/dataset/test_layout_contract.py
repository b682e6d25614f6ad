"""What every registered dataset layout must do (`veil.dataset.layouts.LAYOUTS`): a new layout
is one module and one registration line plus a writer here, and these tests run it like every
other: detected from its files, every record cleaned under the policy and in the manifest, and
a rerun that redoes nothing and writes the same manifest.

Each writer makes the same six records (`test_dataset.PEOPLE`: faces or none, EXIF, JSON
fields) in its layout, so every layout must reach the same statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="dataset mode needs pip install 'veil[dataset]'")

from helpers import file_hashes
from test_dataset import POLICY, expected, make_folder, make_parquet, make_webdataset
from veil.dataset import Summary, run
from veil.dataset.layouts import LAYOUTS, detect
from veil.dataset.manifest import MANIFEST, STATUSES
from veil.dataset.records import Row

RECORDS = 6
#: A tiny dataset of each layout, written below a folder that does not exist yet.
WRITERS: dict[str, Callable[[Path], None]] = {
    "folder": lambda root: make_folder(root, RECORDS),
    "webdataset": lambda root: make_webdataset(root, shards=2, per=RECORDS // 2),
    "parquet": lambda root: make_parquet(root, RECORDS),
}


@dataclass(frozen=True)
class Ran:
    """A layout's dataset run twice into the same output."""

    kind: str
    source: Path
    out: Path
    first: Summary
    first_manifest: bytes
    first_files: dict[str, str]
    again: Summary


def _manifest_rows(out: Path) -> list[dict[str, object]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, object]] = pq.read_table(out / MANIFEST).to_pylist()
    return rows


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    kind: str = request.param
    if kind not in WRITERS:
        pytest.fail(f"layout {kind!r} is registered but has no writer in WRITERS")
    base = tmp_path_factory.mktemp(kind)
    source, out = base / "in", base / "out"
    WRITERS[kind](source)
    # Every layout is given every option; the folder tree cuts two records a shard.
    first = run(source, out, POLICY, workers=1, shard_size=2, progress=False)
    manifest, files = (out / MANIFEST).read_bytes(), file_hashes(out)
    again = run(source, out, POLICY, workers=1, shard_size=2, progress=False)
    return Ran(kind, source, out, first, manifest, files, again)


def test_every_layout_has_a_writer() -> None:
    assert set(WRITERS) == set(LAYOUTS), "a writer per registered layout, and no other"


def test_detection_finds_the_layout(ran: Ran) -> None:
    assert detect(ran.source) == ran.kind
    assert detect(ran.source, ran.kind) == ran.kind
    assert ran.first.layout == ran.kind


def test_a_run_accounts_for_every_record(ran: Ran) -> None:
    rows = _manifest_rows(ran.out)
    assert ran.first.complete and ran.first.expected == len(rows) == RECORDS
    assert ran.first.shards_total >= 1 and ran.first.shards_run == ran.first.shards_total
    assert [r["status"] for r in rows] == [expected(i) for i in range(RECORDS)], rows
    assert {r["status"] for r in rows} <= set(STATUSES)
    assert len({r["id"] for r in rows}) == RECORDS, "record ids are unique"
    assert list(rows[0]) == list(Row.__dataclass_fields__)
    totals = ran.first.totals
    assert totals["records"] == RECORDS and totals["failed"] == 0
    assert sum(totals[s] for s in STATUSES) == RECORDS


def test_a_rerun_redoes_nothing_and_writes_the_same_manifest(ran: Ran) -> None:
    assert ran.again.complete and ran.again.shards_run == 0
    assert ran.again.shards_total == ran.first.shards_total
    assert ran.again.totals == ran.first.totals
    assert (ran.out / MANIFEST).read_bytes() == ran.first_manifest
    assert file_hashes(ran.out) == ran.first_files, "the rerun rewrote an output"
