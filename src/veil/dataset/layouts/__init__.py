"""The dataset layouts veil reads and writes, each cut into shards (the unit of work and of
resuming): a folder tree, WebDataset tar shards, Parquet files with an image column.

Every layout writes a shard's output atomically (a tar or Parquet file renamed into place;
a folder shard file by file) and keeps what is not an image: JSON fields pruned by the
policy, captions and labels as they are. Files that are neither records nor their siblings
(an XMP sidecar, a stats file) are not copied: they may carry what the cleaning removes.

A new layout is one module (a `Layout` subclass that recognises its folders, takes its
options and cleans a shard) plus one line in `LAYOUTS`; tests/dataset/test_layout_contract.py then
runs it like every other.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UsageError
from ...files import files_in
from .base import Layout, Options, Shard, Work
from .folder import TEXT_SIBLINGS, Folder
from .parquet import IMAGE_COLUMNS, Parquet
from .webdataset import WebDataset

#: Every layout by name, in the order detection asks them: the first whose `looks_like`
#: says yes is taken, so the catch-all folder tree comes last.
LAYOUTS: dict[str, type[Layout]] = {
    Parquet.kind: Parquet,
    WebDataset.kind: WebDataset,
    Folder.kind: Folder,
}


def detect(root: Path, requested: str = "auto") -> str:
    """The layout of ``root``: the one asked for, else the first in `LAYOUTS` it looks like
    (Parquet or WebDataset when the folder holds such files, else a folder tree)."""
    if requested != "auto":
        if requested not in LAYOUTS:
            raise UsageError(f"unknown layout {requested!r}; choose auto, {', '.join(LAYOUTS)}")
        return requested
    files = files_in(root)
    found = next((kind for kind, layout in LAYOUTS.items() if layout.looks_like(files)), None)
    if found is None:
        raise UsageError(f"no layout fits {root}; choose one of {', '.join(LAYOUTS)}")
    return found


__all__ = [
    "IMAGE_COLUMNS",
    "LAYOUTS",
    "TEXT_SIBLINGS",
    "Folder",
    "Layout",
    "Options",
    "Parquet",
    "Shard",
    "WebDataset",
    "Work",
    "detect",
]
