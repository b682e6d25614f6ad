"""`Result`: one serialisable row per input file, the report contract of docs/METRICS.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["cleaned", "unchanged", "skipped", "failed"]
STATUSES: tuple[str, ...] = ("cleaned", "unchanged", "skipped", "failed")


@dataclass(frozen=True)
class FaceRecord:
    """One face in the report: detector box, obscured region (both displayed pixels), score."""

    box: list[float]
    region: list[int]
    score: float


@dataclass(frozen=True)
class Result:
    """What happened to one input. ``output`` is None whenever nothing was written."""

    input: str
    output: str | None
    status: Status
    error: str | None = None
    faces: list[FaceRecord] = field(default_factory=list)
    metadata_removed: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Result:
        faces = [FaceRecord(**f) for f in row.get("faces") or []]
        return cls(
            input=row["input"],
            output=row.get("output"),
            status=row["status"],
            error=row.get("error"),
            faces=faces,
            metadata_removed=list(row.get("metadata_removed") or []),
        )
