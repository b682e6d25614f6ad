"""Batches: map inputs to outputs, run them (in a pool when asked), keep the report, resume.

Nothing is lost and nothing is left behind, whatever stops a batch:

- Each output is written under a temporary name and moved into place only after its report line
  is on disk (``REPORT.partial``, appended and flushed line by line). So an output that exists
  always has its line, and a rerun never mistakes a file this batch finished for someone else's
  ("output exists"). A line whose output never made it is simply redone.
- Ctrl-C and SIGTERM stop the workers (each removes its temporary files) and keep what finished;
  a killed parent takes its workers with it (`_lifetime`); what a killed run left half-written is
  removed by the next run into the same folders (`atomic.sweep`).
- A file that crashes its worker, or veil itself, fails alone; every other file goes on.
- The report is moved into place at the end; the next run reads both files back and does not
  redo a file whose output and report line exist, however its folders are spelled.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from . import _lifetime
from .atomic import atomic_write, discard, rename, sweep, temporary_beside
from .errors import UsageError, WriteFailed, reported
from .files import entries, given_entries
from .pipeline import Pipeline
from .progress import bar as progress_bar
from .progress import shown
from .result import Checked, Result
from .settings import Settings

__all__ = ["Job", "clean_batch", "load_report", "plan", "summary", "verify_batch"]


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    #: Set when the job cannot run at all (e.g. two inputs map to one output): a failed row.
    problem: str | None = None
    #: Set when the entry is not a file to clean (a FIFO, a broken link): a skipped row.
    skip: str | None = None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan(inputs: Iterable[Path], outdir: Path) -> list[Job]:
    """One job per input entry; folders are walked recursively and mirrored below ``outdir``.

    A file input lands at ``outdir/name``; a file inside a folder input at ``outdir/relative``.
    Paths keep the spelling they were given (a relative input, a relative output). Entries that
    are not files (FIFOs, sockets, broken or looping links, links to folders) get a job that
    says why they are skipped. Raises `UsageError` for missing inputs or an output folder that
    is, or is inside, an input folder (a rerun would clean its own outputs) or that would place
    an output over its input.
    """
    out = Path(os.path.realpath(outdir))  # realpath, unlike resolve, never raises on a loop
    jobs: list[Job] = []
    claimed: dict[str, Path] = {}
    for given in inputs:
        listed = given_entries(given)
        root = Path(os.path.realpath(given))
        if root.is_dir():
            if _inside(out, root):
                raise UsageError(f"output folder {outdir} must not be inside input folder {given}")
            found = [(f, outdir / f.relative_to(given), why) for f, why in listed]
        else:
            if root.parent == out:
                raise UsageError(
                    f"output folder {outdir} is the folder of input {given}: "
                    "veil never writes next to or over its input"
                )
            found = [(given, outdir / given.name, why) for _, why in listed]
        for src, dst, why in found:
            key = os.path.realpath(dst)
            if why is not None:
                jobs.append(Job(src, dst, skip=why))
            elif key in claimed:
                jobs.append(Job(src, dst, f"output {dst} is already the output of {claimed[key]}"))
            else:
                claimed[key] = src
                jobs.append(Job(src, dst))
    return jobs


def _key(src: str | Path, dst: str | Path) -> tuple[str, str]:
    """A job's identity whatever the spelling: relative or absolute, through links."""
    return os.path.realpath(src), os.path.realpath(dst)


@dataclass
class _Earlier:
    """Finished rows of earlier runs into the same report, by `_key`."""

    completed: dict[tuple[str, str], Result]
    #: Of those, the rows of an interrupted run (``REPORT.partial``): this batch's own work.
    interrupted: dict[tuple[str, str], Result]


def load_report(path: Path | None) -> _Earlier:
    """Rows of an earlier run (final report and unfinished partial) whose output was written."""
    earlier = _Earlier({}, {})
    if path is None:
        return earlier
    for candidate, into in ((path, earlier.completed), (_partial(path), earlier.interrupted)):
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
            if result.output is None:
                continue
            into[_key(result.input, result.output)] = result
    earlier.completed.update(earlier.interrupted)
    return earlier


def _partial(report: Path) -> Path:
    return report.with_name(report.name + ".partial")


# Worker processes each hold one Pipeline (the model loads once per process).
_WORKER: Pipeline | None = None


def _init_worker(settings: Settings, parent: int) -> None:
    global _WORKER
    _lifetime.die_with_parent(parent)
    # One onnxruntime thread per worker: the processes already fill the cores.
    _WORKER = Pipeline(settings, threads=1)


def _work(src: Path, dst: Path) -> Result:
    worker = _WORKER
    assert worker is not None
    return _lifetime.run_stoppable(lambda: worker.run(src, dst))


class _ReportFile:
    """A report being written: each row is appended to ``REPORT.partial`` (and flushed) as it
    finishes; `finish` writes the whole report atomically and removes the partial file.

    A row that cannot be written whole (disk full) is cut back off, so the partial file stays
    valid JSON lines, and the batch stops with `WriteFailed`: work nobody can account for is
    not worth doing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._partial: BinaryIO | None = None
        self.rows = 0
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep(path.parent, recursive=False)
            self._partial = open(_partial(path), "ab", buffering=0)  # noqa: SIM115 (closed in close)
        except OSError as exc:
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc

    def add(self, row: Result | Checked) -> None:
        if self._partial is None:
            return
        fd = self._partial.fileno()
        line = (row.to_json() + "\n").encode("utf-8")
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # if even that fails, the reader skips it
                os.ftruncate(fd, start)
            raise WriteFailed(
                f"cannot write the report {self.path}: {exc.strerror or exc}; the {self.rows} "
                "files recorded so far are kept: make room and run the same command again to "
                "resume"
            ) from exc
        self.rows += 1

    def close(self) -> None:
        if self._partial is not None:
            self._partial.close()
            self._partial = None

    def finish(self, rows: list[Result] | list[Checked]) -> None:
        self.close()
        if self.path is None:
            return
        try:
            atomic_write(self.path, "".join(r.to_json() + "\n" for r in rows).encode("utf-8"))
        except OSError as exc:
            raise WriteFailed(
                f"cannot write the report {self.path}: {exc.strerror or exc}; every file is "
                f"recorded in {_partial(self.path)}: make room and run the same command again"
            ) from exc
        _partial(self.path).unlink(missing_ok=True)


def clean_batch(
    jobs: list[Job],
    settings: Settings,
    report: Path | None = None,
    progress: bool | None = None,
    pipeline: Pipeline | None = None,
) -> list[Result]:
    """Run every job; returns one `Result` per job in job order and writes ``report``."""
    earlier = load_report(report)
    results: dict[int, Result] = {}
    todo: list[tuple[int, Job]] = []
    for folder in {job.dst.parent for job in jobs}:
        sweep(folder, recursive=False)  # what a killed run left half-written there
    for i, job in enumerate(jobs):
        done = _already_done(job, settings, earlier)
        if done is not None:
            results[i] = done
        else:
            todo.append((i, job))

    out = _ReportFile(report)
    show = shown(progress)
    try:
        with _lifetime.sigterm_as_interrupt():
            for i, job, staged, result in _execute(
                todo, settings, pipeline, show, initial=len(results), total=len(jobs)
            ):
                results[i] = _commit(job, staged, result, out)
    finally:
        out.close()
    ordered = [results[i] for i in range(len(jobs))]
    out.finish(ordered)
    return ordered


def _commit(job: Job, staged: Path | None, result: Result, out: _ReportFile) -> Result:
    """Record a finished job, then move its output into place (in that order: an output on
    disk always has its report line)."""
    if staged is not None and result.output is not None:
        result = replace(result, input=str(job.src), output=str(job.dst))
        out.add(result)
        try:
            rename(staged, job.dst)
            return result
        except OSError as exc:
            result = _failed(job, f"WriteFailed: cannot write {job.dst}: {exc.strerror or exc}")
    elif staged is not None and result.error is not None:
        # A failure names the path it was written to: the output's, not its temporary name.
        result = replace(result, error=result.error.replace(str(staged), str(job.dst)))
    if staged is not None:
        discard(staged)
    out.add(result)
    return result


def _failed(job: Job, error: str) -> Result:
    return Result(input=str(job.src), output=None, status="failed", error=error)


def _already_done(job: Job, settings: Settings, earlier: _Earlier) -> Result | None:
    if job.problem is not None:
        return _failed(job, job.problem)
    if job.skip is not None:
        return Result(input=str(job.src), output=None, status="skipped", error=job.skip)
    if not job.dst.exists():
        return None
    # --overwrite redoes what an earlier, finished run wrote, but not what this same batch
    # wrote before it was interrupted.
    rows = earlier.interrupted if settings.overwrite else earlier.completed
    row = rows.get(_key(job.src, job.dst))
    if row is not None and row.status in ("cleaned", "unchanged"):
        # Resumed: finished by an earlier run; told with today's spelling of its paths.
        return replace(row, input=str(job.src), output=str(job.dst))
    if settings.overwrite:
        return None
    return Result(
        input=str(job.src),
        output=None,
        status="skipped",
        error=f"output exists: {job.dst} (use --overwrite to replace it)",
    )


_Done = tuple[int, Job, Path | None, Result]


def _execute(
    todo: list[tuple[int, Job]],
    settings: Settings,
    pipeline: Pipeline | None,
    show: bool,
    initial: int,
    total: int,
) -> Iterator[_Done]:
    bar = progress_bar("file", show, total, initial=initial)
    workers = settings.workers(len(todo))
    source: Iterator[_Done]
    if workers == 1:
        pipe = pipeline or Pipeline(settings)
        source = (_in_process(pipe, i, job, show, bar) for i, job in todo)
    else:
        source = _pooled(todo, settings, workers)
    try:
        for done in source:
            try:
                yield done
            finally:
                # Stopped (Ctrl-C) before the output was moved into place: its staged file
                # goes (after a move it is already gone, and this does nothing).
                if done[2] is not None:
                    discard(done[2])
            bar.update()
    finally:
        bar.close()


def _stage(job: Job) -> Path | Result:
    """The temporary file a job's output is written to, or why none can be made."""
    try:
        return temporary_beside(job.dst)
    except OSError as exc:
        return _failed(job, f"WriteFailed: cannot write {job.dst}: {exc.strerror or exc}")


def _in_process(pipe: Pipeline, i: int, job: Job, show: bool, bar: Any) -> _Done:
    bar.set_postfix_str(job.src.name[-30:], refresh=False)
    staged = _stage(job)
    if isinstance(staged, Result):
        return i, job, None, staged
    frames = _FrameBar(show)
    pipe.frame_progress = frames
    try:
        result = pipe.run(job.src, staged)
    except BaseException:
        discard(staged)
        raise
    finally:
        frames.close()
        pipe.frame_progress = None
    return i, job, staged, result


def _pooled(todo: list[tuple[int, Job]], settings: Settings, workers: int) -> Iterator[_Done]:
    """Jobs in a pool of spawned processes, no more in flight than there are workers.

    A worker that dies (out of memory, killed) breaks the whole pool; the jobs it was running
    are then retried one at a time in a fresh pool, so the file that kills a worker is known
    and fails alone. Spawned, not forked: forking a process that already runs onnxruntime's
    threads is unsafe (and deprecated from Python 3.12)."""
    context = multiprocessing.get_context("spawn")
    queue = deque(todo)
    suspects: deque[tuple[int, Job]] = deque()
    tries: dict[int, int] = {}
    while queue or suspects:
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(settings, os.getpid())
        )
        running: _Running = {}
        broken = False
        try:
            while queue or suspects or running:
                try:
                    # A suspect runs alone: if the pool breaks again, it was this file.
                    if suspects and not running:
                        yield from _submit(pool, suspects, running)
                    while not suspects and queue and len(running) < workers:
                        yield from _submit(pool, queue, running)
                except BrokenProcessPool:
                    # A worker died after the last wait returned: the pool refuses new work.
                    broken = True
                    yield from _after_break(running, suspects, tries)
                    break
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    broken = True
                    yield from _after_break(running, suspects, tries)
                    break  # a fresh pool for the rest
                for future in done:
                    yield from _collect(future, running)
        finally:
            _stop(pool, running, broken)


_Running = dict["Future[Result]", tuple[int, Job, Path]]


def _submit(
    pool: ProcessPoolExecutor, waiting: deque[tuple[int, Job]], running: _Running
) -> Iterator[_Done]:
    """The next waiting job into the pool; a broken pool leaves it waiting, untried."""
    i, job = waiting.popleft()
    staged = _stage(job)
    if isinstance(staged, Result):
        yield i, job, None, staged
        return
    try:
        future = pool.submit(_work, job.src, staged)
        running[future] = (i, job, staged)
    except BrokenProcessPool:
        discard(staged)
        waiting.appendleft((i, job))
        raise
    except BaseException:
        # Stopped (Ctrl-C, SIGTERM) while handing the job over, before it was counted as
        # running: `_stop` would not know its staged file, and no sweep removes this
        # process's own temporary files.
        discard(staged)
        raise


def _collect(future: Future[Result], running: _Running) -> Iterator[_Done]:
    """A finished job, handed on while still counted as running: a stop that lands before the
    hand-over is complete still finds its staged file (`_stop`)."""
    i, job, staged = running[future]
    exc = future.exception()
    # A bug, or a result that cannot cross processes: this file fails, the batch goes on.
    yield i, job, staged, future.result() if exc is None else _failed(job, reported(exc))
    del running[future]


def _after_break(
    running: _Running, suspects: deque[tuple[int, Job]], tries: dict[int, int]
) -> Iterator[_Done]:
    """The pool broke: every job in flight is retried alone, unless it already ran alone."""
    alone = len(running) == 1
    wait(running)  # the others end at once: their pool is gone
    for future in list(running):
        if not isinstance(future.exception(), BrokenProcessPool):
            yield from _collect(future, running)
            continue
        i, job, staged = running.pop(future)
        _abandon(job, staged)
        if alone and tries.get(i, 0) >= 1:
            yield (
                i,
                job,
                None,
                _failed(
                    job,
                    "the process cleaning this file died (out of memory, or killed by the system); "
                    "nothing was written for it",
                ),
            )
        else:
            tries[i] = tries.get(i, 0) + 1
            suspects.append((i, job))


def _stop(pool: ProcessPoolExecutor, running: _Running, broken: bool = False) -> None:
    """Shut the pool down; if work is still in flight (Ctrl-C, SIGTERM, an error) or the pool
    broke, stop the workers at once: each removes its temporary files as it goes
    (`_lifetime`). A broken pool is never waited for without a limit: its manager joins the
    surviving workers, and one caught in a long native call would hold the batch up."""
    if not running and not broken:
        pool.shutdown(wait=True)
        return
    _lifetime.stop_workers(pool)
    for _, job, staged in running.values():
        _abandon(job, staged)


def _abandon(job: Job, staged: Path) -> None:
    """A job whose worker is gone (killed, or stopped): its staged file goes, and so does the
    temporary file the worker was writing, which a killed worker could not remove itself."""
    discard(staged)
    sweep(job.dst.parent, recursive=False)


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
            self._bar = progress_bar("frame", True, total, position=1, leave=False)
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
        # Every entry, files or not: a FIFO or a broken link gets its line too (skipped).
        return [(f, outputs / f.relative_to(originals)) for f, _ in entries(originals)]
    return [(originals, outputs / originals.name if outputs.is_dir() else outputs)]


def verify_batch(
    pairs: list[tuple[Path, Path]],
    settings: Settings,
    report: Path | None = None,
    progress: bool | None = None,
) -> list[Checked]:
    """Verify every pair in this process; ``report`` gets one JSON line per pair."""
    pipe = Pipeline(settings)
    show = shown(progress)
    rows: list[Checked] = []
    out = _ReportFile(report)
    try:
        for original, output in progress_bar("file", show, len(pairs), iterable=pairs):
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
    counts["plates"] = sum(len(r.plates) for r in results)
    counts["text"] = sum(len(r.text) for r in results)
    return counts
