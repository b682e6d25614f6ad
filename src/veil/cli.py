"""The ``veil`` command. Exit codes: 0 all good, 1 some files failed (or the report could not be
written), 2 usage error, 130 interrupted (Ctrl-C or SIGTERM: finished files are kept)."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__
from ._lifetime import sigterm_as_interrupt
from .batch import clean_batch, plan, summary, verify_batch, verify_pairs
from .dataset.layouts import LAYOUTS
from .detectors import PRESETS
from .errors import UsageError, VeilError
from .extras import install_command, needs
from .fields import CATEGORIES
from .files import given_entries
from .formats import supported_extensions
from .pipeline import Pipeline, ScanReport
from .result import VERIFY_STATUSES, Result, TextRecord, json_text
from .settings import MASKS, METHODS, VOICES, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: A detector score from which a hit is called a confident face in scan's wording (the same
#: line the tests hold cleaned files to); below it, a weak hit (often no face at all).
CONFIDENT = 0.5

_EPILOG = f"""\
formats: {" ".join(supported_extensions())}
Files of other kinds are reported as skipped; RAW camera files are refused with a reason.
Video (MP4, MOV, M4V, 3GP, MKV, WebM, AVI) is re-encoded with its faces obscured and its sound
copied; with --faces off its streams are copied unchanged, without the metadata.

examples:
  veil clean holiday/ -o holiday-clean --report report.jsonl
  veil clean protest.jpg -o share --method pixelate
  veil clean march.mp4 -o share --hold 30          # keep lost faces covered for 30 frames
  veil clean protest/ -o share --verify        # check each output; leaking ones not written
  veil verify holiday/ holiday-clean --report proof.jsonl
  veil scan photo.heic
  veil scan photos/ --json > findings.json
  veil serve                                   # review page at http://127.0.0.1:8765/
  veil dataset shards/ shards-clean/ --policy examples/policies/gdpr-and-bipa.toml

exit codes: 0 every file cleaned, unchanged or skipped with its reason; 1 a file failed, or the
report could not be written (what was finished is kept); 2 usage error; 130 interrupted (Ctrl-C
or SIGTERM): run the same command again to resume.
"""


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("expected 'on' or 'off'")
    return value == "on"


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        type=_on_off,
        default=None,
        metavar="on|off",
        help="progress bar (default: on when stderr is a terminal)",
    )


def _add_voice(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--voice",
        choices=VOICES,
        default=Settings().voice,
        help="speech in videos and recordings: anonymize gives it a pseudo-speaker drawn for "
        "each file, which a speaker recognizer cannot tell from others (words suffer too: listen "
        "before you publish); keep copies the sound "
        "unchanged (default: %(default)s)",
    )


def _add_text(p: argparse.ArgumentParser, checking: bool = False) -> None:
    """--plates and --text; ``checking``: for `veil verify`, which reads the copies again."""
    d = Settings()
    doing = "check that the copy shows none of the originals'" if checking else "find and obscure"
    p.add_argument(
        "--plates",
        type=_on_off,
        default=d.plates,
        metavar="on|off",
        help=f"{doing} licence plates too (default: off; what it finds and costs is in "
        "docs/benchmarks.md)",
    )
    p.add_argument(
        "--text",
        type=_on_off,
        default=d.text,
        metavar="on|off",
        help=f"{doing} other text too: name badges, street signs, screens (default: off: a "
        "protest sign's words are its message)",
    )


def _add_detection(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument(
        "--faces",
        type=_on_off,
        default=True,
        metavar="on|off",
        help="detect and obscure faces (default: on); off only strips metadata",
    )
    _add_text(p)
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=d.preset,
        help="face detection: fast, balanced or thorough (more passes, fewer misses); "
        "measured recall and speed of each are in docs/benchmarks.md (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="T",
        help="detector score from which a face is obscured, 0-1 (default: the preset's, "
        + ", ".join(f"{name} {s.threshold}" for name, s in PRESETS.items())
        + "; lower obscures more; the enlarged crowd passes keep their lower share of it)",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=d.max_pixels / 1e6,
        metavar="MP",
        help="refuse images with more megapixels than this, all frames together, and videos "
        f"with larger frames (default: {d.max_pixels / 1e6:.0f})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veil",
        description="Obscure every face and strip identifying metadata (GPS, serials, owner names, "
        "thumbnails, XMP/IPTC, video location and telemetry tracks) from photos and videos "
        "before they are published. Works offline.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    clean = sub.add_parser(
        "clean",
        help="write cleaned copies of photos and videos into another folder",
        description="Write a cleaned copy of each photo and video into OUTDIR, mirroring the "
        "input tree. Inputs are never modified; existing outputs are kept unless --overwrite. "
        "Videos are re-encoded with every face obscured in every frame (tracked through the "
        "frames the detector misses). Speech in videos and recordings (.m4a, .mp3, .ogg, "
        ".opus, .wav, .flac, .wma) gets a new voice drawn for each file; sound without speech is "
        "copied unchanged.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    clean.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="photos, videos or recordings, or folders",
    )
    clean.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUTDIR",
        help="folder for the cleaned copies (created if missing)",
    )
    clean.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.jsonl",
        help="write one JSON line per input: status, faces, metadata removed, error",
    )
    clean.add_argument(
        "--method",
        choices=METHODS,
        default=Settings().method,
        help="how faces are obscured (default: %(default)s)",
    )
    clean.add_argument(
        "--mask",
        choices=MASKS,
        default=Settings().mask,
        help="shape obscured inside each face region (default: %(default)s)",
    )
    _add_detection(clean)
    _add_voice(clean)
    clean.add_argument(
        "--hold",
        type=_non_negative_int,
        default=Settings().hold,
        metavar="FRAMES",
        help="video and animations: keep a face obscured this many frames after the detector "
        "lost it (and before it found it), and fill gaps up to this long between its detections "
        "(default: %(default)s; 0 obscures only where a face is detected)",
    )
    clean.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="files cleaned in parallel, one process each (default: one per core for batches "
        "of 8 files or more, else 1)",
    )
    clean.add_argument(
        "--overwrite", action="store_true", help="replace outputs that already exist"
    )
    clean.add_argument(
        "--verify",
        action="store_true",
        help="check each output independently before writing it (a second face detector, "
        "dlib's face recognizer, a metadata re-read); an output that leaks is not written, "
        "one with faces too small for the check to judge is written and said (unconfirmed). "
        f"Needs the verify extra: {install_command('verify')}",
    )
    clean.add_argument(
        "--allow-leaks",
        action="store_true",
        help="with --verify: write leaking outputs anyway; the report names each leak",
    )
    _add_progress(clean)

    scan = sub.add_parser(
        "scan",
        help="show faces and identifying metadata without writing anything",
        description="Read-only: list, per file, the faces found and what its metadata reveals "
        "(place, device, serial numbers, people, times, embedded pictures).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="photos, videos or recordings, or folders",
    )
    scan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_detection(scan)

    verify = sub.add_parser(
        "verify",
        help="check cleaned copies against their originals: is anyone still recognisable?",
        description="For each original and its cleaned copy: look for faces left in the copy "
        "with detectors other than veil's, compare every face with the original using dlib's "
        "face recognizer (a distance under 0.6 is the same person: a leak), and re-read the "
        "copy's metadata. Verdict per file: protected, unconfirmed (no leak found, but some "
        "faces are too small or too turned away for the second detector to see, so one missed "
        "beside them would not be caught: look before publishing) or leak. Reads only; face "
        "descriptors exist in memory only. "
        f"Needs the verify extra: {install_command('verify')}",
        epilog="exit codes: 0 no leak and no failure (every output protected or unconfirmed, "
        "or skipped with a reason), 1 a leak or a failure, 2 usage error or the verify extra "
        "missing",
    )
    verify.add_argument("originals", type=Path, metavar="ORIGINALS", help="file or folder")
    verify.add_argument(
        "outputs",
        type=Path,
        metavar="OUTPUTS",
        help="the cleaned file, or the folder `veil clean -o` wrote (same relative paths)",
    )
    verify.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.jsonl",
        help="write one JSON line per file: verdict, each leak and where, what was checked "
        "and how many faces were beyond the check's reach",
    )
    verify.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=Settings().preset,
        help="how the originals' faces are found, as `veil clean` did (default: %(default)s)",
    )
    _add_text(verify, checking=True)
    _add_progress(verify)

    serve = sub.add_parser(
        "serve",
        help="a local review page: check faces and metadata, correct, download clean copies",
        description="Start a review page in your browser's reach, on this machine only: drop "
        "photos, short videos or recordings, see every face found, what the metadata reveals "
        "and how much is speech, keep chosen faces visible, mark areas the detector missed, "
        "pick the method, preview, hear speech with a new voice, and download the cleaned "
        "files. Uploads stay in a private temporary folder, are never "
        "logged, and are deleted when removed, when idle, or when the server stops. "
        f"Needs the web extra: {install_command('web')}",
        epilog="The JSON API under the page is described at /api/openapi.json.",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only); any other "
        "exposes the uploads and the page to the network",
    )
    serve.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    serve.add_argument(
        "--method", choices=METHODS, default=Settings().method, help="the page's default method"
    )
    serve.add_argument(
        "--verify",
        type=_on_off,
        default=None,
        metavar="on|off",
        help="check each output independently before it can be downloaded (default: on when "
        "the verify extra is installed)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_positive_int,
        default=256,
        metavar="MB",
        help="largest file accepted (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-minutes",
        type=float,
        default=10.0,
        metavar="MIN",
        help="delete an upload after this long without a request (default: %(default)s)",
    )
    _add_detection(serve)
    _add_voice(serve)

    dataset = sub.add_parser(
        "dataset",
        help="anonymise a training dataset under a consent policy, with a manifest",
        description="Clean every record of a dataset into OUTPUT in the same layout: a folder "
        "tree (photo.json beside photo.jpg holds its fields), WebDataset tar shards, or "
        "Parquet files with an image column (img2dataset's layout). A policy decides per "
        "record from its fields: drop it, obscure its faces, or keep them (consent); metadata "
        "is always stripped. OUTPUT/manifest.parquet has one row per input record. Work is "
        "tracked per shard: run the same command again to resume after a crash or Ctrl-C. "
        f"Needs the dataset extra: {install_command('dataset')}; and for --engine ray, the ray "
        f"extra: {install_command('ray')}",
        epilog="policy format and GDPR/BIPA examples: docs/policy.md, examples/policies/; "
        "running on a Ray cluster: docs/cluster.md. Exit codes: 0 all records accounted for; 1 "
        "a record failed, or the run stopped on a write error (make room and run the same "
        "command again to resume); 2 usage error; 130 interrupted (Ctrl-C or SIGTERM).",
    )
    dataset.add_argument("input", type=Path, metavar="INPUT", help="the dataset's folder")
    dataset.add_argument("output", type=Path, metavar="OUTPUT", help="folder for the cleaned copy")
    dataset.add_argument(
        "--policy",
        type=Path,
        metavar="POLICY.toml",
        help="consent and jurisdiction rules (default: obscure faces in every record)",
    )
    dataset.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray Data",
    )
    dataset.add_argument(
        "--ray-address", metavar="ADDR", help="a Ray cluster to join (default: start one here)"
    )
    dataset.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes or Ray actors (default: one per core, at most one per shard)",
    )
    dataset.add_argument(
        "--layout",
        choices=("auto", *LAYOUTS),
        default="auto",
        help="the input's layout (default: auto: Parquet or tar files found, else a folder)",
    )
    dataset.add_argument(
        "--image-column",
        metavar="NAME",
        help="Parquet: the column of image bytes (default: jpg, png, webp, image, ...)",
    )
    dataset.add_argument(
        "--shard-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="folder layout: records per shard, the unit of work and resuming (default: "
        "%(default)s)",
    )
    dataset.add_argument(
        "--method", choices=METHODS, default=Settings().method, help="how faces are obscured"
    )
    dataset.add_argument(
        "--verify", action="store_true", help="check each image independently (the verify extra)"
    )
    _add_detection(dataset)
    _add_voice(dataset)
    _add_progress(dataset)
    return parser


def _require_text_models(args: argparse.Namespace) -> None:
    """With --plates or --text: the OCR models are there, or one clear error before any work."""
    if args.plates or args.text:
        from .text.ocr import require_models

        require_models()


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    _require_text_models(args)
    return Settings(
        faces=args.faces,
        plates=args.plates,
        text=args.text,
        preset=args.preset,
        threshold=args.threshold,
        max_pixels=max(1, int(args.max_megapixels * 1e6)),
        **extra,
    )


def _clean(args: argparse.Namespace) -> int:
    if args.allow_leaks and not args.verify:
        raise UsageError("--allow-leaks only makes sense with --verify")
    settings = _settings(
        args,
        method=args.method,
        mask=args.mask,
        jobs=args.jobs,
        overwrite=args.overwrite,
        hold=args.hold,
        verify=args.verify,
        allow_leaks=args.allow_leaks,
        voice=args.voice,
    )
    if settings.verify:
        _require_verify()
    jobs = plan(args.inputs, args.output)
    if args.report is not None and any(
        os.path.realpath(args.report) == os.path.realpath(j.src) for j in jobs
    ):
        raise UsageError("the report must not overwrite an input")
    results = clean_batch(jobs, settings, report=args.report, progress=args.progress)
    counts = summary(results)
    for r in results:
        if r.status == "failed":
            print(f"failed: {r.input}: {r.error}", file=sys.stderr)
        elif r.verification is not None and r.verification.verdict == "leak":
            print(f"written with a leak: {r.output}: {r.verification.summary()}", file=sys.stderr)
        elif r.verification is not None and r.verification.verdict == "unconfirmed":
            print(f"unconfirmed: {r.output}: {r.verification.summary()}", file=sys.stderr)
    for line in _skipped_lines([(r.input, r.error) for r in results if r.status == "skipped"]):
        print(line, file=sys.stderr)
    print(
        f"{_count(len(results), 'file')}: {counts['cleaned']} cleaned, {counts['unchanged']} "
        f"unchanged, {counts['skipped']} skipped, {counts['failed']} failed; "
        f"{_count(counts['faces'], 'face')}"
        + (f", {_count(counts['plates'], 'plate')}" if settings.plates else "")
        + (
            f", {counts['text']} piece{'' if counts['text'] == 1 else 's'} of text"
            if settings.text
            else ""
        )
        + " obscured"
        + _voices(results)
        + (f"; {_verified(results)}" if settings.verify else "")
        + (f"; report: {args.report}" if args.report else ""),
        file=sys.stderr,
    )
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _voices(results: list[Result]) -> str:
    """``"; new voices in 2 files"``, or nothing when no file written had speech."""
    done = Counter(r.voice.action for r in results if r.voice is not None and r.output)
    said = [f"new voices in {_count(done['anonymized'], 'file')}"] if done["anonymized"] else []
    if done["kept"]:
        said.append(f"voices kept in {_count(done['kept'], 'file')} (--voice keep)")
    return "".join(f"; {part}" for part in said)


def _count(number: int, noun: str) -> str:
    """``"1 file"``, ``"2 files"``: nouns whose plural takes an s."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


#: How many files one skip reason names on the console before it only counts them.
SKIPPED_NAMED = 3


def _skip_reason(error: str | None) -> str:
    """A skipped file's reason without its own output path, so that the reasons of a resumed
    batch group into one: ``output exists (use --overwrite to replace it)``."""
    reason = error or "no reason given"
    if reason.startswith("output exists: "):
        return "output exists (use --overwrite to replace it)"
    return reason


def _skipped_lines(skipped: list[tuple[str, str | None]]) -> list[str]:
    """Why files were skipped, from (file, reason) pairs, one line per reason: a resumed batch
    of thousands says ``skipped 4000 files: output exists (...)`` once, naming the first few."""
    by_reason: dict[str, list[str]] = {}
    for name, error in skipped:
        by_reason.setdefault(_skip_reason(error), []).append(name)
    lines = []
    for reason, inputs in by_reason.items():
        if len(inputs) == 1:
            lines.append(f"skipped: {inputs[0]}: {reason}")
            continue
        named = ", ".join(inputs[:SKIPPED_NAMED])
        more = f" and {len(inputs) - SKIPPED_NAMED} more" if len(inputs) > SKIPPED_NAMED else ""
        lines.append(f"skipped {len(inputs)} files: {reason}: {named}{more}")
    return lines


def _verified(results: list[Result]) -> str:
    verdicts = [r.verification.verdict for r in results if r.verification is not None]
    return (
        f"verified: {verdicts.count('protected')} protected, "
        f"{verdicts.count('unconfirmed')} unconfirmed, {verdicts.count('leak')} leaking"
    )


def _require_verify() -> None:
    """Fail early, before any work, when the verify extra is missing."""
    from .verify.models import require_dlib

    require_dlib()


def _verify(args: argparse.Namespace) -> int:
    _require_verify()
    _require_text_models(args)
    settings = Settings(preset=args.preset, plates=args.plates, text=args.text)
    pairs = verify_pairs(args.originals, args.outputs)
    if args.report is not None and any(
        os.path.realpath(args.report) in (os.path.realpath(a), os.path.realpath(b))
        for a, b in pairs
    ):
        raise UsageError("the report must not overwrite an original or an output")
    rows = verify_batch(pairs, settings, report=args.report, progress=args.progress)
    counts = dict.fromkeys(VERIFY_STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
        if row.status in ("leak", "unconfirmed") and row.verification is not None:
            print(f"{row.status}: {row.output}: {row.verification.summary()}", file=sys.stderr)
        elif row.status == "failed":
            print(f"failed: {row.output}: {row.error}", file=sys.stderr)
    skipped = [(row.output, row.error) for row in rows if row.status == "skipped"]
    for line in _skipped_lines(skipped):
        print(line, file=sys.stderr)
    print(
        f"{_count(len(rows), 'file')}: {counts['protected']} protected, {counts['unconfirmed']} "
        f"unconfirmed, {counts['leak']} leaking, {counts['skipped']} skipped, "
        f"{counts['failed']} failed" + (f"; report: {args.report}" if args.report else ""),
        file=sys.stderr,
    )
    # Unconfirmed is not a failure: nothing was found; it is counted and said above.
    return EXIT_FAILED if counts["leak"] or counts["failed"] else EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .web.app import LOOPBACK, create_app
    except ImportError as exc:
        raise UsageError(f"veil serve needs {needs('web')} ({exc})") from None
    if args.idle_minutes <= 0:
        raise UsageError("--idle-minutes must be more than 0")
    verify = args.verify
    if verify is None:
        from .web.app import verify_installed

        verify = args.faces and verify_installed()
    elif verify:
        _require_verify()
    settings = _settings(args, method=args.method, verify=verify, voice=args.voice)
    hosts = {*LOOPBACK, args.host}
    if args.host not in LOOPBACK:
        print(
            f"veil: WARNING: listening on {args.host}, not on this machine only: anyone who can "
            "reach it can upload files and download what was cleaned. Use this only on a "
            "network you trust.",
            file=sys.stderr,
        )
    app = create_app(
        settings,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        idle_seconds=args.idle_minutes * 60,
        hosts=hosts,
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"veil: review page at http://{shown}:{args.port}/ (verification "
        f"{'on' if verify else 'off'}); Ctrl-C stops it and deletes every upload",
        file=sys.stderr,
    )
    # No access log: request lines carry upload ids, and nothing about uploads is logged.
    # No "Server: uvicorn" header: it tells a prober what to attack and helps no one.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    return EXIT_OK


def _dataset(args: argparse.Namespace) -> int:
    try:
        from .dataset import run as run_dataset
        from .dataset.policy import Policy
    except ImportError as exc:
        raise UsageError(f"veil dataset needs {needs('dataset')} ({exc})") from None
    if args.verify:
        _require_verify()
    settings = _settings(args, method=args.method, verify=args.verify, voice=args.voice)
    policy = Policy.load(args.policy) if args.policy else Policy()
    print(policy.describe(), file=sys.stderr)
    summary = run_dataset(
        args.input,
        args.output,
        policy,
        engine=args.engine,
        workers=args.workers,
        settings=settings,
        layout=args.layout,
        image_column=args.image_column,
        shard_size=args.shard_size,
        ray_address=args.ray_address,
        progress=args.progress,
    )
    t = summary.totals
    by_rule = ", ".join(f"{rule} {n}" for rule, n in t["dropped_by_rule"].items())
    print(
        f"{t['records']} records ({summary.layout}, {summary.shards_run} of "
        f"{summary.shards_total} shards run now): {t['cleaned']} cleaned, {t['kept']} kept, "
        f"{t['dropped']} dropped by policy{f' ({by_rule})' if by_rule else ''}, "
        f"{t['failed']} failed; {t['faces']} faces obscured or kept; manifest: {summary.manifest}",
        file=sys.stderr,
    )
    if summary.left_out:
        shown = ", ".join(summary.left_out[:5]) + (" ..." if len(summary.left_out) > 5 else "")
        print(
            f"not copied (neither records nor their .json/.txt siblings): "
            f"{len(summary.left_out)} files: {shown}",
            file=sys.stderr,
        )
    if not summary.complete:
        print(
            f"veil: error: the manifest has {t['records']} rows for {summary.expected} input "
            "records",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if t["failed"] else EXIT_OK


def _scan(args: argparse.Namespace) -> int:
    listed = [entry for given in args.inputs for entry in given_entries(given)]  # typos first
    pipe = Pipeline(_settings(args))
    reports = [
        pipe.scan(path) if why is None else ScanReport(path=str(path), error=why)
        for path, why in listed
    ]
    if args.json:
        print(json_text([asdict(r) for r in reports], indent=2))
    else:
        for r in reports:
            print(format_scan(r, faces_on=args.faces))
    return EXIT_FAILED if any(r.error for r in reports) else EXIT_OK


def _span(values: list[float], template: str) -> str:
    """``"72 px"`` or ``"71-94 px"`` for ``template="{} px"`` and ``"{:.0f}"``-style fields."""
    low, high = (template.format(v) for v in (min(values), max(values)))
    return low if low == high else f"{low.split(' ')[0]}-{high}"


def format_scan(report: ScanReport, faces_on: bool = True) -> str:
    """A scan as a short readable block: a header line, then one line per finding."""
    if report.error:
        return f"{report.path}\n  cannot read: {report.error}\n"
    size = str(report.format)
    if report.width and report.height:
        size += f" {report.width}x{report.height}"
    if report.frames > 1:
        size += f", {report.frames} frames"
    lines = [f"{report.path}  ({size})"]
    if faces_on:
        lines.append(f"  {'faces':<16} {_faces_line(report)}")
    for label, marks in (("plates", report.plates), ("text", report.text)):
        if marks is not None:
            lines.append(f"  {label:<16} {_text_line(marks, report.sampled_frames, _fate(report))}")
    if report.refused:
        lines.append(f"  {'refused':<16} {report.refused}")
    if report.speech_note:
        lines.append(f"  {'voices':<16} {report.speech_note}")
    elif report.speech:
        # Said plainly: a voice names its speaker as a face does.
        lines.append(
            f"  {'voices':<16} speech in {100 * report.speech:.0f}% of the sound: "
            "clean would give it a new voice"
        )
    if not report.metadata:
        lines.append(f"  {'metadata':<16} nothing identifying found")
    order = {c: i for i, c in enumerate(CATEGORIES)}
    for f in sorted(report.metadata, key=lambda f: order.get(f.category, len(order))):
        lines.append(f"  {f.category:<16} {f.name + ':':<22} {f.value}")
    if len(report.metadata) == 1:
        lines.append(f"  {'':<16} clean would remove it")
    elif report.metadata:
        lines.append(f"  {'':<16} clean would remove all {len(report.metadata)} of these")
    return "\n".join(lines) + "\n"


def _fate(report: ScanReport) -> str:
    """What clean would do with what scan found: obscure it, or refuse the file (`refused`)."""
    return "clean would refuse the file (below)" if report.refused else "would be obscured"


def _text_line(marks: list[TextRecord], sampled: int | None, fate: str) -> str:
    """What scan says of plates or text: how many, how tall; never what they say."""
    where = f" in {_count(sampled, 'sampled key frame')}" if sampled is not None else ""
    if not marks:
        return f"none found{where}"
    heights = [float(m.region[3] - m.region[1]) for m in marks]
    return f"{len(marks)} found{where}, {_span(heights, '{:.0f} px')} tall: {fate}"


def _faces_line(report: ScanReport) -> str:
    """What scan says of the faces: those still visible first, as those are what a person
    must act on; then what veil itself already obscured (`veil.fills`), so that scanning a
    cleaned file says nothing is left rather than listing the grey fills as faces."""
    sampled = ""
    if report.sampled_frames is not None:
        # A video is sampled: every frame is looked at only when it is cleaned.
        sampled = f" in {_count(report.sampled_frames, 'sampled key frame')}"
    visible = report.seen("visible")
    obscured, edges = len(report.seen("obscured")), len(report.seen("edge"))
    already = ""
    if obscured or edges:
        # Counted as hits: the detector can box one fill twice (a head and its hair).
        where = "at the edge of" if not obscured else "on or at the edge of" if edges else "on"
        areas = "an area" if obscured + edges == 1 else "areas"
        already = f"{_count(obscured + edges, 'hit')} {where} {areas} already obscured (grey fill)"
    if not visible:
        return f"none visible{sampled}: {already}" if already else f"none found{sampled}"
    heights = [f.box[3] - f.box[1] for f in visible]
    scores = [f.score for f in visible]
    # Scores tell a confident face from a weak, possible one: the default threshold is low
    # on purpose, so weak hits on things that are not faces are listed too.
    found = f"{_span(heights, '{:.0f} px')} tall, detector score {_span(scores, '{:.2f}')}"
    if already and max(scores) < CONFIDENT:
        # A cleaned file: what is left is no confident face, but a weak hit a person should
        # look at rather than read as a failure (or ignore).
        them = "it" if len(visible) == 1 else "them"
        return (
            f"no confident face visible{sampled}; {_count(len(visible), 'weak hit')} (often "
            f"not a face), {found}: another clean would obscure {them}, look at {them}; "
            f"{already}"
        )
    return f"{len(visible)} found{sampled}, {found}: {_fate(report)}" + (
        f"; {already}" if already else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # A file name that is not valid UTF-8 (caf\xe9.jpg) is printed escaped, not a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        if args.command == "serve":  # uvicorn handles SIGTERM itself: a graceful stop
            return _serve(args)
        with sigterm_as_interrupt():
            return _command(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"veil: error: {exc}\n")
    except VeilError as exc:
        print(f"veil: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nveil: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`veil scan --json | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _command(args: argparse.Namespace) -> int:
    if args.command == "clean":
        return _clean(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "dataset":
        return _dataset(args)
    return _scan(args)


if __name__ == "__main__":
    sys.exit(main())
