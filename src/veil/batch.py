"""Batches: map inputs to outputs, run them (in a pool when asked), keep the report, resume.

The report is written line by line to ``REPORT.partial`` while the batch runs and moved into
place at the end, so a crash or Ctrl-C leaves every finished file accounted for; the next run
reads both files back and does not redo a file whose output and report line exist.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import UsageError
from .pipeline import Pipeline, atomic_write
from .result import Checked, Result
from .settings import Settings


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    #: Set when the job cannot run at all (e.g. two inputs map to one output).
    problem: str | None = None


def files_in(folder: Path) -> list[Path]:
    """Every file below ``folder``, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan(inputs: Iterable[Path], outdir: Path) -> list[Job]:
    """One job per input file; folders are walked recursively and mirrored below ``outdir``.

    A file input lands at ``outdir/name``; a file inside a folder input at ``outdir/relative``.
    Raises `UsageError` for missing inputs or an output folder that is, or is inside, an input
    folder (a rerun would clean its own outputs) or that would place an output over its input.
    """
    out = outdir.resolve()
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    for given in inputs:
        if not given.exists():
            raise UsageError(f"input not found: {given}")
        root = given.resolve()
        if root.is_dir():
            if _inside(out, root):
                raise UsageError(f"output folder {outdir} must not be inside input folder {given}")
            files = [f for f in files_in(given) if not f.name.endswith(".veil-tmp")]
            pairs = [(f, out / f.relative_to(given)) for f in files]
        else:
            if root.parent == out:
                raise UsageError(
                    f"output folder {outdir} is the folder of input {given}: "
                    "veil never writes next to or over its input"
                )
            pairs = [(given, out / given.name)]
        for src, dst in pairs:
            if dst in claimed:
                jobs.append(Job(src, dst, f"output {dst} is already the output of {claimed[dst]}"))
            else:
                claimed[dst] = src
                jobs.append(Job(src, dst))
    return jobs


def load_report(path: Path | None) -> dict[str, Result]:
    """Rows of an earlier run (final report and unfinished partial), by input path."""
    rows: dict[str, Result] = {}
    if path is None:
        return rows
    for candidate in (path, _partial(path)):
        if not candidate.exists():
            continue
        try:
            text = candidate.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read the report {candidate}: {exc.strerror or exc}") from exc
        for line in text.splitlines():
            try:
                result = Result.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            rows[result.input] = result
    return rows


def _partial(report: Path) -> Path:
    return report.with_name(report.name + ".partial")


# Worker processes each hold one Pipeline (the model loads once per process).
_WORKER: Pipeline | None = None


def _init_worker(settings: Settings) -> None:
    global _WORKER
    # One onnxruntime thread per worker: the processes already fill the cores.
    _WORKER = Pipeline(settings, threads=1)


def _work(src: Path, dst: Path) -> Result:
    assert _WORKER is not None
    return _WORKER.run(src, dst)


class _ReportFile:
    """A report being written: each row is appended to ``REPORT.partial`` (and flushed) as it
    finishes; `finish` writes the whole report atomically and removes the partial file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._partial: TextIO | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._partial = open(_partial(path), "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        except OSError as exc:
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc

    def add(self, row: Result | Checked) -> None:
        if self._partial is not None:
            self._partial.write(row.to_json() + "\n")
            self._partial.flush()

    def close(self) -> None:
        if self._partial is not None:
            self._partial.close()

    def finish(self, rows: list[Result] | list[Checked]) -> None:
        self.close()
        if self.path is not None:
            atomic_write(self.path, "".join(r.to_json() + "\n" for r in rows).encode("utf-8"))
            _partial(self.path).unlink(missing_ok=True)


def run(
    jobs: list[Job],
    settings: Settings,
    report: Path | None = None,
    progress: bool | None = None,
    pipeline: Pipeline | None = None,
) -> list[Result]:
    """Run every job; returns one `Result` per job in job order and writes ``report``."""
    previous = load_report(report)
    results: dict[int, Result] = {}
    todo: list[tuple[int, Job]] = []
    for i, job in enumerate(jobs):
        done = _already_done(job, settings, previous)
        if done is not None:
            results[i] = done
        else:
            todo.append((i, job))

    out = _ReportFile(report)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        for i, result in _execute(
            todo, settings, pipeline, show, initial=len(results), total=len(jobs)
        ):
            results[i] = result
            out.add(result)
    finally:
        out.close()
    ordered = [results[i] for i in range(len(jobs))]
    out.finish(ordered)
    return ordered


def _already_done(job: Job, settings: Settings, previous: dict[str, Result]) -> Result | None:
    if job.problem is not None:
        return Result(input=str(job.src), output=None, status="failed", error=job.problem)
    if settings.overwrite or not job.dst.exists():
        return None
    earlier = previous.get(str(job.src))
    if (
        earlier is not None
        and earlier.output == str(job.dst)
        and earlier.status in ("cleaned", "unchanged")
    ):
        return earlier  # resumed: this file was finished by an earlier run
    return Result(
        input=str(job.src),
        output=None,
        status="skipped",
        error=f"output exists: {job.dst} (use --overwrite to replace it)",
    )


def _execute(
    todo: list[tuple[int, Job]],
    settings: Settings,
    pipeline: Pipeline | None,
    show: bool,
    initial: int,
    total: int,
) -> Iterator[tuple[int, Result]]:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=initial,
        disable=not show,
        unit="file",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        workers = settings.workers(len(todo))
        if workers == 1:
            pipe = pipeline or Pipeline(settings)
            for i, job in todo:
                bar.set_postfix_str(job.src.name[-30:], refresh=False)
                frames = _FrameBar(show)
                pipe.frame_progress = frames
                try:
                    yield i, pipe.run(job.src, job.dst)
                finally:
                    frames.close()
                    pipe.frame_progress = None
                bar.update()
            return
        # Spawned, not forked: forking a process that already runs onnxruntime's threads is
        # unsafe (and deprecated from Python 3.12).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(settings,)
        ) as pool:
            futures = {pool.submit(_work, job.src, job.dst): i for i, job in todo}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        bar.close()


class _FrameBar:
    """A second progress bar, below the files', for the frames of the video being cleaned:
    frames per second and time left, opened on the first frame written."""

    def __init__(self, show: bool) -> None:
        self._show = show
        self._bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self._show:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                unit="frame",
                position=1,
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def verify_pairs(originals: Path, outputs: Path) -> list[tuple[Path, Path]]:
    """(original, output) pairs for `veil verify`, mapped the way `plan` maps a clean.

    A folder of originals pairs with the same relative paths under the folder of outputs; a
    single original pairs with ``outputs`` itself, or with ``outputs/name`` when that is a
    folder.
    """
    if not originals.exists():
        raise UsageError(f"originals not found: {originals}")
    if not outputs.exists():
        raise UsageError(f"outputs not found: {outputs}")
    if originals.is_dir():
        if not outputs.is_dir():
            raise UsageError(f"{originals} is a folder, so {outputs} must be one too")
        return [(f, outputs / f.relative_to(originals)) for f in files_in(originals)]
    return [(originals, outputs / originals.name if outputs.is_dir() else outputs)]


def run_verify(
    pairs: list[tuple[Path, Path]],
    settings: Settings,
    report: Path | None = None,
    progress: bool | None = None,
) -> list[Checked]:
    """Verify every pair in this process; ``report`` gets one JSON line per pair."""
    from tqdm import tqdm

    pipe = Pipeline(settings)
    show = sys.stderr.isatty() if progress is None else progress
    rows: list[Checked] = []
    out = _ReportFile(report)
    try:
        for original, output in tqdm(
            pairs, disable=not show, unit="file", dynamic_ncols=True, file=sys.stderr
        ):
            rows.append(pipe.verify_file(original, output))
            out.add(rows[-1])
    finally:
        out.close()
    out.finish(rows)
    return rows


def summary(results: list[Result]) -> dict[str, int]:
    counts = {status: 0 for status in ("cleaned", "unchanged", "skipped", "failed")}
    for r in results:
        counts[r.status] += 1
    counts["faces"] = sum(len(r.faces) for r in results)
    return counts
