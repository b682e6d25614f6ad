"""Parquet files with an image column (img2dataset's layout)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...errors import UsageError
from ...formats import IMAGE_EXTENSIONS, image_kind, stream_kind
from ..records import Cleaner, Image, Row
from ..writes import write
from .base import FileShards, Layout, Options, Shard

#: Column names taken for the image bytes of a Parquet dataset (img2dataset writes "jpg").
IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "img", "image_bytes", "bytes")


@dataclass(frozen=True)
class Parquet(FileShards):
    """``*.parquet`` files with the image bytes in one column (img2dataset: ``jpg``) and the
    record's fields in the others; a record's id is its ``key`` column, else ``file:row``."""

    kind: ClassVar[str] = "parquet"
    suffix: ClassVar[str] = ".parquet"
    image_column: str | None = None

    @classmethod
    def from_options(cls, root: Path, options: Options) -> Layout:
        return cls(root, options.image_column)

    def shards(self) -> list[Shard]:
        import pyarrow.parquet as pq

        found = []
        for path in self.shard_files():
            rows = pq.ParquetFile(path).metadata.num_rows
            found.append(Shard(path.relative_to(self.root).as_posix(), (), rows))
        return found

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
        # Other byte columns may hold sound or video (a speech dataset's "audio", as bytes or
        # as Hugging Face's {bytes, path}): cleaned too, cell by cell, where the bytes are a
        # container veil knows, rather than copied unread.
        media = _media_columns(table.schema, column)
        images = table.column(column).to_pylist()
        cells = {name: table.column(name).to_pylist() for name in media}
        others = table.drop_columns([column, *media]).to_pylist()
        rows: list[Row] = []
        keep: list[bool] = []
        cleaned: dict[str, list[Any]] = {name: [] for name in (column, *media)}
        for index, (data, fields) in enumerate(zip(images, others, strict=True)):
            rid = str(fields.get("key") or f"{shard.name}:{index}")
            record = [] if data is None else [Image(column, data, _ext(column, data))]
            for name in media:
                found = _cell_bytes(cells[name][index])
                kind = stream_kind(found) if found else None
                if found and kind is not None:
                    record.append(Image(name, found, kind))
            outcome = cleaner.record(rid, shard.name, fields, record)
            rows.append(outcome.row)
            keep.append(outcome.written)
            if outcome.written:
                written = dict(zip((i.name for i in record), outcome.images or [], strict=True))
                cleaned[column].append(written.get(column))
                for name in media:  # a cell that held no known media stays as it was
                    cell = cells[name][index]
                    cleaned[name].append(
                        _with_bytes(cell, written[name]) if name in written else cell
                    )
        kept = table.filter(pa.array(keep, pa.bool_()))
        for name, values in cleaned.items():
            at = kept.column_names.index(name)
            kept = kept.set_column(
                at, kept.schema.field(name), pa.array(values, kept.column(at).type)
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


def _media_columns(schema: Any, image_column: str) -> list[str]:
    """Columns besides the image's that can hold a file: bytes, or a struct with a ``bytes``
    field (Hugging Face's Audio and Video features)."""
    import pyarrow as pa

    def holds_a_file(kind: Any) -> bool:
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return True
        return bool(pa.types.is_struct(kind)) and any(
            f.name == "bytes" and pa.types.is_binary(f.type) for f in kind
        )

    return [f.name for f in schema if f.name != image_column and holds_a_file(f.type)]


def _cell_bytes(cell: Any) -> bytes | None:
    return cell.get("bytes") if isinstance(cell, dict) else cell


def _with_bytes(cell: Any, data: bytes) -> Any:
    return {**cell, "bytes": data} if isinstance(cell, dict) else data


def _ext(column: str, data: bytes) -> str:
    """The kind of image in a cell: by its signature (a "jpg" column may hold a PNG), else
    by the column's name, which then fails the record clearly if the bytes are no image."""
    named = "." + column.lower()
    return image_kind(data) or (named if named in IMAGE_EXTENSIONS else ".jpg")
