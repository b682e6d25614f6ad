"""Progress bars: one look for every long job (files, frames, records), on stderr, and only
where a person watches (a terminal) unless asked."""

from __future__ import annotations

import sys
from typing import Any


def shown(progress: bool | None) -> bool:
    """Whether to draw bars: as asked (``--progress on|off``), else when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress


def bar(unit: str, show: bool, total: int | None = None, **more: Any) -> Any:
    """A tqdm bar counting ``unit``s (tqdm's own options in ``more``: initial, position, ...);
    imported here, so that a library call that shows nothing never imports tqdm's cost twice."""
    from tqdm import tqdm

    return tqdm(
        total=total, disable=not show, unit=unit, dynamic_ncols=True, file=sys.stderr, **more
    )
