"""A folder tree: image and video files anywhere below the root, each with its siblings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...files import files_in
from ...formats import supported_extensions
from ..records import Cleaner, Row
from ..writes import write
from .base import Layout, Options, Shard, fields_json, read_fields

#: Siblings of a record copied unchanged: captions, class labels.
TEXT_SIBLINGS = (".txt", ".cls", ".caption")


@dataclass(frozen=True)
class Folder(Layout):
    """Image and video files anywhere below ``root``; ``photo.json`` beside ``photo.jpg``
    holds its fields, ``photo.txt`` its caption. Shards: ``shard_size`` records each."""

    kind: ClassVar[str] = "folder"
    fingerprinted: ClassVar[frozenset[str]] = frozenset({"shard_size", "image_column"})
    shard_size: int = 1000

    @classmethod
    def looks_like(cls, files: list[Path]) -> bool:
        # Any folder is a tree of files: the fallback, so registered last.
        return True

    @classmethod
    def from_options(cls, root: Path, options: Options) -> Layout:
        return cls(root, options.shard_size)

    def _records(self) -> list[str]:
        wanted = set(supported_extensions())
        return [
            p.relative_to(self.root).as_posix()
            for p in files_in(self.root)
            if p.suffix.lower() in wanted
        ]

    def shards(self) -> list[Shard]:
        records = self._records()
        size = self.shard_size
        return [
            Shard(
                f"folder/{i // size:05d}", tuple(records[i : i + size]), len(records[i : i + size])
            )
            for i in range(0, len(records), size)
        ]

    def _siblings(self, rel: str) -> list[Path]:
        src = self.root / rel
        return [src.with_suffix(ext) for ext in (".json", *TEXT_SIBLINGS)]

    def left_out(self) -> list[str]:
        taken = set(self._records())
        siblings = {
            s.relative_to(self.root).as_posix() for rel in taken for s in self._siblings(rel)
        }
        return [
            rel
            for p in files_in(self.root)
            if (rel := p.relative_to(self.root).as_posix()) not in taken | siblings
        ]

    def clean(self, shard: Shard, out: Path, cleaner: Cleaner) -> list[Row]:
        rows = []
        for rel in shard.files:
            src, dst = self.root / rel, out / rel
            sidecar = src.with_suffix(".json")
            try:
                fields = read_fields(sidecar.read_bytes() if sidecar.is_file() else None)
            except (OSError, ValueError) as exc:
                rows.append(Row(rel, shard.name, "failed", error=f"{sidecar.name}: {exc}"))
                continue
            # Photo or video alike: the engine cleans the file on disk into place.
            row, pruned = cleaner.file(rel, shard.name, fields, src, dst)
            if pruned is not None:
                self._write_siblings(src, dst, sidecar, pruned)
            rows.append(row)
        return rows

    def _write_siblings(self, src: Path, dst: Path, sidecar: Path, fields: dict[str, Any]) -> None:
        if sidecar.is_file():
            write(dst.with_suffix(".json"), fields_json(fields))
        for ext in TEXT_SIBLINGS:
            sibling = src.with_suffix(ext)
            if sibling.is_file():
                write(dst.with_suffix(ext), sibling.read_bytes())
