"""What the browser tests of ``veil serve`` share: a real server in a thread, Debian's Chromium
driven by Playwright, and a few ways to read pictures and boxes back out of the page.

Playwright is only imported by the test module after it checked that it is installed.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
)

from helpers import Array

REPO = Path(__file__).resolve().parents[1]
#: Debian's Chromium; Playwright is never allowed to fetch a browser of its own.
CHROMIUM = Path(os.environ.get("VEIL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # containers and CI runners often have no user namespaces
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

Box = tuple[int, int, int, int]


def artifacts_dir() -> Path:
    """Where screenshots go: $VEIL_TEST_ARTIFACTS, else ``test-artifacts/`` (git-ignored)."""
    folder = Path(os.environ.get("VEIL_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    # Bind first and hand uvicorn the socket: no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="veil-serve-test", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 90  # the app loads its models before it answers
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the veil server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class Watched:
    """A page, and what went wrong in it that no assertion looks at directly."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        """No uncaught script error and no Content-Security-Policy violation happened."""
        assert not self.errors, self.errors


@contextmanager
def open_page(browser: Browser, base: str, **options: Any) -> Iterator[Watched]:
    """A fresh context (own downloads, own viewport) with the review page loaded and ready."""
    context = browser.new_context(accept_downloads=True, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    watched = Watched(page, context)

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            watched.errors.append(f"CSP: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(f"script error: {exc}"))
    try:
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready]")
        yield watched
    finally:
        context.close()


def scan_upload(page: Page, *paths: Path, drop: bool = False) -> list[dict[str, Any]]:
    """Choose ``paths`` in the page's file input (or, with ``drop``, drop them on the drop
    zone); the /api/scan answers (JSON bodies, errors included) in upload order, once all
    have come.

    The answers are read on their way through a route: this Chromium drops response bodies
    from its DevTools cache at once, so `Response.json()` cannot read them afterwards."""
    answers: list[dict[str, Any]] = []

    def relay(route: Route) -> None:
        response = route.fetch()
        answers.append(response.json())
        route.fulfill(response=response)

    page.route("**/api/scan?*", relay)
    try:
        if drop:
            drop_files(page, "#dropzone", paths)
        else:
            chooser = page.get_by_label("Photos, videos or recordings to clean")
            chooser.set_input_files([str(p) for p in paths])
        deadline = time.monotonic() + 60
        while len(answers) < len(paths):
            assert time.monotonic() < deadline, f"{len(answers)} of {len(paths)} scans answered"
            page.wait_for_timeout(50)
    finally:
        page.unroute("**/api/scan?*", relay)
    return answers


def drop_files(page: Page, selector: str, paths: tuple[Path, ...]) -> None:
    """Drag ``paths`` from the desktop and drop them on ``selector``, as a file manager does."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const { name, data } of files) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name));
            }
            return transfer;
        }""",
        files,
    )
    try:
        for event in ("dragenter", "dragover", "drop"):
            page.dispatch_event(selector, event, {"dataTransfer": transfer})
    finally:
        transfer.dispose()


def picture_of(img: Locator) -> Array:
    """The pixels an <img> in the page shows (its blob: or server URL), read through a canvas:
    the page's CSP forbids fetch() of blob: URLs, and reading it back this way needs no
    exemption."""
    data_url = img.evaluate(
        """(img) => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            canvas.getContext("2d").drawImage(img, 0, 0);
            return canvas.toDataURL("image/png");
        }"""
    )
    png = base64.b64decode(data_url.split(",", 1)[1])
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def rect_box(rect: Locator) -> Box:
    """An overlay <rect>'s box in full-size picture pixels (the overlay's user units)."""
    values = rect.evaluate(
        "(r) => ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a)))"
    )
    x, y, w, h = (round(v) for v in values)
    return (x, y, x + w, y + h)


def to_screen(overlay: Locator, size: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """Page coordinates of full-size picture pixel (x, y) for a picture of ``size`` (w, h)."""
    where = overlay.bounding_box()
    assert where is not None, "the overlay is not shown"
    return (
        where["x"] + x * where["width"] / size[0],
        where["y"] + y * where["height"] / size[1],
    )


def overlaps(a: Box | list[float], b: Box | list[float], margin: float = 0) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )
