"""The CPU cores this process may run on: what thread pools and worker pools are sized to.

`os.cpu_count` is the machine's count; under taskset, a container's CPU set or a batch
scheduler's allocation the process may use fewer. Sized to the machine, onnxruntime's threads
then share a core and spin against each other: pinned to one core, the face-only run of the
dev plates took 13-16 s with two CenterFace threads and 5-6 s with one (benchmarks/plates.py).
"""

from __future__ import annotations

import os


def available() -> int:
    """How many cores this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity mask to ask
        return os.cpu_count() or 1
