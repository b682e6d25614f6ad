"""The rows veil reports, the contract of docs/METRICS.md: `Result` (one per input file of
``clean``), `Checked` (one per pair of ``verify``), and the status words of every report,
dataset manifests included. A word that appears in two vocabularies means the same in both:
``cleaned`` (faces obscured, metadata stripped, written), ``failed`` (nothing written; the row
says why), ``skipped`` (not veil's to clean, or already done)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

#: A file of ``veil clean``: ``unchanged``: the output is the input, byte for byte.
Status = Literal["cleaned", "unchanged", "skipped", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)
#: A record of ``veil dataset``: ``kept``: the policy kept its faces (metadata still goes);
#: ``dropped``: the policy left it out.
RecordStatus = Literal["cleaned", "kept", "dropped", "failed"]
RECORD_STATUSES: tuple[str, ...] = get_args(RecordStatus)


@dataclass(frozen=True)
class FaceRecord:
    """One face in the report: detector box, obscured region (both displayed pixels), score.

    In a video, one record is one tracked face: ``frames`` is its first and last frame
    (detected; its region reaches ``hold`` frames further each way), ``box`` the extent of
    all its boxes and ``score`` its best; ``region`` is empty, as the region moves with it.
    """

    box: list[float]
    region: list[int]
    score: float
    frames: list[int] | None = None
    #: In an SVG, the embedded picture (1, 2, ... in document order) the face is in: ``box``
    #: and ``region`` are in that picture's own pixels, where it was found and obscured, not
    #: in the drawing's (which scales and places it). None for every other kind of file.
    image: int | None = None


@dataclass(frozen=True)
class TextRecord:
    """One licence plate or piece of text in the report (``plates``, ``text``): the area
    obscured (displayed pixels, the text's box grown by a fifth of its height) and the text
    detector's mean score over it. What it said is never written: the report would leak it."""

    region: list[int]
    score: float
    #: In a video, one record is one tracked plate or text: its first and last frame, and
    #: ``region`` the extent of all its boxes (as `FaceRecord`); None in photos.
    frames: list[int] | None = None
    #: In an SVG, the embedded picture it is in, as `FaceRecord.image`.
    image: int | None = None


@dataclass(frozen=True)
class Leak:
    """One thing an output still gives away.

    ``kind`` is ``face`` (a face a recognizer matches to the original, or one left unobscured),
    ``metadata`` (identifying fields still in the file), ``plate`` or ``text`` (characters
    still legible where a plate or text was obscured) or ``voice`` (speech whose speaker
    prints as the original's, `veil.verify.voices`; the detail says when); ``box`` is x1, y1,
    x2, y2 in displayed pixels of frame ``frame`` (None for metadata and voices).
    """

    kind: Literal["face", "metadata", "voice", "plate", "text"]
    detail: str
    frame: int | None = None
    box: list[int] | None = None


Verdict = Literal["protected", "unconfirmed", "leak"]


@dataclass(frozen=True)
class Verification:
    """The independent check of one output (`veil verify`, `veil clean --verify`).

    ``verdict``: ``leak`` when anything was found (``leaks``); otherwise ``protected`` only
    when every face the cleaning found was within the second opinion's reach, and
    ``unconfirmed`` when some were not (``unjudged``): no leak was found, but a face the
    cleaning missed beside them, as small or as turned away, would not have been caught.

    ``faces_checked`` counts the places looked at: every face the cleaning found plus every
    face a second detector finds in the output. ``recognizer_runs`` counts those whose output
    pixels still correlate with the original's, which dlib's recognizer then compared; the
    others keep nothing of the original to compare. ``unjudged`` counts the faces the cleaning
    found that are beyond the second opinion's reach (`veil.verify.models.beyond_reach`: shorter
    than `JUDGE_MIN_PX`, or than `JUDGE_MIN_TURNED_PX` when turned away); in a video or an
    animation, the most in any one checked frame (a face is in many frames: a sum would count
    it once per frame).
    """

    verdict: Verdict
    leaks: list[Leak] = field(default_factory=list)
    faces_checked: int = 0
    recognizer_runs: int = 0
    unjudged: int = 0
    #: Files with speech: what the voice check compared and found, or why it could not judge
    #: (then the verdict is at best ``unconfirmed``); None when there was no voice to check.
    voices: str | None = None

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Verification:
        """Read a report's ``verification``; rows written before ``unjudged`` existed read
        as 0 (their verdict is kept as it was written)."""
        return cls(
            verdict=row["verdict"],
            leaks=[Leak(**leak) for leak in row.get("leaks") or []],
            faces_checked=int(row.get("faces_checked", 0)),
            recognizer_runs=int(row.get("recognizer_runs", 0)),
            unjudged=int(row.get("unjudged", 0)),
            voices=row.get("voices"),
        )

    def summary(self) -> str:
        """The leaks, then what could not be judged, in one line, e.g. ``face at [10, 12, 60,
        70]: ... distance 0.31 ...`` or ``no leak found; 54 faces ... would not be caught``."""
        parts = []
        for leak in self.leaks:
            where = f" at {leak.box}" if leak.box is not None else ""
            frame = f" (frame {leak.frame})" if leak.frame else ""
            parts.append(f"{leak.kind}{where}{frame}: {leak.detail}")
        if self.unjudged:
            found = "no leak found; " if not self.leaks else ""
            parts.append(f"{found}{unjudged_text(self.unjudged)}")
        if self.voices and self.voices.startswith("unjudged"):
            parts.append(f"voices {self.voices}")
        return "; ".join(parts)


def unjudged_text(count: int) -> str:
    """What ``unjudged`` means, in words, for ``count`` faces (the CLI, errors, the report)."""
    # Imported here: the verifier's package imports this module.
    from .verify.models import JUDGE_MIN_PX, JUDGE_MIN_TURNED_PX

    faces, like = f"{count} obscured faces are", "faces like them"
    if count == 1:
        faces, like = "1 obscured face is", "a face like it"
    return (
        f"{faces} under {JUDGE_MIN_PX} px tall (or under {JUDGE_MIN_TURNED_PX} px and turned "
        f"away), beyond what the second opinion can see, so {like} that the cleaning missed "
        "would not be caught"
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(row: object, indent: int | None = None) -> str:
    """``row`` as JSON (one line unless ``indent``): non-ASCII as is, and always valid UTF-8.

    A file name that is not valid UTF-8 (``caf\\xe9.jpg`` from a Latin-1 camera card) reaches
    Python as a lone surrogate, which UTF-8 cannot hold; it is written as a ``\\udce9`` escape,
    which JSON allows and which reads back as the same name.
    """
    text = json.dumps(row, ensure_ascii=False, indent=indent)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


VoiceAction = Literal["anonymized", "kept", "none"]


@dataclass(frozen=True)
class VoiceRecord:
    """What was done to the voices of a file with sound (a video, a recording)."""

    #: Share of the sound taken for speech, 0-1.
    speech: float
    #: ``anonymized``: speech given a pseudo-speaker drawn for this file; ``kept``: speech
    #: left as it was (``--voice keep``); ``none``: no speech found, the sound copied as it was.
    action: VoiceAction


@dataclass(frozen=True)
class Result:
    """What happened to one input. ``output`` is None whenever nothing was written."""

    input: str
    output: str | None
    status: Status
    error: str | None = None
    faces: list[FaceRecord] = field(default_factory=list)
    metadata_removed: list[str] = field(default_factory=list)
    #: Set when the output was verified (``--verify``); also on a file failed for a leak.
    verification: Verification | None = None
    #: Set for a file with sound: whether speech was found and what was done to it.
    voice: VoiceRecord | None = None
    #: Licence plates and other text obscured (``--plates on``, ``--text on``).
    plates: list[TextRecord] = field(default_factory=list)
    text: list[TextRecord] = field(default_factory=list)
    #: Set when the content is another kind than the extension names, and was cleaned as
    #: what it is (`veil.formats.disagreement`).
    content: str | None = None

    def to_json(self) -> str:
        row = asdict(self)
        for key in ("verification", "voice", "content"):  # there only when they say something
            if row[key] is None:
                del row[key]
        for key in ("plates", "text"):  # the contract of METRICS.md, unchanged without them
            if not row[key]:
                del row[key]
            for mark in row.get(key, []):
                _drop_none(mark, "frames", "image")
        for face in row["faces"]:  # photos: the contract of METRICS.md, unchanged
            _drop_none(face, "frames", "image")
        return json_text(row)

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
            verification=Verification.from_dict(row["verification"])
            if row.get("verification")
            else None,
            voice=VoiceRecord(**row["voice"]) if row.get("voice") else None,
            plates=[TextRecord(**t) for t in row.get("plates") or []],
            text=[TextRecord(**t) for t in row.get("text") or []],
        )


def _drop_none(row: dict[str, Any], *keys: str) -> None:
    """``row`` without those of ``keys`` that are None: fields only some files have."""
    for key in keys:
        if row[key] is None:
            del row[key]


#: A pair of ``veil verify``: a verdict, or why there is none.
VerifyStatus = Literal["protected", "unconfirmed", "leak", "skipped", "failed"]
VERIFY_STATUSES: tuple[str, ...] = get_args(VerifyStatus)


@dataclass(frozen=True)
class Checked:
    """One row of `veil verify`: an original, its output and what the check concluded."""

    original: str
    output: str
    status: VerifyStatus
    error: str | None = None
    verification: Verification | None = None

    def to_json(self) -> str:
        return json_text(asdict(self))
