"""One record at a time: the policy decides, then the image is cleaned (or left out) and its
other fields pruned. Whatever happens becomes one manifest `Row`; nothing raises past here
but interruptions and `WriteFailed` (a full or read-only disk stops the run, to be resumed),
so a bad record fails alone and never its shard.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._lifetime import stop_if_told
from ..atomic import discard, temporary_folder
from ..errors import WriteFailed, reported
from ..formats import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from ..pipeline import Encoded, Pipeline
from ..result import RecordStatus, Result
from ..settings import Settings
from .policy import Decision, Policy
from .writes import writing


@dataclass(frozen=True)
class Row:
    """One line of the manifest: what happened to one input record."""

    id: str
    shard: str
    #: ``cleaned`` (faces obscured, metadata stripped), ``kept`` (the policy kept the faces;
    #: metadata stripped), ``dropped`` (by the policy rule ``rule``) or ``failed`` (``error``);
    #: a dropped or failed record is not in the output.
    status: RecordStatus
    rule: str | None = None
    reason: str | None = None
    error: str | None = None
    faces: int = 0
    #: x1, y1, x2, y2 of each face found, in displayed pixels: the only face data kept.
    boxes: list[list[float]] = field(default_factory=list)
    metadata_removed: list[str] = field(default_factory=list)
    fields_removed: list[str] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    #: Records with sound (a folder's videos and recordings): the share of it that is speech,
    #: and what was done to it (`veil.result.VoiceRecord`); None without sound.
    speech: float | None = None
    voice: str | None = None
    #: Licence plates and other text obscured (``--plates on``, ``--text on``); what they
    #: said is never kept.
    plates: int = 0
    text: int = 0


@dataclass(frozen=True)
class Image:
    """An image of a record: its name in the record (member, column or file) and bytes."""

    name: str
    data: bytes
    ext: str


@dataclass(frozen=True)
class Outcome:
    """A record after cleaning: its row, and (unless dropped or failed) what to write."""

    row: Row
    images: list[bytes] | None
    fields: dict[str, Any] | None

    @property
    def written(self) -> bool:
        return self.images is not None


#: Members cleaned as streams through files rather than in memory: videos and recordings.
_STREAMED = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS


class Cleaner:
    """Holds the loaded models (one per worker process or Ray actor) and the policy.

    ``scratch`` is the folder a video or recording held in memory is cleaned through, on disk:
    the run's output folder, which every run sweeps (`veil.atomic.sweep`) as it starts, so a
    worker killed mid-record leaves no original there for good.
    """

    def __init__(
        self, settings: Settings, policy: Policy, threads: int | None = 1, *, scratch: Path
    ) -> None:
        self.policy = policy
        self.scratch = scratch
        self.obscuring = Pipeline(settings, threads=threads)
        # "keep": the person consented to their face being shown; metadata still goes.
        self.keeping = Pipeline(settings.with_(faces=False, verify=False, allow_leaks=False))

    def record(
        self, rid: str, shard: str, fields: Mapping[str, Any], images: list[Image]
    ) -> Outcome:
        """Decide on one record and clean its images; never raises `VeilError`."""
        row, pipe, pruned = self._decide(rid, shard, fields, sum(len(i.data) for i in images))
        if pipe is None:
            return Outcome(row, None, None)
        written: list[bytes] = []
        for image in images:
            try:
                if image.ext in _STREAMED:
                    data, result = _clean_on_disk(pipe, image, self.scratch)
                    row = _add_file(row, result, len(data))
                    written.append(data)
                    continue
                encoded = pipe.clean_bytes(image.data, image.ext, image.name)
            except WriteFailed:
                raise  # the disk's fault, not the record's: the run stops and resumes this shard
            except Exception as exc:  # fail closed and alone: one record never ends its shard
                stop_if_told()
                return Outcome(_failed(row, image, reported(exc)), None, None)
            row = _add(row, encoded)
            written.append(encoded.data)
        return Outcome(row, written, pruned)

    def file(
        self, rid: str, shard: str, fields: Mapping[str, Any], src: Path, dst: Path
    ) -> tuple[Row, dict[str, Any] | None]:
        """A record that is a file, cleaned on disk into ``dst`` (a photo or a video of a
        folder dataset): its row and its pruned fields (None when nothing was written)."""
        row, pipe, pruned = self._decide(rid, shard, fields, _size(src))
        if pipe is None:
            return row, None
        try:
            result = pipe.clean_file(src, dst)
        except WriteFailed:
            raise  # the disk's fault, not the record's: the run stops and resumes this shard
        except Exception as exc:  # fail closed and alone: one record never ends its shard
            stop_if_told()
            return replace(row, status="failed", error=reported(exc)), None
        return _add_file(row, result, _size(dst)), pruned

    def _decide(
        self, rid: str, shard: str, fields: Mapping[str, Any], size: int
    ) -> tuple[Row, Pipeline | None, dict[str, Any]]:
        """The policy's decision as a row so far, the pipeline that carries it out (None:
        dropped) and the fields to write."""
        decision = self.policy.decide(fields)
        row = Row(rid, shard, "dropped", decision.rule, decision.reason, bytes_in=size)
        if decision.action == "drop":
            return row, None, {}
        removed = self.policy.fields_to_drop(fields)
        row = replace(row, status=_status(decision), fields_removed=sorted(removed))
        pipe = self.keeping if decision.action == "keep" else self.obscuring
        return row, pipe, {k: v for k, v in fields.items() if k not in removed}


def _status(decision: Decision) -> RecordStatus:
    return "kept" if decision.action == "keep" else "cleaned"


def _failed(row: Row, image: Image, error: str) -> Row:
    return replace(row, status="failed", error=f"{image.name}: {error}", bytes_out=0)


def _add_file(row: Row, result: Result, size: int) -> Row:
    """``row`` with what cleaning one file (a video, a recording) found and did."""
    return replace(
        row,
        faces=row.faces + len(result.faces),
        boxes=row.boxes + [list(f.box) for f in result.faces],
        metadata_removed=sorted({*row.metadata_removed, *result.metadata_removed}),
        bytes_out=row.bytes_out + size,
        speech=result.voice.speech if result.voice else row.speech,
        voice=result.voice.action if result.voice else row.voice,
        plates=row.plates + len(result.plates),
        text=row.text + len(result.text),
    )


def _clean_on_disk(pipe: Pipeline, member: Image, scratch: Path) -> tuple[bytes, Result]:
    """A video or recording held in memory (a WebDataset member, a Parquet cell), cleaned
    through files (they are cleaned as streams, from disk, not in memory) in a temporary folder
    in ``scratch``, removed when done. Not in the system's temp folder: the original, with its
    GPS tags and voices, would stay there for good after a SIGKILL; in ``scratch`` (the output
    folder) the next run's sweep removes it."""
    with _temporary_folder(scratch) as folder:
        src, dst = folder / f"in{member.ext}", folder / f"out{member.ext}"
        with writing(src):  # the output's disk: full, it stops the run (no record fails)
            src.write_bytes(member.data)
        result = pipe.clean_file(src, dst)
        return dst.read_bytes(), result


@contextmanager
def _temporary_folder(parent: Path) -> Iterator[Path]:
    """`temporary_folder` in ``parent``, gone (with what it holds) when the block ends."""
    with writing(parent):
        folder = temporary_folder(parent)
    try:
        yield folder
    finally:
        # A folder that would not go is no reason to fail the record: the next run sweeps it.
        with suppress(OSError):
            discard(folder)


def _add(row: Row, encoded: Encoded) -> Row:
    return replace(
        row,
        faces=row.faces + len(encoded.faces),
        boxes=row.boxes + [list(f.box) for f in encoded.faces],
        metadata_removed=sorted({*row.metadata_removed, *encoded.metadata_removed}),
        bytes_out=row.bytes_out + len(encoded.data),
        plates=row.plates + len(encoded.plates),
        text=row.text + len(encoded.text),
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
