"""The one exception tree of veil, and how an error reads in a report row (`reported`).

Library code raises these. A door turns them into a row: the CLI and the batch, the web page,
the dataset runners, and the public API's one-file methods that never raise
(`Pipeline.run`, `scan`, `verify_file`). Each writes the row's error with `reported`, so a
file's failure reads the same wherever it happened. Third-party exceptions are translated at
the boundary with ``raise ... from``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import Verification


class VeilError(Exception):
    """Base of every error veil raises on purpose."""


class UsageError(VeilError):
    """The caller asked for something that cannot be done (bad option, output inside input)."""


class Conflict(UsageError):
    """The request does not fit the state of what it names (``veil serve``): edits on a
    video, a download before cleaning."""


class UnknownUpload(Conflict):
    """``veil serve``: no upload has this id (never made, discarded, or expired when idle)."""


class UnsupportedFormat(VeilError):
    """The file is of a kind veil does not (yet) clean, e.g. RAW or a document."""


class CorruptInput(VeilError):
    """The file claims a supported format but cannot be decoded (truncated, damaged, empty)."""


class TooLarge(VeilError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class DetectionFailed(VeilError):
    """The face detector could not run on this image."""


class EncodeFailed(VeilError):
    """The cleaned image could not be written in the input's format."""


class WriteFailed(VeilError):
    """The output could not be written (permissions, disk full); no partial file is left."""


class VerificationFailed(VeilError):
    """The output did not pass the re-read check; nothing was written."""


class LeakFound(VerificationFailed):
    """The independent check (``--verify``) found a face or metadata left in the output."""

    def __init__(self, verification: Verification) -> None:
        super().__init__(f"leak: {verification.summary()}")
        self.verification = verification


def reported(exc: BaseException) -> str:
    """The error a report row gives a file that raised ``exc``.

    Veil's own errors name their kind (``CorruptInput: the PNG file is truncated``), a leak
    its summary; running out of memory is said plainly; anything else is a bug in veil, said
    as one, so that a person reports it instead of retrying.
    """
    if isinstance(exc, LeakFound):
        return str(exc)
    if isinstance(exc, VeilError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError):
        return "MemoryError: not enough memory to process this file"
    return (
        f"veil failed unexpectedly on this file ({type(exc).__name__}: {exc}); nothing was "
        "written for it. This is a bug in veil: please report it with the file's kind and size"
    )
