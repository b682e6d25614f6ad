"""The FastAPI application of ``veil serve``: the page, its JSON API and the guards around them.

Guards, each for a reason:

- Host header must name this machine (127.0.0.1, localhost, ::1, or the host it was bound
  to): a web page elsewhere cannot reach the server by pointing its own domain at 127.0.0.1
  (DNS rebinding).
- A request from a browser page of another origin is refused (403), and every POST must carry
  its exact content type (raw bytes for an upload, JSON otherwise), which a cross-site form
  cannot send without the preflight this server never answers.
- A strict Content-Security-Policy: the page runs its own script only and connects nowhere
  else.
- Uploads are streamed into a private folder with a byte limit checked as they arrive; file
  names and contents are never logged.
- Nothing is cached by the browser but the page's own code (see `guard`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

from .. import __version__
from ..errors import (
    Conflict,
    CorruptInput,
    LeakFound,
    TooLarge,
    UnknownUpload,
    UnsupportedFormat,
    UsageError,
    VeilError,
    WriteFailed,
)
from ..formats import supported_extensions
from ..obscurers import OBSCURERS
from ..pipeline import Pipeline
from ..settings import Settings
from .review import Reviewer
from .shapes import CleanedOut, Config, Discard, EditsIn, ErrorOut, Ids, Scanned, VoicePreviewIn
from .uploads import DEFAULT_HELD, Upload, Uploads

#: Largest upload accepted: a 12 MP HEIC is ~3 MB, a minute of 1080p phone video ~130 MB.
DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024
#: An upload nobody has touched for this long is deleted (its pixels leave memory too).
DEFAULT_IDLE_SECONDS = 600.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; media-src 'self' blob:; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: HTTP status of each error, most specific class first.
_STATUS: tuple[tuple[type[VeilError], int], ...] = (
    (UnknownUpload, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedFormat, 415),
    (CorruptInput, 422),
    (LeakFound, 422),
    (UsageError, 422),
    (WriteFailed, 500),
    (VeilError, 422),
)
_STATIC = resources.files("veil.web") / "static"
#: What a recording is sent as, for the page's player to know it (by the stored extension,
#: which the scan confirmed against the content).
_SOUND_TYPES = {
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}
_CHUNK = 1024 * 1024


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (403, 404, 409, 413, 415, 422)
}


def _host_of(netloc: str) -> str:
    """The host part of ``host[:port]`` or ``[v6]:port``."""
    return urlsplit("//" + netloc).hostname or ""


def create_app(
    settings: Settings | None = None,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    idle_seconds: float = DEFAULT_IDLE_SECONDS,
    hosts: Iterable[str] = LOOPBACK,
    pipeline: Pipeline | None = None,
    held: int = DEFAULT_HELD,
) -> FastAPI:
    """The review page and its API. ``settings``: detection and verification as for
    ``veil clean`` (default: verification on when the verify extra is installed);
    ``hosts``: the host names the server answers to; ``held``: how many uploads keep their
    decoded pixels in memory (the others are decoded again when next needed)."""
    if settings is None:
        settings = Settings(verify=verify_installed())
    uploads = Uploads(idle_seconds, held)
    reviewer = Reviewer(pipeline or Pipeline(settings), uploads.held)
    allowed = {h.strip("[]").lower() for h in hosts}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        uploads.open()
        stop = threading.Event()
        sweeper = threading.Thread(
            target=_sweep, args=(uploads, stop), name="veil-serve-sweep", daemon=True
        )
        sweeper.start()
        await run_in_threadpool(reviewer.warm_up)  # the first upload should not wait for models
        try:
            yield
        finally:
            stop.set()
            sweeper.join()
            uploads.close()

    app = FastAPI(
        title="veil",
        version=__version__,
        description="Review faces, licence plates, text, metadata and voices of photos, videos "
        "and recordings, then download cleaned copies. Local only: nothing leaves this machine.",
        docs_url=None,  # Swagger UI loads from a CDN; the spec is at /api/openapi.json
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.uploads, app.state.reviewer = uploads, reviewer

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refusal = _refusal(request, allowed)
        response = _error(*refusal) if refusal else await call_next(request)
        response.headers.update(_HEADERS)
        # Uploads, their pictures and the answers about them are private: no browser or proxy
        # keeps a copy. The page's script and style hold nothing private; "no-cache" lets the
        # browser keep them but ask each time (the ETag makes that cheap), so a newer veil is
        # never shown with an older veil's script.
        static = request.url.path.startswith("/static/")
        response.headers["Cache-Control"] = "no-cache" if static else "no-store"
        return response

    @app.exception_handler(VeilError)
    async def veil_error(request: Request, exc: VeilError) -> JSONResponse:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        return _error(status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where or 'request'}: {first.get('msg', 'invalid')}", "UsageError")

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response((_STATIC / "index.html").read_bytes(), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")

    @app.get("/api/config", response_model=Config)
    def config() -> Config:
        return Config(
            version=__version__,
            methods=list(OBSCURERS),
            labels={name: cls.label for name, cls in OBSCURERS.items()},
            method=reviewer.pipeline.settings.method,
            voice=reviewer.pipeline.settings.voice,
            verify=reviewer.pipeline.settings.verify,
            max_upload_bytes=max_upload_bytes,
            extensions=sorted(supported_extensions()),
        )

    @app.post(
        "/api/scan",
        response_model=Scanned,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def scan(
        request: Request,
        name: Annotated[str, Query(min_length=1, max_length=255, description="the file's name")],
    ) -> Scanned:
        """Upload one photo, video or recording (the raw bytes) and find its faces, its
        metadata and how much of its sound is speech."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes:
            raise TooLarge(f"the file is larger than the {_mib(max_upload_bytes)} limit")
        with uploads.receive(name) as upload:  # a refused upload is not kept
            await _receive(request, upload.input, max_upload_bytes)
            return await run_in_threadpool(reviewer.scan, upload)

    @app.post(
        "/api/preview",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **_ERRORS},
    )
    async def preview(body: EditsIn) -> Response:
        """The photo as it will be written with these edits (JPEG, the size of `original`)."""
        # In use from here, not only once a worker thread is free: a queued request's upload
        # must not expire while it waits (so too for clean).
        with uploads.use(body.id) as upload:
            jpeg = await run_in_threadpool(reviewer.preview, upload, body.method, body.edits())
        return Response(jpeg, media_type="image/jpeg")

    @app.post("/api/clean", response_model=CleanedOut, responses=_ERRORS)
    async def clean(body: EditsIn) -> Any:
        """Clean the upload with these edits; fails closed (422, nothing to download)."""
        try:
            with uploads.use(body.id) as upload:
                return await run_in_threadpool(
                    reviewer.clean, upload, body.method, body.edits(), body.voice
                )
        except LeakFound as exc:
            found = asdict(exc.verification)
            return JSONResponse(
                {"error": str(exc), "type": "LeakFound", "verification": found}, status_code=422
            )

    @app.post(
        "/api/voice-preview",
        response_class=Response,
        responses={
            200: {
                "content": {"audio/wav": {}},
                "headers": {
                    "Veil-Preview-Start": {"description": "where the stretch starts, seconds"},
                    "Veil-Preview-Seconds": {"description": "how long it is, seconds"},
                },
            },
            **_ERRORS,
        },
    )
    async def voice_preview(body: VoicePreviewIn) -> Response:
        """The first stretch of speech (at most 12 s, from the first minute) given a new
        voice: 16 kHz mono WAV. Each call draws a new voice, and so does each clean; none is
        kept."""
        with uploads.use(body.id) as upload:
            made = await run_in_threadpool(reviewer.voice_preview, upload)
        headers = {
            "Veil-Preview-Start": f"{made.start:.2f}",
            "Veil-Preview-Seconds": f"{made.seconds:.2f}",
        }
        return Response(made.wav, media_type="audio/wav", headers=headers)

    @app.get("/api/uploads/{upload_id}/original.jpg", response_class=Response, responses=_ERRORS)
    def original(upload_id: str) -> Response:
        with uploads.use(upload_id) as upload:
            if upload.recording:
                raise Conflict("a recording has no picture; its sound plays from .../original")
            return Response(upload.picture.read_bytes(), media_type="image/jpeg")

    @app.get(
        "/api/uploads/{upload_id}/original",
        response_class=StreamingResponse,
        responses={200: {"content": {"audio/*": {}}}, **_ERRORS},
    )
    def original_sound(upload_id: str) -> StreamingResponse:
        """A recording as it was uploaded, for the page's player (this machine only)."""
        with uploads.use(upload_id) as upload:
            if not upload.recording:
                raise Conflict("only a recording is sent to be played; see original.jpg")
            # Opened while in use, as a download is.
            return _send(upload.input.open("rb"), upload.name, _sound_type(upload), inline=True)

    @app.get("/api/uploads/{upload_id}/cleaned.jpg", response_class=Response, responses=_ERRORS)
    async def cleaned(upload_id: str) -> Response:
        with uploads.use(upload_id) as upload:
            jpeg = await run_in_threadpool(reviewer.cleaned_picture, upload)
        return Response(jpeg, media_type="image/jpeg")

    @app.get(
        "/api/uploads/{upload_id}/download",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}, **_ERRORS},
    )
    def download(upload_id: str) -> StreamingResponse:
        with uploads.use(upload_id) as upload:
            if upload.output is None:
                raise Conflict("the upload has not been cleaned yet")
            # Opened while in use: a discard or expiry while it is sent cannot cut it short.
            # A recording says what it is, so that the page's player takes it.
            kind = _sound_type(upload) if upload.recording else "application/octet-stream"
            return _send(upload.output.open("rb"), upload.name, kind)

    @app.post("/api/zip", response_class=FileResponse, responses=_ERRORS)
    def zip_all(body: Ids) -> FileResponse:
        """Every named upload's cleaned file in one zip (names made unique)."""
        with ExitStack() as held:
            chosen = [held.enter_context(uploads.use(i)) for i in body.ids]
            if any(u.output is None for u in chosen):
                raise Conflict("clean every file before downloading them together")
            fd, name = tempfile.mkstemp(suffix=".zip", dir=uploads.root)
            taken: set[str] = set()
            with open(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as archive:
                for upload in chosen:
                    assert upload.output is not None
                    archive.write(upload.output, _unique(upload.name, taken))
        return FileResponse(
            name,
            filename="veil-cleaned.zip",
            media_type="application/zip",
            background=BackgroundTask(Path(name).unlink, missing_ok=True),
        )

    @app.post("/api/discard", status_code=204, response_class=Response, responses=_ERRORS)
    def discard(body: Discard) -> Response:
        """Delete an upload and its output now (otherwise they go when idle)."""
        uploads.discard(body.id)
        return Response(status_code=204)

    return app


def verify_installed() -> bool:
    """Whether the verify extra (dlib and its models) is installed."""
    from ..verify.models import VerifyUnavailable, require_dlib

    try:
        require_dlib()
    except VerifyUnavailable:
        return False
    return True


def _refusal(request: Request, allowed: set[str]) -> tuple[int, str, str] | None:
    """Why a request is refused before it reaches a route (status, message, type), or None."""
    host = request.headers.get("host", "")
    if _host_of(host) not in allowed:
        return 403, "this server answers to requests for this machine only", "Forbidden"
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return 403, "requests from other web pages are refused", "Forbidden"
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        wanted = (
            "application/octet-stream" if request.url.path == "/api/scan" else "application/json"
        )
        if kind != wanted:
            return 415, f"send the body as {wanted}", "UsageError"
    return None


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": message, "type": kind}, status_code=status)


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the request body into ``path``, refusing it once it passes ``limit`` bytes."""
    size = 0
    with path.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the file is larger than the {_mib(limit)} limit")
            fh.write(chunk)


def _sound_type(upload: Upload) -> str:
    return _SOUND_TYPES.get(upload.input.suffix, "application/octet-stream")


def _send(fh: BinaryIO, name: str, media_type: str, inline: bool = False) -> StreamingResponse:
    """A download of a file already open, in chunks, closed once sent or abandoned;
    ``inline``: to be shown (played) on the page rather than saved."""

    def chunks() -> Iterator[bytes]:
        with fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    size = os.fstat(fh.fileno()).st_size
    quoted = quote(name)
    how = "inline" if inline else "attachment"
    disposition = (
        f"{how}; filename*=utf-8''{quoted}" if quoted != name else f'{how}; filename="{name}"'
    )
    headers = {"Content-Length": str(size), "Content-Disposition": disposition}
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


def _sweep(uploads: Uploads, stop: threading.Event) -> None:
    """Forget idle uploads every few seconds until ``stop``."""
    while not stop.wait(min(30.0, max(0.5, uploads.idle_seconds / 4))):
        uploads.sweep()


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    stem, ext = (stem, dot + ext) if dot else (name, "")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem} ({n}){ext}"
    taken.add(candidate)
    return candidate


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MiB"
