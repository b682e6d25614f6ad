"""One frozen object with every knob; each CLI flag maps to one field.

`Settings` is flat because people set it that way (``veil.clean(src, dst, method="blur",
jobs=2)``, one flag one field). What each part of veil needs is one of its three focused
views: `Cleaning` (what decides the output's bytes), `Checking` (what must be proven before
writing) and `Running` (how a batch is executed, which never changes an output).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

from . import cores
from .detectors import PRESETS, Strategy
from .errors import UsageError
from .obscurers import OBSCURERS
from .tracking import DEFAULT_HOLD

#: An obscurer's name in the registry (`veil.obscurers.OBSCURERS`), checked when `Settings` is
#: made: a new method is a class and one registration line, with no list to edit here.
Method = str
MaskShape = Literal["ellipse", "box"]
VoiceMode = Literal["anonymize", "keep"]

METHODS: tuple[str, ...] = tuple(OBSCURERS)
MASKS: tuple[str, ...] = ("ellipse", "box")
VOICES: tuple[str, ...] = ("anonymize", "keep")
_View = TypeVar("_View")


@dataclass(frozen=True)
class Cleaning:
    """What decides an output's pixels and bytes: equal `Cleaning` (and `Checking`) write the
    same files, which is what a resumed dataset run must hold to."""

    method: Method
    faces: bool
    preset: str
    threshold: float | None
    mask: MaskShape
    max_pixels: int
    hold: int
    voice: VoiceMode
    plates: bool
    text: bool


@dataclass(frozen=True)
class Checking:
    """What must be proven of an output before it is written."""

    verify: bool
    allow_leaks: bool


@dataclass(frozen=True)
class Running:
    """How a batch runs: never what it writes."""

    jobs: int | None
    overwrite: bool

    def workers(self, files: int) -> int:
        """Processes to clean ``files`` files with."""
        if self.jobs is not None:
            return max(1, min(self.jobs, files))
        return min(cores.available(), files) if files >= 8 else 1


@dataclass(frozen=True)
class Settings:
    """How veil cleans a file.

    >>> Settings(method="pixelate").method
    'pixelate'
    """

    #: How a face region is obscured.
    method: Method = "fill"
    #: Detect and obscure faces; ``False`` only strips metadata.
    faces: bool = True
    #: Detection preset: ``fast``, ``balanced`` or ``thorough`` (speed against recall).
    preset: str = "balanced"
    #: Detector score above which a face is kept; None takes the preset's. Low on purpose:
    #: for anonymisation a missed face costs far more than an obscured patch of wall.
    threshold: float | None = None
    #: Shape of the obscured area inside each grown region.
    mask: MaskShape = "ellipse"
    #: Decompression-bomb guard: most pixels veil will decode (all frames of an image
    #: together; one frame of a video, which is streamed).
    max_pixels: int = 200_000_000
    #: Video and animations: frames a face stays obscured after (and before) the detector
    #: lost (or found) it, and the longest gap filled between two of its detections.
    hold: int = DEFAULT_HOLD
    #: Speech in videos and recordings: ``anonymize`` gives it a pseudo-speaker drawn for each
    #: file (voices name people as faces do); ``keep`` copies the sound unchanged.
    voice: VoiceMode = "anonymize"
    #: Find and obscure licence plates (`veil.text`). Off by default: the plates found are
    #: text of a plate's shape, measured on one dev set of street photos only, and finding
    #: them costs up to twice the face-only time (README, "Plates and text").
    plates: bool = False
    #: Find and obscure all other text too: name badges, street and shop signs, screens. Off
    #: by default: a protest sign's words are the message its bearer wants published.
    text: bool = False
    #: Worker processes for batches; None: one per core for batches of 8 files or more (two
    #: single-threaded detectors outrun one two-threaded detector, 20 against 37 ms per photo
    #: on 2 cores), one process otherwise (starting workers costs about a second).
    jobs: int | None = None
    #: Replace outputs that already exist instead of skipping them.
    overwrite: bool = False
    #: Check every output independently before writing it (``veil[verify]``); a leaking
    #: output is not written unless ``allow_leaks``.
    verify: bool = False
    #: With ``verify``: write leaking outputs anyway; the report still names each leak.
    allow_leaks: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.mask not in MASKS:
            raise UsageError(f"unknown mask {self.mask!r}; choose one of {', '.join(MASKS)}")
        if self.voice not in VOICES:
            raise UsageError(f"unknown voice {self.voice!r}; choose one of {', '.join(VOICES)}")
        if self.preset not in PRESETS:
            choices = ", ".join(PRESETS)
            raise UsageError(f"unknown preset {self.preset!r}; choose one of {choices}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise UsageError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.max_pixels < 1:
            raise UsageError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.verify and not self.faces:
            raise UsageError(
                "verification checks that faces are obscured; it cannot run with faces off"
            )
        if self.hold < 0:
            raise UsageError(f"hold must be 0 or more frames, got {self.hold}")
        if self.jobs is not None and self.jobs < 1:
            raise UsageError(f"jobs must be at least 1, got {self.jobs}")

    @property
    def strategy(self) -> Strategy:
        """The detection strategy: the preset's, with ``threshold`` applied when given (the
        zoom passes' threshold moves with it, keeping the preset's ratio of the two)."""
        chosen = PRESETS[self.preset]
        if self.threshold is None:
            return chosen
        ratio = chosen.zoom_threshold / chosen.threshold
        return replace(chosen, threshold=self.threshold, zoom_threshold=self.threshold * ratio)

    @property
    def cleaning(self) -> Cleaning:
        return self._view(Cleaning)

    @property
    def checking(self) -> Checking:
        return self._view(Checking)

    @property
    def running(self) -> Running:
        return self._view(Running)

    def _view(self, view: type[_View]) -> _View:
        return view(**{f.name: getattr(self, f.name) for f in fields(view)})  # type: ignore[arg-type]

    def workers(self, files: int) -> int:
        """Processes to clean ``files`` files with (`Running.workers`)."""
        return self.running.workers(files)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed; unknown names are a usage error."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)
