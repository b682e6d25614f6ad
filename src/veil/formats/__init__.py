"""Formats: one handler per still kind, per video container and per sound recording container,
and the registry that picks one for a file by its extension, confirmed by its content."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeAlias

from ..errors import CorruptInput, UnsupportedFormat
from .base import Decoded, FormatHandler, read_prefix
from .bmp import BmpHandler
from .dng import DngHandler
from .gif import GifHandler
from .heif import AvifHandler, HeifHandler, register_heif
from .jpeg import JpegHandler
from .jxl import JxlHandler, register_jxl
from .png import PngHandler
from .pnm import PnmHandler
from .svg import SvgHandler
from .tiff import TiffHandler
from .video import AUDIO_HANDLERS, REFUSED_VIDEO, VIDEO_HANDLERS, VideoHandler, holds_picture
from .webp import WebpHandler


class MediaHandler(Protocol):
    """What every registered format is, still or video: a name for people, the extensions it
    owns and a check of a file's first bytes, which is all the registry needs. Beyond that a
    still (`FormatHandler`) decodes and encodes bytes in memory and a video (`VideoHandler`)
    is cleaned file to file, because a video can be larger than memory; the engine
    (`veil.pipeline`) is the one place that tells the two apart."""

    @property
    def name(self) -> str: ...

    @property
    def extensions(self) -> tuple[str, ...]: ...

    def accept(self, prefix: bytes) -> bool: ...


#: What `handler_for` returns: a still-image handler (bytes in memory) or a video handler
#: (file paths: videos are remuxed on disk, never read whole); a sound recording is a video
#: handler with ``sound`` set; an SVG drawing is a document (`SvgHandler`), cleaned as text
#: whose embedded pictures are cleaned as images.
Handler: TypeAlias = FormatHandler | VideoHandler | SvgHandler

HANDLERS: tuple[FormatHandler, ...] = (
    JpegHandler(),
    PngHandler(),
    WebpHandler(),
    TiffHandler(),
    HeifHandler(),
    AvifHandler(),
    GifHandler(),
    BmpHandler(),
    PnmHandler(),
    JxlHandler(),
    DngHandler(),  # after TIFF: the same signature, so content alone says TIFF
)
#: Documents that draw (SVG): neither pixels nor streams.
DOCUMENT_HANDLERS: tuple[SvgHandler, ...] = (SvgHandler(),)
# Videos before recordings: an M4A is an MP4 too, and a mismatch names the wider kind.
_ALL: tuple[Handler, ...] = (*HANDLERS, *VIDEO_HANDLERS, *AUDIO_HANDLERS, *DOCUMENT_HANDLERS)
#: Every registered format as the registry sees it (mypy holds both families to the contract).
_REGISTERED: tuple[MediaHandler, ...] = _ALL
_BY_EXTENSION = {ext: h for h in _ALL for ext in h.extensions}

# Refused with a reason rather than "unknown": people expect these to work.
RAW_EXTENSIONS = frozenset(
    [
        ".nef",
        ".nrw",
        ".cr2",
        ".cr3",
        ".crw",
        ".arw",
        ".srf",
        ".sr2",
        ".orf",
        ".rw2",
        ".raf",
        ".pef",
        ".srw",
        ".x3f",
        ".3fr",
        ".erf",
        ".kdc",
        ".mrw",
        ".mos",
        ".iiq",
        ".rwl",
        ".raw",
    ]
)
#: What veil cleans, by extension: images (on disk and in memory, e.g. dataset records),
#: videos and sound recordings (on disk only: they are streamed, never read whole).
IMAGE_EXTENSIONS = frozenset(ext for h in HANDLERS for ext in h.extensions)
VIDEO_EXTENSIONS = frozenset(ext for h in VIDEO_HANDLERS for ext in h.extensions)
AUDIO_EXTENSIONS = frozenset(ext for h in AUDIO_HANDLERS for ext in h.extensions)
DOCUMENT_EXTENSIONS = frozenset(ext for h in DOCUMENT_HANDLERS for ext in h.extensions)

register_heif()
register_jxl()


def supported_extensions() -> list[str]:
    return sorted(_BY_EXTENSION)


def image_kind(data: bytes) -> str | None:
    """The extension (".png") of the image kind whose signature ``data`` starts with."""
    prefix = data[:64]
    return next((h.extensions[0] for h in HANDLERS if prefix and h.accept(prefix)), None)


def stream_kind(data: bytes) -> str | None:
    """The extension (".mp4", ".flac") of the video or sound container whose signature
    ``data`` starts with: media found in a dataset's cells, with no file name to go by."""
    prefix = data[:64]
    streams = (*VIDEO_HANDLERS, *AUDIO_HANDLERS)
    return next((h.extensions[0] for h in streams if prefix and h.accept(prefix)), None)


def handler_for(path: Path) -> Handler:
    """The handler for a file: of the kind its extension names, or of its content's kind when
    that is another kind veil cleans (`disagreement` says so for the report); of a container
    that is a video or a recording by its tracks alone (ASF: WMV or WMA), the one they say.

    Raises `UnsupportedFormat` for kinds veil does not clean and `CorruptInput` for empty or
    unrecognisable content.
    """
    ext = path.suffix.lower()
    handler = _handler_of(ext)
    try:
        prefix = read_prefix(path)
    except OSError as exc:
        raise CorruptInput(f"cannot read file: {exc.strerror or exc}") from exc
    return _by_streams(_checked(handler, prefix), path)


def handler_for_bytes(data: bytes, ext: str) -> Handler:
    """`handler_for` for content in memory whose kind ``ext`` (".jpg") names, e.g. a dataset
    record; the same refusals."""
    return _checked(_handler_of(ext.lower()), data[:64])


def _handler_of(ext: str) -> Handler:
    """The handler an extension names, or the reason veil does not clean that kind."""
    if ext in RAW_EXTENSIONS:
        raise UnsupportedFormat(
            f"RAW camera file ({ext}): it cannot be cleaned safely (maker notes and previews are "
            "interleaved with the sensor data); export a JPEG or TIFF and clean that"
        )
    if ext in REFUSED_VIDEO:
        raise UnsupportedFormat(f"video ({ext}): {REFUSED_VIDEO[ext]}")
    handler = _BY_EXTENSION.get(ext)
    if handler is None:
        raise UnsupportedFormat(f"unsupported file type {ext or '(no extension)'}")
    return handler


def _checked(handler: Handler, prefix: bytes) -> Handler:
    """``handler`` when the content's signature agrees with it, else the handler of the kind
    the content is (phones and messengers send HEIF photos named .jpg); else why not."""
    if not prefix:
        raise CorruptInput("empty file (0 bytes)")
    if handler.accept(prefix):
        return handler
    for actual in _ALL:
        if actual.accept(prefix):
            return actual
    raise CorruptInput(f"not a valid {handler.name} file (unrecognised signature)")


def _by_streams(handler: Handler, path: Path) -> Handler:
    """Where a video kind and a sound kind share a container, and so a signature (ASF: WMV
    and WMA), the kind the file's tracks say: a video when it holds a picture, else a
    recording. The extension cannot decide: ".asf" names both, and sound recorders write
    sound-only .asf files, which a video's face path would refuse for want of a picture."""
    if not isinstance(handler, VideoHandler):
        return handler
    kinds = [h for h in (*VIDEO_HANDLERS, *AUDIO_HANDLERS) if h.muxer == handler.muxer]
    if len(kinds) < 2:
        return handler
    picture = holds_picture(path, handler.name)
    if picture is None or handler.sound != picture:  # unreadable: cleaning will say why
        return handler
    return next((h for h in kinds if h.sound != picture), handler)


def disagreement(path: Path, handler: Handler) -> str | None:
    """What the report says of a file cleaned as ``handler``'s kind when its extension names
    another (None when they agree). The output keeps the input's name: a page or a message
    that names the file still finds it, and viewers go by a picture's content; the report
    names the kind, so that it can be renamed."""
    named = _BY_EXTENSION.get(path.suffix.lower())
    if named is None or named is handler:
        return None
    actual = handler.name
    return f"the content is {actual}, the extension says {named.name}: cleaned as {actual}"


__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_HANDLERS",
    "DOCUMENT_EXTENSIONS",
    "DOCUMENT_HANDLERS",
    "HANDLERS",
    "IMAGE_EXTENSIONS",
    "RAW_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VIDEO_HANDLERS",
    "Decoded",
    "FormatHandler",
    "Handler",
    "MediaHandler",
    "SvgHandler",
    "VideoHandler",
    "disagreement",
    "handler_for",
    "handler_for_bytes",
    "image_kind",
    "supported_extensions",
]
