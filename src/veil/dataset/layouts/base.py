"""What every layout is: the `Layout` base, its `Shard`s, the `Options` it is given, the
`Work` an engine runs, and the helpers the layouts share."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...files import files_in
from ...settings import Settings
from ..policy import Policy
from ..records import Cleaner, Row


@dataclass(frozen=True)
class Shard:
    """A unit of work: ``name`` is stable across runs (resuming goes by it)."""

    name: str
    files: tuple[str, ...]
    records: int


@dataclass(frozen=True)
class Options:
    """What every layout is given (the CLI's ``--shard-size``, ``--image-column``); each
    layout takes the ones it needs. The field names are run.json's keys."""

    shard_size: int = 1000
    image_column: str | None = None


@dataclass(frozen=True)
class Layout(ABC):
    """How one kind of dataset is recognised, cut into shards, and how a shard is cleaned.
    A new layout is a subclass in its own module plus one line in `LAYOUTS`."""

    #: The layout's name on the command line, in run.json and in the summary.
    kind: ClassVar[str]
    #: The options that make another run when changed: run.json records them, and the other
    #: options as None. ``image_column`` is in every layout's because run.json has always
    #: recorded it; leaving it out would refuse to resume the runs written so far.
    fingerprinted: ClassVar[frozenset[str]] = frozenset({"image_column"})
    root: Path

    @classmethod
    @abstractmethod
    def looks_like(cls, files: list[Path]) -> bool:
        """Whether a folder holding ``files`` (every file below it) is of this layout;
        detection asks the layouts in `LAYOUTS` order and takes the first that says yes."""

    @classmethod
    def from_options(cls, root: Path, options: Options) -> Layout:
        """The layout of the dataset in ``root``, taking what it needs of ``options``."""
        return cls(root)

    @classmethod
    def fingerprint(cls, options: Options) -> dict[str, Any]:
        """The options as run.json records them: a resumed run must have the same."""
        return {
            name: value if name in cls.fingerprinted else None
            for name, value in asdict(options).items()
        }

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
        from .. import manifest  # pyarrow, imported by a run only (see `veil.dataset.run`)

        rows = self.layout.clean(shard, self.out, cleaner)
        manifest.write_part(self.out, shard.name, rows)
        return len(rows)


@dataclass(frozen=True)
class FileShards(Layout):
    """A layout whose shards are the files of one ``suffix`` below the root (a tar, a Parquet
    file); every other file is left out."""

    suffix: ClassVar[str]

    @classmethod
    def looks_like(cls, files: list[Path]) -> bool:
        return any(p.suffix == cls.suffix for p in files)

    def shard_files(self) -> list[Path]:
        return [p for p in files_in(self.root) if p.suffix == self.suffix]

    def left_out(self) -> list[str]:
        return [
            p.relative_to(self.root).as_posix()
            for p in files_in(self.root)
            if p.suffix != self.suffix
        ]


def fields_json(fields: dict[str, Any]) -> bytes:
    """A record's fields written back as JSON (key order kept), without the pruned ones."""
    return json.dumps(fields, ensure_ascii=False).encode()


def read_fields(data: bytes | None) -> dict[str, Any]:
    """A record's JSON fields; `ValueError` when they cannot be read (the record fails: the
    policy cannot decide on what it cannot read)."""
    if data is None:
        return {}
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the JSON is not an object")
    return value
