"""Where ``veil serve`` keeps uploads: one private temporary folder, forgotten when idle.

No name or path from the client reaches the file system: an upload is stored as
``<random id>/input<extension>`` and the client's file name is kept only, cleaned, as the
name offered for the download.

Three things keep the server from holding more than it should:

- An upload is *in use* while a request for it is queued or running (`Uploads.use`); the idle
  sweep never takes one in use, and its idle time counts from when its last request ended. A
  discard while in use takes effect when the last request ends.
- Only the most recently used few uploads keep their decoded pixels in memory (`Held`); the
  others keep their file, their faces, plates and text, and are decoded again when next
  needed.
- The folder names its server (pid and start time); a server that starts removes the folders
  of servers that died without cleaning up (SIGKILL, power loss), originals and all.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UnknownUpload

if TYPE_CHECKING:
    from ..faces import Faces
    from ..pipeline import Cleaned, Opened
    from ..text import Marks

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_EXTENSION = re.compile(r"\.[a-z0-9]{1,5}")
#: Characters a download name keeps; anything else (quotes, slashes, controls) becomes "_".
_UNSAFE = re.compile(r"[^\w .()+,=-]")
PREFIX = "veil-serve-"
#: The file in a server's folder that names the server: "<pid> <start time>".
OWNER = "owner"
#: A folder without an owner file (written by a veil from before there was one) is taken for
#: a dead server's once nothing in it has changed for a day.
ORPHAN_AGE_S = 24 * 3600.0
#: Uploads whose decoded pixels stay in memory: a 12 MP photo is 36 MB of pixels, as much
#: again for its preview, plus its file; four is ~300 MB and covers a person flipping
#: between a few photos without decoding them again.
DEFAULT_HELD = 4


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
    #: Requests holding it, queued or running (`Uploads.use`): the idle sweep leaves it be.
    users: int = 0
    #: Discarded: its folder goes as soon as no request holds it.
    gone: bool = False
    #: Set by the scan (`Look.kind`): "photo", "animation", "video" or "recording".
    kind: str = ""
    #: Images: the faces the scan found, per frame. They outlive the pixels (`Held`), so the
    #: face numbers a person's edits refer to never change.
    found: list[Faces] | None = None
    #: Images: the plates and text the scan found, per frame (None: not looked for); kept
    #: with the faces for the same reason (`Edits.keep_marks` numbers them).
    text: list[Marks] | None = None
    #: Images: decoded pixels and faces, kept for the edits while in `Held`.
    opened: Opened | None = None
    #: The last edits previewed and their pixels: a clean with the same edits writes exactly
    #: what the person saw (the obscurers' noise is fresh on every call).
    edited: tuple[object, list[Cleaned]] | None = None
    output: Path | None = None

    @property
    def editable(self) -> bool:
        """Faces can be kept and areas added, and a preview shows the result: still photos
        (an animation's or a video's faces are tracked through its frames)."""
        return self.kind == "photo"

    @property
    def recording(self) -> bool:
        """Sound only: no picture to show, no face to hide."""
        return self.kind == "recording"

    @property
    def picture(self) -> Path:
        """A JPEG of the original as displayed, for the page (on disk: it is needed long
        after the pixels have left memory)."""
        return self.folder / "original.jpg"

    def drop_pixels(self) -> None:
        self.opened, self.edited = None, None


class Held:
    """The uploads whose decoded pixels are in memory, least recently used first; adding one
    beyond ``limit`` drops the pixels of the oldest. Called with the reviewer's lock held,
    so the upload whose pixels are dropped is never one being worked on."""

    def __init__(self, limit: int = DEFAULT_HELD) -> None:
        if limit < 1:
            raise ValueError("at least one upload must be held: the one being worked on")
        self.limit = limit
        self._order: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, upload: Upload) -> None:
        """``upload`` has its pixels in memory and is the most recently used."""
        with self._lock:
            self._order[upload.id] = upload
            self._order.move_to_end(upload.id)
            evicted = [self._order.popitem(last=False)[1] for _ in range(len(self) - self.limit)]
        for old in evicted:
            old.drop_pixels()
        if evicted:
            release_memory()

    def remove(self, upload: Upload) -> None:
        with self._lock:
            self._order.pop(upload.id, None)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, upload: Upload) -> bool:
        return upload.id in self._order


class Uploads:
    """Uploads by id in a private folder (0700); each is deleted when discarded, after
    ``idle_seconds`` without a request, or when the server stops. ``held``: how many keep
    their decoded pixels in memory."""

    def __init__(self, idle_seconds: float, held: int = DEFAULT_HELD) -> None:
        self.idle_seconds = idle_seconds
        self.held = Held(held)
        self._root: Path | None = None
        self._items: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Remove the folders of dead servers, then make this one's private folder (mode
        0700) and sign it; the server does this as it starts."""
        temp = Path(tempfile.gettempdir())
        remove_dead_servers(temp)
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=temp))
        (root / OWNER).write_text(_owner(os.getpid()), encoding="ascii")
        self._root = root

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the upload store is not open: the server has not started")
        return self._root

    @contextlib.contextmanager
    def receive(self, name: str) -> Iterator[Upload]:
        """A new, empty upload, in use while the block runs and discarded if it fails (a
        refused upload is not kept)."""
        upload_id = secrets.token_urlsafe(16)
        folder = self.root / upload_id
        folder.mkdir(mode=0o700)
        ext = Path(name).suffix.lower()
        stored = folder / ("input" + (ext if _EXTENSION.fullmatch(ext) else ""))
        upload = Upload(upload_id, safe_name(name), folder, stored, users=1)
        with self._lock:
            self._items[upload_id] = upload
        try:
            yield upload
        except BaseException:
            self.discard(upload_id)
            raise
        finally:
            self._release(upload)

    @contextlib.contextmanager
    def use(self, upload_id: str) -> Iterator[Upload]:
        """The upload, kept from the idle sweep (and a discard deferred) until the block ends."""
        with self._lock:
            upload = self._items.get(upload_id) if _ID.fullmatch(upload_id) else None
            if upload is not None:
                upload.users += 1
                upload.used = time.monotonic()
        if upload is None:
            raise UnknownUpload("no such upload: it was removed, or it expired after being idle")
        try:
            yield upload
        finally:
            self._release(upload)

    def get(self, upload_id: str) -> Upload:
        """The upload, without holding it (`use` holds it)."""
        with self.use(upload_id) as upload:
            return upload

    def _release(self, upload: Upload) -> None:
        with self._lock:
            upload.users -= 1
            upload.used = time.monotonic()  # idle from now, not from when the request came
            finished = upload.gone and upload.users == 0
        if finished:
            self._remove(upload)

    def discard(self, upload_id: str) -> None:
        """Forget the upload now; its folder and pixels go once no request holds it."""
        with self._lock:
            upload = self._items.pop(upload_id, None)
            if upload is None:
                return
            upload.gone = True
            idle = upload.users == 0
        if idle:
            self._remove(upload)

    def _remove(self, upload: Upload) -> None:
        self.held.remove(upload)
        upload.drop_pixels()
        shutil.rmtree(upload.folder, ignore_errors=True)
        release_memory()

    def sweep(self, now: float | None = None) -> int:
        """Delete uploads idle for longer than ``idle_seconds`` and not in use; how many went."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [
                u for u in self._items.values() if u.users == 0 and now - u.used > self.idle_seconds
            ]
            for upload in stale:
                del self._items[upload.id]
                upload.gone = True
        for upload in stale:
            self._remove(upload)
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
        release_memory()


# -- folders of dead servers -----------------------------------------------------------------
def remove_dead_servers(temp: Path) -> list[Path]:
    """Delete the ``veil-serve-*`` folders in ``temp`` that belong to this user and to a
    server no longer running (or, unsigned, unchanged for `ORPHAN_AGE_S`); the ones removed.

    A server killed outright (SIGKILL, power loss) cannot clean up, and its folder holds
    originals with their GPS. A live server's folder is never touched. Linux tells a reused
    pid from the original server by its start time; elsewhere a folder whose pid is in use is
    kept (the safe side). On Windows nothing is removed: there is no harmless way to ask
    whether a process is alive.
    """
    if os.name != "posix":
        return []
    removed = [folder for folder in temp.glob(PREFIX + "*") if _dead(folder)]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def _dead(folder: Path) -> bool:
    try:
        info = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False  # not a folder of ours (or a link someone planted): leave it
    try:
        owner = (folder / OWNER).read_text(encoding="ascii")
    except FileNotFoundError:  # unsigned (an older veil), or a server signing it right now
        return time.time() - info.st_mtime > ORPHAN_AGE_S
    except (OSError, UnicodeDecodeError):
        return False
    return not _alive(owner)


def _owner(pid: int) -> str:
    """What a server writes into its folder: its pid and, where known, its start time."""
    state = _process(pid)
    return f"{pid} {state[1] if state else ''}".strip() + "\n"


def _process(pid: int) -> tuple[str, str] | None:
    """Linux: process ``pid``'s state letter and start time (clock ticks after boot), from
    /proc/<pid>/stat (fields 3 and 22, see proc(5)); None when there is no such file."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = line.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _alive(owner: str) -> bool:
    """Whether the server an owner file names still runs (unreadable: assume it does)."""
    pid_text, _, started = owner.strip().partition(" ")
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but another user's: not our server, yet not provably dead
    state = _process(pid)
    if state is None:
        return True  # no /proc: a live pid may be a reused one, but keep the folder
    letter, start = state
    return letter not in "ZX" and (not started or start == started)


_LIBC: ctypes.CDLL | None = None


def release_memory() -> None:
    """Give freed memory back to the system (glibc only; elsewhere nothing to do).

    Decoded photos are tens of MB each; glibc serves blocks that large from its arenas once
    it has freed a few (its mmap threshold rises to 32 MB, see mallopt(3)), and freed arena
    memory stays with the process: 20 discarded 12 MP uploads left 2.7 GB resident.
    ``malloc_trim(0)`` returns it.
    """
    global _LIBC
    if not sys.platform.startswith("linux"):
        return
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return
    trim = getattr(_LIBC, "malloc_trim", None)  # musl has none
    if trim is not None:
        trim(0)
