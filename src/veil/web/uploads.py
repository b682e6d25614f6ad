"""Where ``veil serve`` keeps uploads: one private temporary folder, forgotten when idle.

No name or path from the client reaches the file system: an upload is stored as
``<random id>/input<extension>`` and the client's file name is kept only, cleaned, as the
name offered for the download.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UnknownUpload

if TYPE_CHECKING:
    from ..formats import Handler
    from ..pipeline import Cleaned, Opened

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_EXTENSION = re.compile(r"\.[a-z0-9]{1,5}")
#: Characters a download name keeps; anything else (quotes, slashes, controls) becomes "_".
_UNSAFE = re.compile(r"[^\w .()+,=-]")


def safe_name(name: str) -> str:
    """The last part of a client's file name, fit to offer as a download name.

    >>> safe_name('../../etc/pass"wd.jpg')
    'pass_wd.jpg'
    """
    last = re.split(r"[/\\]", name)[-1]
    last = _UNSAFE.sub("_", unicodedata.normalize("NFC", last)).strip(" .")
    stem, dot, ext = last.rpartition(".")
    if dot and len(ext) <= 5:
        return f"{stem[:100]}.{ext}" if stem else f"upload.{ext}"
    return last[:100] or "upload"


@dataclass
class Upload:
    """One uploaded file and what the review has learned and made of it so far."""

    id: str
    name: str
    folder: Path
    input: Path
    used: float = field(default_factory=time.monotonic)
    #: Set by the scan: the format's handler and "photo", "animation" or "video".
    handler: Handler | None = None
    kind: str = ""
    #: Images: decoded pixels and faces found, kept for the edits (videos are streamed).
    opened: Opened | None = None
    #: The last edits previewed and their pixels: a clean with the same edits writes exactly
    #: what the person saw (the obscurers' noise is fresh on every call).
    edited: tuple[object, list[Cleaned]] | None = None
    original_jpeg: bytes = b""
    output: Path | None = None


class Uploads:
    """Uploads by id in a private folder (0700); each is deleted when discarded, after
    ``idle_seconds`` without a request, or when the server stops."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._root: Path | None = None
        self._items: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Make the private folder (mode 0700); the server does this as it starts."""
        self._root = Path(tempfile.mkdtemp(prefix="veil-serve-"))

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the upload store is not open: the server has not started")
        return self._root

    def new(self, name: str) -> Upload:
        upload_id = secrets.token_urlsafe(16)
        folder = self.root / upload_id
        folder.mkdir(mode=0o700)
        ext = Path(name).suffix.lower()
        stored = folder / ("input" + (ext if _EXTENSION.fullmatch(ext) else ""))
        upload = Upload(upload_id, safe_name(name), folder, stored)
        with self._lock:
            self._items[upload_id] = upload
        return upload

    def get(self, upload_id: str) -> Upload:
        with self._lock:
            upload = self._items.get(upload_id) if _ID.fullmatch(upload_id) else None
        if upload is None:
            raise UnknownUpload("no such upload: it was removed, or it expired after being idle")
        upload.used = time.monotonic()
        return upload

    def discard(self, upload_id: str) -> None:
        with self._lock:
            upload = self._items.pop(upload_id, None)
        if upload is not None:
            shutil.rmtree(upload.folder, ignore_errors=True)

    def sweep(self, now: float | None = None) -> int:
        """Delete uploads idle for longer than ``idle_seconds``; how many went."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [u.id for u in self._items.values() if now - u.used > self.idle_seconds]
        for upload_id in stale:
            self.discard(upload_id)
        return len(stale)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        with self._lock:
            self._items.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
