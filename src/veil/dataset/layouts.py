"""The dataset layouts veil reads and writes, each cut into shards (the unit of work and of
resuming): a folder tree, WebDataset tar shards, Parquet files with an image column.

Every layout writes a shard's output atomically (a tar or Parquet file renamed into place;
a folder shard file by file) and keeps what is not an image: JSON fields pruned by the
policy, captions and labels as they are. Files that are neither records nor their siblings
(an XMP sidecar, a stats file) are not copied: they may carry what the cleaning removes.
"""

from __future__ import annotations

import io
import json
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..atomic import is_temporary
from ..errors import UsageError
from ..files import files_in
from ..formats import VIDEO_HANDLERS
from ..settings import Settings
from . import manifest
from .policy import Policy
from .records import IMAGE_EXTENSIONS, Cleaner, Image, Row, sniff_extension
from .writes import output, write

VIDEO_EXTENSIONS = frozenset(ext for handler in VIDEO_HANDLERS for ext in handler.extensions)
#: Siblings of a record copied unchanged: captions, class labels.
TEXT_SIBLINGS = (".txt", ".cls", ".caption")
#: Column names taken for the image bytes of a Parquet dataset (img2dataset writes "jpg").
IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "img", "image_bytes", "bytes")


@dataclass(frozen=True)
class Shard:
    """A unit of work: ``name`` is stable across runs (resuming goes by it)."""

    name: str
    files: tuple[str, ...]
    records: int


@dataclass(frozen=True)
class Layout(ABC):
    """How one kind of dataset is cut into shards and how a shard is cleaned."""

    kind: ClassVar[str]
    root: Path

    @abstractmethod
    def shards(self) -> list[Shard]: ...

    @abstractmethod
    def clean(self, shard: Shard, out: Path, cleaner: Cleaner) -> list[Row]:
        """Write the shard's cleaned output below ``out``; one row per record."""

    @abstractmethod
    def left_out(self) -> list[str]:
        """Files of the input that are not written to the output (relative paths)."""


@dataclass(frozen=True)
class Work:
    """What an engine is given: the shards still to clean and how to clean them. Sent whole
    to each worker process or Ray actor (every part pickles)."""

    layout: Layout
    todo: tuple[Shard, ...]
    out: Path
    settings: Settings
    policy: Policy
    workers: int

    def shard(self, name: str) -> Shard:
        return next(s for s in self.todo if s.name == name)

    def clean(self, shard: Shard, cleaner: Cleaner) -> int:
        """Clean one shard and record it as done (its manifest part); the records it held."""
        rows = self.layout.clean(shard, self.out, cleaner)
        manifest.write_part(self.out, shard.name, rows)
        return len(rows)


def _files(root: Path) -> list[Path]:
    """Every file below ``root`` but veil's own unfinished temporary files."""
    return [p for p in files_in(root) if not is_temporary(p.name)]


def _json(fields: dict[str, Any]) -> bytes:
    """A record's fields written back as JSON (key order kept), without the pruned ones."""
    return json.dumps(fields, ensure_ascii=False).encode()


def _fields(data: bytes | None) -> dict[str, Any]:
    """A record's JSON fields; `ValueError` when they cannot be read (the record fails: the
    policy cannot decide on what it cannot read)."""
    if data is None:
        return {}
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the JSON is not an object")
    return value


# -- a folder tree -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Folder(Layout):
    """Image and video files anywhere below ``root``; ``photo.json`` beside ``photo.jpg``
    holds its fields, ``photo.txt`` its caption. Shards: ``shard_size`` records each."""

    kind: ClassVar[str] = "folder"
    shard_size: int = 1000

    def _records(self) -> list[str]:
        wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
        return [
            p.relative_to(self.root).as_posix()
            for p in _files(self.root)
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
            for p in _files(self.root)
            if (rel := p.relative_to(self.root).as_posix()) not in taken | siblings
        ]

    def clean(self, shard: Shard, out: Path, cleaner: Cleaner) -> list[Row]:
        rows = []
        for rel in shard.files:
            src, dst = self.root / rel, out / rel
            sidecar = src.with_suffix(".json")
            try:
                fields = _fields(sidecar.read_bytes() if sidecar.is_file() else None)
            except (OSError, ValueError) as exc:
                rows.append(Row(rel, shard.name, "failed", error=f"{sidecar.name}: {exc}"))
                continue
            if src.suffix.lower() in VIDEO_EXTENSIONS:
                row, pruned = cleaner.file(rel, shard.name, fields, src, dst)
            else:
                try:
                    data = src.read_bytes()
                except OSError as exc:
                    rows.append(Row(rel, shard.name, "failed", error=f"cannot read: {exc}"))
                    continue
                outcome = cleaner.record(
                    rel, shard.name, fields, [Image(rel, data, src.suffix.lower())]
                )
                row, pruned = outcome.row, outcome.fields
                if outcome.images is not None:
                    write(dst, outcome.images[0])
            if pruned is not None:
                self._write_siblings(src, dst, sidecar, pruned)
            rows.append(row)
        return rows

    def _write_siblings(self, src: Path, dst: Path, sidecar: Path, fields: dict[str, Any]) -> None:
        if sidecar.is_file():
            write(dst.with_suffix(".json"), _json(fields))
        for ext in TEXT_SIBLINGS:
            sibling = src.with_suffix(ext)
            if sibling.is_file():
                write(dst.with_suffix(ext), sibling.read_bytes())


# -- WebDataset tar shards ---------------------------------------------------------------------
def _split(name: str) -> tuple[str, str]:
    """WebDataset's key and extension: the key ends at the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (ext if dot else "")


class _Damaged(Exception):
    """A tar shard stopped being readable; ``key`` is the sample being read, if any."""

    def __init__(self, key: str | None, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.key = key


def _samples(path: Path) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """(key, [(member name, bytes)]) for each run of members with the same key; `_Damaged`
    where the tar stops being readable."""
    key: str | None = None
    members: list[tuple[str, bytes]] = []
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                this, _ = _split(info.name)
                if key is not None and this != key:
                    yield key, members
                    members = []
                key = this
                handle = tar.extractfile(info)
                members.append((info.name, handle.read() if handle else b""))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _Damaged(key, exc) from exc
    if key is not None:
        yield key, members


def _keys(path: Path) -> int:
    """Samples in a tar shard, from its headers only; a damaged shard counts the samples whose
    header could be read, plus one for the unreadable rest (as `WebDataset.clean` reports)."""
    count, last = 0, None
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if info.isfile() and (key := _split(info.name)[0]) != last:
                    last, count = key, count + 1
    except (tarfile.TarError, OSError, EOFError):
        return count + 1
    return count


@dataclass(frozen=True)
class WebDataset(Layout):
    """``*.tar`` shards of samples: members sharing a key (``000123.jpg``, ``000123.json``,
    ``000123.txt``) are one record; the JSON holds its fields."""

    kind: ClassVar[str] = "webdataset"

    def shards(self) -> list[Shard]:
        found = []
        for path in _files(self.root):
            if path.suffix == ".tar":
                found.append(Shard(path.relative_to(self.root).as_posix(), (), _keys(path)))
        return found

    def left_out(self) -> list[str]:
        return [
            p.relative_to(self.root).as_posix() for p in _files(self.root) if p.suffix != ".tar"
        ]

    def clean(self, shard: Shard, out: Path, cleaner: Cleaner) -> list[Row]:
        rows: list[Row] = []
        dst = out / shard.name
        with output(dst) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            try:
                for key, members in _samples(self.root / shard.name):
                    rows.append(self._sample(key, members, shard.name, cleaner, tar))
            except _Damaged as exc:
                # What was read is cleaned and kept; the sample being read and the rest fail.
                error = f"damaged tar: {exc}"
                if exc.key is not None:
                    rows.append(Row(exc.key, shard.name, "failed", error=error))
                rows.append(Row(f"{shard.name}#unreadable", shard.name, "failed", error=error))
        return rows

    def _sample(
        self,
        key: str,
        members: list[tuple[str, bytes]],
        shard: str,
        cleaner: Cleaner,
        tar: tarfile.TarFile,
    ) -> Row:
        by_ext = {_split(name)[1].lower(): (name, data) for name, data in members}
        try:
            fields = _fields(by_ext["json"][1] if "json" in by_ext else None)
        except ValueError as exc:
            return Row(key, shard, "failed", error=f"{key}.json: {exc}")
        images = [
            Image(name, data, ext)
            for name, data in members
            if (ext := Path(name).suffix.lower()) in IMAGE_EXTENSIONS
        ]
        outcome = cleaner.record(key, shard, fields, images)
        if outcome.images is None or outcome.fields is None:
            return outcome.row
        cleaned = dict(zip((i.name for i in images), outcome.images, strict=True))
        for name, data in members:
            if name in cleaned:
                data = cleaned[name]
            elif _split(name)[1].lower() == "json":
                data = _json(outcome.fields)
            _add_member(tar, name, data)
        return outcome.row


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    # A tar header carries the owner's user and group names, ids and a time: all zeroed.
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


# -- Parquet with an image column ----------------------------------------------------------
@dataclass(frozen=True)
class Parquet(Layout):
    """``*.parquet`` files with the image bytes in one column (img2dataset: ``jpg``) and the
    record's fields in the others; a record's id is its ``key`` column, else ``file:row``."""

    kind: ClassVar[str] = "parquet"
    image_column: str | None = None

    def shards(self) -> list[Shard]:
        import pyarrow.parquet as pq

        found = []
        for path in _files(self.root):
            if path.suffix == ".parquet":
                rows = pq.ParquetFile(path).metadata.num_rows
                found.append(Shard(path.relative_to(self.root).as_posix(), (), rows))
        return found

    def left_out(self) -> list[str]:
        return [
            p.relative_to(self.root).as_posix() for p in _files(self.root) if p.suffix != ".parquet"
        ]

    def _column(self, names: list[str]) -> str:
        if self.image_column is not None:
            if self.image_column not in names:
                raise UsageError(f"no column {self.image_column!r}; the columns: {names}")
            return self.image_column
        found = next((c for c in IMAGE_COLUMNS if c in names), None)
        if found is None:
            raise UsageError(
                f"no image column among {names}; name it with --image-column "
                f"(looked for {', '.join(IMAGE_COLUMNS)})"
            )
        return found

    def clean(self, shard: Shard, out: Path, cleaner: Cleaner) -> list[Row]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(self.root / shard.name)
        column = self._column(table.column_names)
        images = table.column(column).to_pylist()
        others = table.drop_columns([column]).to_pylist()
        rows: list[Row] = []
        keep: list[bool] = []
        cleaned: list[bytes | None] = []
        for index, (data, fields) in enumerate(zip(images, others, strict=True)):
            rid = str(fields.get("key") or f"{shard.name}:{index}")
            record = [] if data is None else [Image(column, data, _ext(column, data))]
            outcome = cleaner.record(rid, shard.name, fields, record)
            rows.append(outcome.row)
            keep.append(outcome.written)
            if outcome.written:
                cleaned.append(outcome.images[0] if outcome.images else None)
        kept = table.filter(pa.array(keep, pa.bool_()))
        at = kept.column_names.index(column)
        kept = kept.set_column(
            at, kept.schema.field(column), pa.array(cleaned, kept.column(at).type)
        )
        removed = cleaner.policy.fields_to_drop(kept.column_names)
        removed = [name for name in removed if name != column]
        if removed:
            kept = kept.drop_columns(removed)
            # pandas' schema note lists the columns; stale now, it would mislead a reader.
            metadata = {k: v for k, v in (kept.schema.metadata or {}).items() if k != b"pandas"}
            kept = kept.replace_schema_metadata(metadata)
        buffer = io.BytesIO()
        pq.write_table(kept, buffer)
        write(out / shard.name, buffer.getvalue())
        return rows


def _ext(column: str, data: bytes) -> str:
    """The kind of image in a cell: by its signature (a "jpg" column may hold a PNG), else
    by the column's name, which then fails the record clearly if the bytes are no image."""
    named = "." + column.lower()
    return sniff_extension(data) or (named if named in IMAGE_EXTENSIONS else ".jpg")


LAYOUTS: dict[str, type[Layout]] = {cls.kind: cls for cls in (Folder, WebDataset, Parquet)}


def detect(root: Path, requested: str = "auto") -> str:
    """The layout of ``root``: the one asked for, else Parquet or WebDataset when the folder
    holds such files, else a folder tree."""
    if requested != "auto":
        if requested not in LAYOUTS:
            raise UsageError(f"unknown layout {requested!r}; choose auto, {', '.join(LAYOUTS)}")
        return requested
    suffixes = {p.suffix for p in _files(root)}
    if ".parquet" in suffixes:
        return "parquet"
    if ".tar" in suffixes:
        return "webdataset"
    return "folder"


__all__ = ["LAYOUTS", "Folder", "Layout", "Parquet", "Shard", "WebDataset", "Work", "detect"]
