"""WebDataset tar shards: members sharing a key are one record."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...formats import AUDIO_EXTENSIONS, DOCUMENT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..records import Cleaner, Image, Row
from ..writes import output
from .base import FileShards, Shard, fields_json, read_fields

#: Members cleaned: images, videos and recordings (their faces, voices and tags), and SVG
#: drawings (a member left out of this would be copied as it is, metadata and all).
_MEDIA = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | DOCUMENT_EXTENSIONS


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
class WebDataset(FileShards):
    """``*.tar`` shards of samples: members sharing a key (``000123.jpg``, ``000123.json``,
    ``000123.txt``) are one record; the JSON holds its fields."""

    kind: ClassVar[str] = "webdataset"
    suffix: ClassVar[str] = ".tar"

    def shards(self) -> list[Shard]:
        return [
            Shard(path.relative_to(self.root).as_posix(), (), _keys(path))
            for path in self.shard_files()
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
            fields = read_fields(by_ext["json"][1] if "json" in by_ext else None)
        except ValueError as exc:
            return Row(key, shard, "failed", error=f"{key}.json: {exc}")
        images = [
            Image(name, data, ext)
            for name, data in members
            if (ext := Path(name).suffix.lower()) in _MEDIA
        ]
        outcome = cleaner.record(key, shard, fields, images)
        if outcome.images is None or outcome.fields is None:
            return outcome.row
        cleaned = dict(zip((i.name for i in images), outcome.images, strict=True))
        for name, data in members:
            if name in cleaned:
                data = cleaned[name]
            elif _split(name)[1].lower() == "json":
                data = fields_json(outcome.fields)
            _add_member(tar, name, data)
        return outcome.row


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    # A tar header carries the owner's user and group names, ids and a time: all zeroed.
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))
