"""What the benchmarks share: whole-process timing (wall time, the children's CPU time, and
how many cores other processes kept busy meanwhile: a shared machine makes speed figures
unreliable, and the last number says how much) and argument types."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Timing:
    wall_s: float
    #: CPU seconds of the child processes (user + system); steadier than wall time under load.
    cpu_s: float
    other_load_cores: float | None


def _busy_cpu_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux /proc/stat), else None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    times = os.times()
    return times.children_user + times.children_system


@contextlib.contextmanager
def stopwatch(result: list[Timing]) -> Iterator[None]:
    """Time the block (its child processes' CPU and everyone else's load too) into ``result``."""
    busy, children, start = _busy_cpu_s(), _children_cpu_s(), time.perf_counter()
    yield
    wall_s = time.perf_counter() - start
    busy_after, ours = _busy_cpu_s(), _children_cpu_s() - children
    other = None
    if busy is not None and busy_after is not None and wall_s > 0:
        other = max(0.0, (busy_after - busy - ours) / wall_s)
    result.append(Timing(wall_s, ours, other))


def positive_int(value: str) -> int:
    """argparse type for counts such as --limit and --repeat."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), for benchmark captions."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def require_modules(benchmark: str, modules: tuple[str, ...], how: str) -> None:
    """Exit with one clear line naming every missing module and ``how`` to install them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"{benchmark} benchmark: missing Python modules {', '.join(missing)}; {how}")


def render_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table for the terminal: the first column left-aligned, the others right-aligned,
    a rule under the header, Markdown's ``**`` bold markers dropped."""
    plain = [[cell.replace("**", "") for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in plain) for i in range(len(header))]
    lines = []
    for n, row in enumerate(plain):
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table as Markdown, numbers right-aligned."""
    lines = [f"| {' | '.join(header)} |", "|---" + "|---:" * (len(header) - 1) + "|"]
    return "\n".join([*lines, *(f"| {' | '.join(row)} |" for row in rows)])
