"""The one exception tree of veil.

Library code raises these; only the doors (CLI, web page, dataset runners) turn them into a
failed `Result`. Third-party exceptions are translated at the boundary with ``raise ... from``.
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


class FormatMismatch(VeilError):
    """The file's content is of another format than its extension claims."""


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
