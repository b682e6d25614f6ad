"""`veil serve` under load and after a kill (issue 16): concurrent uploads with a short idle
time, discards racing the work, and a server killed outright, whose folder of originals (GPS
and all) the next server removes, while a live server's folder is never touched.

Real servers run as subprocesses on free ports, with their own temporary folder (TMPDIR).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'veil[web]'")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install 'veil[web]'")

from PIL import Image

from helpers import astronaut, exif_block
from veil.web.uploads import OWNER, PREFIX, Uploads, remove_dead_servers

pytestmark = pytest.mark.web

posix_only = pytest.mark.skipif(os.name != "posix", reason="signals: POSIX only")
linux_only = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="process start times from /proc: Linux only"
)


def photo() -> bytes:
    """Two faces and a full identifying EXIF block, GPS included."""
    out = io.BytesIO()
    pixels = np.concatenate([astronaut(), astronaut()], axis=1)
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=exif_block())
    return out.getvalue()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def call(
        self, method: str, path: str, body: bytes | None = None, kind: str | None = None
    ) -> tuple[int, Message, bytes]:
        """Status, headers and the whole body (a body cut short raises)."""
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if kind:
            request.add_header("Content-Type", kind)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def post(self, path: str, payload: dict[str, Any]) -> int:
        return self.call("POST", path, json.dumps(payload).encode(), "application/json")[0]

    def scan(self, name: str, data: bytes) -> tuple[int, Message, bytes]:
        return self.call("POST", f"/api/scan?name={name}", data, "application/octet-stream")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(temp: Path, *options: str) -> Iterator[Server]:
    """A `veil serve` subprocess using ``temp`` as its temporary folder, once it answers."""
    port = _free_port()
    log = temp.parent / f"serve-{port}.log"
    command = [sys.executable, "-m", "veil", "serve", "--port", str(port), "--verify", "off"]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*command, *options],
            env={**os.environ, "TMPDIR": str(temp)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"veil serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"veil serve did not answer: {log.read_text()}"
            try:
                if server.call("GET", "/api/config")[0] == 200:
                    break
            except OSError:  # not listening yet
                time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _folders(temp: Path) -> list[Path]:
    return sorted(temp.glob(PREFIX + "*"))


@posix_only
def test_a_killed_servers_originals_are_removed_by_the_next_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    original = photo()
    with serving(temp) as first:
        status, headers, body = first.scan("home.jpg", original)
        assert status == 200, body
        assert "server" not in headers  # no "Server: uvicorn" for a prober
        (folder,) = _folders(temp)
        stored = folder / json.loads(body)["id"] / "input.jpg"
        assert stored.read_bytes() == original  # the original, GPS and all
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
    assert stored.read_bytes() == original  # a killed server cannot clean up
    with serving(temp) as second:
        assert not folder.exists()  # the next one does, as it starts
        (live,) = _folders(temp)
        # A server starting beside a live one leaves the live one's folder alone.
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        beside = Uploads(60)
        beside.open()
        assert live.is_dir() and (live / OWNER).is_file()
        beside.close()
        second.proc.send_signal(signal.SIGTERM)  # a clean stop removes its own folder
        # uvicorn shuts down, then dies of the signal it caught, as a process should
        assert second.proc.wait(30) in (0, -signal.SIGTERM)
    assert _folders(temp) == []
    assert "Traceback" not in second.log.read_text()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _own_start() -> str:
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    return fields[19]


DAY = 24 * 3600


@linux_only
@pytest.mark.parametrize(
    ("owner", "age_s", "removed"),
    [
        ("{me} {start}", 0, False),  # a live server (this process): never touched
        ("{me} {start}", 9 * DAY, False),  # however old
        ("{me}", 0, False),  # signed where there was no /proc: a live pid is kept
        ("{dead} {start}", 0, True),  # its server is gone
        ("{dead}", 0, True),
        ("{me} 1", 0, True),  # the pid lives on, but in a later process: reused
        (None, 0, False),  # unsigned and new: a server may be signing it right now
        (None, 2 * DAY, True),  # unsigned (an older veil) and untouched for two days
        ("not a pid", 2 * DAY, False),  # unreadable: assume it is alive
    ],
)
def test_only_the_folders_of_dead_servers_are_removed(
    tmp_path: Path, dead_pid: int, owner: str | None, age_s: int, removed: bool
) -> None:
    folder = tmp_path / (PREFIX + "x")
    (folder / "upload").mkdir(parents=True)
    (folder / "upload" / "input.jpg").write_bytes(b"original")
    if owner is not None:
        text = owner.format(me=os.getpid(), dead=dead_pid, start=_own_start())
        (folder / OWNER).write_text(text + "\n")
    then = time.time() - age_s
    os.utime(folder, (then, then))
    assert remove_dead_servers(tmp_path) == ([folder] if removed else [])
    assert folder.exists() is not removed


@posix_only
def test_what_is_not_a_servers_folder_is_left_alone(tmp_path: Path) -> None:
    """A file or a link that only looks like a server's folder is never followed or removed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_bytes(b"keep")
    old = time.time() - 2 * DAY
    os.utime(elsewhere, (old, old))
    (tmp_path / (PREFIX + "link")).symlink_to(elsewhere)
    (tmp_path / (PREFIX + "file")).write_bytes(b"keep")
    assert remove_dead_servers(tmp_path) == []
    assert (elsewhere / "precious").read_bytes() == b"keep"


ALLOWED = {
    "scan": {200},
    "preview": {200},
    "clean": {200},
    "discard": {204},
    "clean-raced": {200, 404},  # done before the discard, or not at all
    "download-raced": {200, 404},  # whole, or not at all (a cut-short one raises)
}


@posix_only
def test_concurrent_uploads_with_a_short_idle_time_all_answer(tmp_path: Path) -> None:
    """Ten uploads at once to a server that forgets after 0.6 s idle, while the work queues
    for longer than that: every scan answers, every upload stays until its requests are done,
    a discard racing a clean or a download never gives a 500 or a cut-short file, and once
    all is idle every upload goes."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    data = photo()
    answers: dict[int, list[tuple[str, int]]] = {}

    def person(server: Server, n: int) -> None:
        done = answers.setdefault(n, [])
        status, _, body = server.scan(f"{n}.jpg", data)
        done.append(("scan", status))
        if status != 200:
            return
        upload_id = json.loads(body)["id"]
        racing = threading.Thread(
            target=lambda: done.append(("discard", server.post("/api/discard", {"id": upload_id})))
        )
        if n % 2:  # discarded while its clean waits
            racing.start()
            done.append(("clean-raced", server.post("/api/clean", {"id": upload_id})))
        else:
            done.append(("preview", server.post("/api/preview", {"id": upload_id, "keep": [0]})))
            done.append(("clean", server.post("/api/clean", {"id": upload_id})))
            racing.start()  # discarded while it downloads
            status, _, _ = server.call("GET", f"/api/uploads/{upload_id}/download")
            done.append(("download-raced", status))
        racing.join()

    with serving(temp, "--idle-minutes", "0.01") as server:
        people = [threading.Thread(target=person, args=(server, n)) for n in range(10)]
        started = time.monotonic()
        for p in people:
            p.start()
        for p in people:
            p.join(120)
        took = time.monotonic() - started
        assert len(answers) == 10
        for n, done in answers.items():
            for step, status in done:
                assert status in ALLOWED[step], (n, done)
        assert took > 0.6, "the work must outlast the idle time for this test to mean anything"
        (root,) = _folders(temp)
        deadline = time.monotonic() + 10
        while [p.name for p in root.iterdir()] != [OWNER]:  # all idle now: swept
            assert time.monotonic() < deadline, list(root.iterdir())
            time.sleep(0.2)
    assert "Traceback" not in server.log.read_text()
