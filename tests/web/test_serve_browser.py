"""The review page of ``veil serve``, end to end: the real server in a thread, Debian's Chromium
driven by Playwright, real photos of real faces from ``../shared/data/faces``.

Each test is one thing a person does on the page and fails when that flow breaks; the files
it downloads are opened and checked pixel by pixel against the photo and its ground-truth
face boxes (Pascal VOC), not against what the detector said. Screenshots of every flow go to
$VEIL_TEST_ARTIFACTS (default ``test-artifacts/``); ``serve.png`` there is the README's.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -e '.[web]'")
pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
)

import av
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Response, expect, sync_playwright

from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAPTOP,
    PHONE,
    Box,
    artifacts_dir,
    open_page,
    overlaps,
    picture_of,
    rect_box,
    scan_upload,
    serving,
    to_screen,
)
from helpers import (
    GPS_LAT,
    SERIAL,
    Array,
    backdrop,
    central,
    crop,
    exif_block,
    grey,
    jpeg_with_segments,
    mean_abs_diff,
    plate_scene,
)
from veil.settings import Settings
from veil.web.app import create_app

if not CHROMIUM.is_file():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (apt install chromium, or set VEIL_CHROMIUM); "
        "the browser tests never download a browser",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.web, pytest.mark.realdata]

#: 400x352, three people facing the camera (faces 41-54 px wide) and a plain lower half
#: where an extra area can be drawn away from every face.
PHOTO = "maksssksksss809"
#: A second photo for the zip: 512x354, three masked faces.
SECOND = "maksssksksss84"
KEPT_MAX_DIFF = 6.0  # mean |difference| of a kept face: JPEG re-encoding at most
HIDDEN_MIN_DIFF = 15.0  # mean |difference| over the centre of an obscured face or area
CLIP_FRAMES = 20


@dataclass(frozen=True)
class Photo:
    path: Path
    pixels: Array
    faces: list[Box]  # ground truth, full-size pixels


def ground_truth(xml: Path) -> list[Box]:
    """The face boxes of a Pascal VOC annotation (every object in this set is a face)."""
    root = ET.parse(xml).getroot()
    boxes = []
    for box in root.iter("bndbox"):
        x1, y1, x2, y2 = (
            round(float(box.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        boxes.append((x1, y1, x2, y2))
    return boxes


def load_photo(shared: Path, stem: str, dst: Path, exif: bool) -> Photo:
    """A dataset photo copied to ``dst``; with ``exif``, given the test EXIF block (GPS, Make,
    BodySerialNumber, owner, thumbnail...) inserted without re-encoding the pixels."""
    faces = shared / "faces"
    jpeg = (faces / "images" / f"{stem}.jpg").read_bytes()
    dst.write_bytes(jpeg_with_segments(jpeg, [(0xE1, exif_block())]) if exif else jpeg)
    with Image.open(dst) as im:
        pixels = np.asarray(im.convert("RGB"))
    return Photo(dst, pixels, ground_truth(faces / "annotations" / f"{stem}.xml"))


@pytest.fixture(scope="module")
def photo(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Photo:
    return load_photo(shared_data, PHOTO, tmp_path_factory.mktemp("photo") / "street.jpg", True)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """One real server per module, with the defaults `veil serve` has."""
    with serving(create_app()) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module (starting it is most of a flow's cost); a context per test."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    return artifacts_dir()


# -- choosing what to click and where to drag --------------------------------------------------
def iou(a: Box | list[float], b: Box | list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def face_to_keep(scan: dict[str, Any], truth: list[Box]) -> tuple[dict[str, Any], Box]:
    """The surest detected face (matching a true face) that no other face's region touches,
    so that keeping it leaves its pixels alone; and its ground-truth box."""
    for face in sorted(scan["faces"], key=lambda f: -f["score"]):
        others = [f["region"] for f in scan["faces"] if f is not face]
        match = max(truth, key=lambda t: iou(t, face["box"]))
        if iou(match, face["box"]) > 0.3 and not any(overlaps(match, r) for r in others):
            return face, match
    raise AssertionError("no detected face stands apart from the others in the test photo")


def free_area(scan: dict[str, Any], photo: Photo) -> Box:
    """A fifth of the picture each way that touches no face region or true face: the most
    textured such place (obscuring a flat wall would change too little to measure)."""
    height, width = photo.pixels.shape[:2]
    w, h = width // 5, height // 5
    taken = [f["region"] for f in scan["faces"]] + list(photo.faces)
    luma = grey(photo.pixels)
    best: tuple[float, Box] | None = None
    for y in range(8, height - h - 8, 8):
        for x in range(8, width - w - 8, 8):
            box = (x, y, x + w, y + h)
            if any(overlaps(box, t, margin=6) for t in taken):
                continue
            texture = float(crop(luma, box).std())
            if best is None or texture > best[0]:
                best = (texture, box)
    assert best is not None, "the test photo has no room for an extra area"
    return best[1]


def changed(a: Array, b: Array, box: Box) -> float:
    return mean_abs_diff(crop(a, box), crop(b, box))


def resized(pixels: Array, size: tuple[int, int]) -> Array:
    """``pixels`` at the size of the page's pictures (original.jpg, previews): long side <= 1600."""
    if pixels.shape[1::-1] == size:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def preview_done(
    page: Page, card: Locator, action: Callable[[], object], want: dict[str, Any]
) -> None:
    """Run ``action`` and wait until the preview shows the edits in ``want`` (the debounced
    request for exactly these edits was answered and its picture is on the page)."""

    def matches(response: Response) -> bool:
        if "/api/preview" not in response.url:
            return False
        sent = json.loads(response.request.post_data or "{}")
        return all(sent.get(k) == v for k, v in want.items())

    with page.expect_response(matches) as answer:
        action()
    assert answer.value.ok, answer.value.text()
    expect(card).to_have_attribute("data-preview", "ready")


def tab_to(page: Page, test: str, limit: int = 60) -> None:
    """Press Tab until the focused element passes the JS predicate ``test`` (on `el`)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {test}; }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


def verdict_for(page: Page, base: str) -> str:
    verify = page.request.get(base + "/api/config").json()["verify"]
    return "Checked: no face or metadata left" if verify else "Not checked"


# -- the flows ---------------------------------------------------------------------------------
def test_review_keep_add_pixelate_then_download(
    browser: Browser, server: str, photo: Photo, artifacts: Path, tmp_path: Path
) -> None:
    """Upload, see faces and metadata, keep one face, drag an extra area, pixelate, watch
    the preview follow, clean and download; the file is checked pixel by pixel."""
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        [scan] = scan_upload(page, photo.path)
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-state", "ready")

        # Every detected face is outlined, and hidden until chosen otherwise.
        assert scan["faces"], "the detector found no face in the test photo"
        faces = card.locator(".face")
        expect(faces).to_have_count(len(scan["faces"]))
        expect(card.locator('.face[aria-pressed="false"]')).to_have_count(len(scan["faces"]))
        # The metadata panel says, in words, where the photo was taken and the camera's serial.
        reveals = card.get_by_role("region", name="What this file reveals")
        for words in ("Place", f"{GPS_LAT:.5f}", "Serial number", SERIAL, "removed"):
            expect(reveals).to_contain_text(words)
        expect(card).to_have_attribute("data-preview-count", "1")
        size = (scan["width"], scan["height"])
        first = picture_of(card.locator("img.preview"))

        # Keep one face visible (a click on it), add an area the detector "missed" by dragging.
        keep, kept_truth = face_to_keep(scan, photo.faces)
        face = card.locator(f'.face[data-index="{keep["index"]}"]')
        face.locator(".shade").click()
        expect(face).to_have_attribute("aria-pressed", "true")
        expect(face).to_have_attribute("aria-label", re.compile(r"kept visible"))
        expect(face).to_have_class(re.compile(r"\bkept\b"))

        area = free_area(scan, photo)
        overlay = card.locator("svg.overlay")
        page.mouse.move(*to_screen(overlay, size, area[0], area[1]))
        page.mouse.down()
        page.mouse.move(*to_screen(overlay, size, area[2], area[3]), steps=8)
        page.mouse.up()
        expect(card.locator(".area")).to_have_count(1)
        drawn = rect_box(card.locator(".area .outline"))
        assert all(abs(a - b) <= 3 for a, b in zip(drawn, area, strict=True)), (drawn, area)
        expect(card.locator(".area-list li")).to_have_count(1)
        # The drag ended over no face; none was toggled by it.
        expect(card.locator('.face[aria-pressed="true"]')).to_have_count(1)

        pixelate = card.get_by_role("radio", name=re.compile("Pixelate"))
        want = {"method": "pixelate", "keep": [keep["index"]], "add": [list(drawn)]}
        preview_done(page, card, pixelate.check, want)
        shown = picture_of(card.locator("img.preview"))
        original = resized(photo.pixels, shown.shape[1::-1])
        k = shown.shape[1] / size[0]
        on_screen = [tuple(round(v * k) for v in b) for b in (kept_truth, drawn)]
        assert changed(first, shown, on_screen[0]) > HIDDEN_MIN_DIFF, "preview did not update"
        assert changed(original, shown, on_screen[0]) < KEPT_MAX_DIFF + 4  # JPEG q85 preview
        assert changed(original, shown, central(on_screen[1])) > HIDDEN_MIN_DIFF
        # The README's picture: the review section at the top of a laptop's screen.
        page.get_by_role("heading", name="2. Review and download").evaluate(
            "(h) => h.scrollIntoView({block: 'start'})"
        )
        page.screenshot(path=artifacts / "serve.png")

        with page.expect_download(timeout=90_000) as download_info:
            card.get_by_role("button", name="Clean and download").click()
        download = download_info.value
        assert download.suggested_filename == photo.path.name
        out = tmp_path / download.suggested_filename
        download.save_as(out)
        outcome = card.locator(".outcome")
        expect(outcome).to_contain_text(verdict_for(page, server))
        if page.request.get(server + "/api/config").json()["verify"]:
            # Its hidden faces are about 55 px tall, under the second opinion's reach: the
            # page says the check could not judge them, in words.
            expect(outcome.locator(".caveat")).to_contain_text("too small or too turned away")
        expect(outcome).to_contain_text("1 kept visible")
        expect(outcome).to_contain_text("1 extra area hidden")
        expect(outcome).to_contain_text("GPS")
        page.screenshot(path=artifacts / "serve-flow1-cleaned.png", full_page=True)
        watched.check_clean()

    raw = out.read_bytes()
    assert SERIAL.encode() not in raw and b"VeilCam" not in raw
    with Image.open(out) as im:
        exif = im.getexif()
        assert 0x8825 not in exif, "GPS left in the download"
        assert 0x010F not in exif and 0x0110 not in exif, "camera make/model left"
        assert 0xA431 not in exif.get_ifd(0x8769), "serial number left"
        cleaned = np.asarray(im.convert("RGB"))
    assert cleaned.shape == photo.pixels.shape
    assert changed(photo.pixels, cleaned, kept_truth) < KEPT_MAX_DIFF
    hidden = [t for t in photo.faces if t != kept_truth]
    for truth in hidden:
        assert changed(photo.pixels, cleaned, central(truth)) > HIDDEN_MIN_DIFF, truth
    assert changed(photo.pixels, cleaned, central(drawn)) > HIDDEN_MIN_DIFF, "area not hidden"


def test_keyboard_only(browser: Browser, server: str, photo: Photo, artifacts: Path) -> None:
    """Faces toggle with Space and Enter; "Add region" gives a box the arrow keys move and
    Shift+arrows resize; its Remove button is reachable and keeps focus in the card."""
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        [scan] = scan_upload(page, photo.path)
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-preview-count", "1")

        # Tab reaches a face; Space and Enter flip it between hidden and kept.
        tab_to(page, "el.classList.contains('face')")
        index = page.evaluate("document.activeElement.dataset.index")
        face = card.locator(f'.face[data-index="{index}"]')
        expect(face).to_have_attribute("aria-pressed", "false")
        expect(face).to_have_attribute("aria-label", re.compile(r"hidden — press to keep visible"))
        page.keyboard.press("Space")
        expect(face).to_have_attribute("aria-pressed", "true")
        page.keyboard.press("Enter")
        expect(face).to_have_attribute("aria-pressed", "false")
        page.keyboard.press("Space")
        expect(face).to_have_attribute("aria-pressed", "true")

        # "Add region" puts a focused box in the middle; arrows move it, Shift+arrows resize it.
        tab_to(page, "el.textContent === 'Add region'")
        page.keyboard.press("Enter")
        area = card.locator(".area")
        expect(area).to_have_count(1)
        expect(area).to_be_focused()
        x1, y1, x2, y2 = rect_box(area.locator(".outline"))
        width, height = scan["width"], scan["height"]
        assert abs((x1 + x2) / 2 - width / 2) <= 1 and abs((y1 + y2) / 2 - height / 2) <= 1
        step = max(1, round(min(width, height) / 50))
        for key in ["ArrowRight"] * 3 + ["ArrowDown"] * 2 + ["Shift+ArrowRight"] * 2:
            page.keyboard.press(key)
        # Moved 3 right and 2 down, then 2 wider; the last key (1 taller) is awaited below.
        final = (x1 + 3 * step, y1 + 2 * step, x2 + 5 * step, y2 + 3 * step)
        want = {"keep": [int(index)], "add": [list(final)]}
        preview_done(page, card, lambda: page.keyboard.press("Shift+ArrowDown"), want)
        assert rect_box(area.locator(".outline")) == final
        w, h = final[2] - final[0], final[3] - final[1]
        expect(card.locator(".area-list li")).to_contain_text(
            f"{w} \N{MULTIPLICATION SIGN} {h} px at {final[0]}"
        )
        page.screenshot(path=artifacts / "serve-flow2-keyboard.png")

        # Its Remove button is the next stop; focus stays in the card after removing it.
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert focused == "Remove area 1"
        page.keyboard.press("Enter")
        expect(area).to_have_count(0)
        assert page.evaluate("document.activeElement.textContent") == "Add region"
        watched.check_clean()


def test_a_plate_is_outlined_and_kept_by_click_or_keyboard(
    browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    """``--plates on``: the plate is outlined as a plate, not a face; a click, or Tab and
    Space, keeps it visible, and the preview and the outcome follow. Text was not looked
    for, and the card says so and how to ask for it."""
    pixels, plate, _ = plate_scene()
    src = tmp_path / "street.png"
    Image.fromarray(pixels).save(src)
    with (
        serving(create_app(Settings(plates=True))) as base,
        open_page(browser, base, viewport=LAPTOP) as watched,
    ):
        page = watched.page
        [scan] = scan_upload(page, src)
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-preview-count", "1")
        expect(card.locator(".card-meta")).to_contain_text("no faces found, 1 plate found")
        expect(card).to_contain_text("Text: not looked for (start veil serve with --text on")
        mark = card.locator('.mark[data-kind="plate"]')
        expect(mark).to_have_count(1)
        expect(card.locator(".face")).to_have_count(0)
        expect(mark.locator("text")).to_have_text("Plate 1 Hidden")
        expect(mark).to_have_attribute("aria-label", "Plate 1: hidden — press to keep visible")
        assert rect_box(mark.locator(".outline")) == tuple(scan["marks"][0]["region"])

        index = scan["marks"][0]["index"]
        kept = {"keep_marks": [index], "keep": []}
        preview_done(page, card, mark.locator(".shade").click, kept)
        expect(mark).to_have_attribute("aria-pressed", "true")
        expect(mark.locator("text")).to_have_text("Plate 1 Kept")
        expect(card.locator(".mark-summary")).to_contain_text("Plates: 0 hidden, 1 kept visible")
        shown = picture_of(card.locator("img.preview"))
        assert changed(shown, pixels, plate) < KEPT_MAX_DIFF + 4  # JPEG q85 preview

        # The keyboard way: Tab from the file picker reaches it, Space flips it.
        page.get_by_label("Photos, videos or recordings to clean").focus()
        tab_to(page, "el.classList.contains('mark')")
        preview_done(page, card, lambda: page.keyboard.press("Space"), {"keep_marks": []})
        expect(mark).to_have_attribute("aria-pressed", "false")
        preview_done(page, card, lambda: page.keyboard.press("Space"), kept)
        expect(mark).to_have_attribute("aria-pressed", "true")
        page.screenshot(path=artifacts / "serve-flow8-plate.png")

        with page.expect_download(timeout=90_000):
            card.get_by_role("button", name="Clean and download").click()
        expect(card.locator(".outcome")).to_contain_text("0 plates hidden, 1 kept visible")
        watched.check_clean()


def test_download_all_as_zip(
    browser: Browser,
    server: str,
    photo: Photo,
    shared_data: Path,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    """Two photos dropped on the page; "Download all as zip" cleans both and zips them; a
    removed card's upload is deleted from the server."""
    second = load_photo(shared_data, SECOND, tmp_path / "market.jpg", exif=False)
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        scans = scan_upload(page, photo.path, second.path, drop=True)
        assert [s["name"] for s in scans] == ["street.jpg", "market.jpg"]
        cards = page.locator("article.card")
        expect(cards).to_have_count(2)
        for i in range(2):
            expect(cards.nth(i)).to_have_attribute("data-state", "ready")
        with page.expect_download(timeout=90_000) as download_info:
            page.get_by_role("button", name="Download all as zip").click()
        download = download_info.value
        assert download.suggested_filename == "veil-cleaned.zip"
        for i in range(2):  # each card was cleaned on the way and says so
            expect(cards.nth(i).locator(".outcome")).to_contain_text(verdict_for(page, server))
        page.screenshot(path=artifacts / "serve-flow3-zip.png", full_page=True)
        archive = tmp_path / "all.zip"
        download.save_as(archive)

        # Remove deletes the upload on the server at once, not only the card.
        with page.expect_response(lambda r: "/api/discard" in r.url) as discarded:
            cards.nth(1).get_by_role("button", name="Remove market.jpg").click()
        assert discarded.value.status == 204
        expect(cards).to_have_count(1)
        gone = page.request.get(f"{server}{scans[1]['original']}")
        assert gone.status == 404, "the removed upload is still on the server"
        watched.check_clean()

    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["market.jpg", "street.jpg"]
        for source in (photo, second):
            with Image.open(io.BytesIO(zf.read(source.path.name))) as im:
                assert 0x8825 not in im.getexif()
                pixels = np.asarray(im.convert("RGB"))
            assert pixels.shape == source.pixels.shape
            for truth in source.faces:  # nothing was kept: every true face is obscured
                assert changed(source.pixels, pixels, central(truth)) > HIDDEN_MIN_DIFF


def test_bad_uploads_are_explained_and_the_page_keeps_working(
    browser: Browser, server: str, photo: Photo, artifacts: Path, tmp_path: Path
) -> None:
    """A text file named .jpg and a cut-off JPEG each get a card with a plain-words alert;
    a good photo afterwards works."""
    text = tmp_path / "notes.jpg"
    text.write_text("Meeting at the square at noon. This is not a picture.\n", encoding="utf-8")
    truncated = tmp_path / "cut-off.jpg"
    truncated.write_bytes(photo.path.read_bytes()[: photo.path.stat().st_size // 3])
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        scan_upload(page, text, truncated)
        cards = page.locator("article.card")
        expect(cards).to_have_count(2)
        for i, name in enumerate(["notes.jpg", "cut-off.jpg"]):
            card = cards.nth(i)
            expect(card).to_have_attribute("data-state", "error")
            expect(card.get_by_role("heading")).to_have_text(name)
            alert = card.get_by_role("alert")
            expect(alert).to_have_text(
                re.compile(r"not a photo, video or recording|damaged or incomplete")
            )
            words = alert.inner_text()
            assert "{" not in words and "Traceback" not in words, words
        expect(page.get_by_role("button", name="Download all as zip")).to_be_disabled()
        page.screenshot(path=artifacts / "serve-flow4-errors.png", full_page=True)

        # A good photo afterwards works as usual, and a failed card can be removed.
        [scan] = scan_upload(page, photo.path)
        good = cards.nth(2)
        expect(good).to_have_attribute("data-state", "ready")
        expect(good.locator(".face")).to_have_count(len(scan["faces"]))
        expect(good).to_have_attribute("data-preview-count", "1")
        cards.nth(0).get_by_role("button", name="Remove notes.jpg").click()
        expect(cards).to_have_count(2)
        expect(page.get_by_role("button", name="Download all as zip")).to_be_enabled()
        watched.check_clean()


def make_clip(path: Path, head: Array, face: Box) -> list[Box]:
    """A 2-second H.264 clip, 320x240 at 10 fps, with ``head`` drifting across a backdrop;
    where its ``face`` (a box inside ``head``) is in each frame."""
    boxes = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        height, width = head.shape[:2]
        for i in range(CLIP_FRAMES):
            canvas = backdrop(240, 320)
            left, top = 20 + 4 * i, 40
            canvas[top : top + height, left : left + width] = head
            boxes.append((face[0] + left, face[1] + top, face[2] + left, face[3] + top))
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return boxes


def frames_of(path: Path) -> list[Array]:
    with av.open(str(path)) as container:
        return [
            np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
            for frame in container.decode(video=0)
        ]


def test_video_is_cleaned_whole(
    browser: Browser, server: str, photo: Photo, artifacts: Path, tmp_path: Path
) -> None:
    """A short clip: no edits offered, cleaned and downloaded whole, the face hidden in
    every frame and no frame lost."""
    # A real head from the test photo, pasted at 1.5x so the detector is sure of it.
    x1, y1, x2, y2 = photo.faces[0]
    pad = (x2 - x1) // 2
    hx, hy = max(0, x1 - pad), max(0, y1 - pad)
    head = crop(photo.pixels, (hx, hy, x2 + pad, y2 + pad))
    head = np.asarray(
        Image.fromarray(head).resize((head.shape[1] * 3 // 2, head.shape[0] * 3 // 2))
    )
    fx1, fy1, fx2, fy2 = (round(v * 1.5) for v in (x1 - hx, y1 - hy, x2 - hx, y2 - hy))
    clip = tmp_path / "march.mp4"
    faces = make_clip(clip, head, (fx1, fy1, fx2, fy2))
    before = frames_of(clip)
    assert len(before) == CLIP_FRAMES

    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        [scan] = scan_upload(page, clip)
        assert scan["kind"] == "video" and not scan["editable"]
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-state", "ready")
        expect(card).to_contain_text("every face in every frame will be hidden")
        expect(card).to_contain_text(f"Faces were looked for in {scan['sampled_frames']} sampled")
        # No face to toggle or area to add in a video; its voices can be kept or changed.
        expect(card.locator('.face[role="button"]')).to_have_count(0)
        expect(card.get_by_role("button", name="Add region")).to_have_count(0)
        voice = card.get_by_label("Give speech a new voice")
        expect(voice).to_be_checked()  # strong by default, as the server's --voice
        voice.uncheck()
        expect(voice).not_to_be_checked()
        voice.check()
        expect(card.locator("img.preview")).to_be_hidden()  # no preview before cleaning

        with page.expect_download(timeout=120_000) as download_info:
            card.get_by_role("button", name="Clean and download").click()
        download = download_info.value
        assert download.suggested_filename == "march.mp4"
        out = tmp_path / "cleaned.mp4"
        download.save_as(out)
        expect(card.locator(".outcome")).to_contain_text(verdict_for(page, server))
        # After cleaning, a frame of the result takes the preview's place.
        result = card.locator("img.preview")
        expect(result).to_be_visible()
        expect(result).to_have_attribute("src", re.compile(r"cleaned\.jpg"))
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=result.element_handle()
        )
        page.screenshot(path=artifacts / "serve-flow5-video.png", full_page=True)
        watched.check_clean()

    after = frames_of(out)
    assert len(after) == CLIP_FRAMES
    for i, (a, b, box) in enumerate(zip(before, after, faces, strict=True)):
        assert changed(a, b, central(box)) > HIDDEN_MIN_DIFF, f"face left visible in frame {i}"


def test_a_video_s_new_voice_can_be_heard(
    browser: Browser, server: str, artifacts: Path, tmp_path: Path
) -> None:
    """A clip with speech: cleaned with the voice box ticked (the default), the outcome offers
    the cleaned sound to listen to, from the download itself."""
    pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")
    import cv2

    from clips import make_clip as clip_with_sound
    from voice_helpers import syllables

    speech = syllables(2.0)
    speech48 = cv2.resize(speech[None, :], (len(speech) * 3, 1), interpolation=cv2.INTER_LINEAR)
    clip = tmp_path / "talk.mp4"
    clip_with_sound(clip, frames=20, sound=speech48[0].astype(np.float32))
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        scan_upload(page, clip)
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-state", "ready")
        expect(card.get_by_label("Give speech a new voice")).to_be_checked()
        expect(card.get_by_role("button", name="Hear the new voice")).to_be_visible()
        with page.expect_download(timeout=120_000):
            card.get_by_role("button", name="Clean and download").click()
        outcome = card.locator(".outcome")
        expect(outcome).to_contain_text("speech given a new voice")
        sound = outcome.get_by_label("The sound of the cleaned talk.mp4")
        expect(sound).to_have_attribute("src", re.compile(r"/api/uploads/.+/download"))
        page.screenshot(path=artifacts / "serve-flow6-voice.png", full_page=True)
        watched.check_clean()


def playable(page: Page, audio: Locator) -> None:
    """Wait until the browser has read how long ``audio``'s sound is (it decoded its start)."""
    page.wait_for_function("(a) => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())


def test_a_recording_s_new_voice_is_heard_before_cleaning(
    browser: Browser, server: str, artifacts: Path, tmp_path: Path
) -> None:
    """A tagged recording of speech: a player of the original, its tag and its speech shown,
    no face controls; "Hear the new voice" plays a preview, then it is cleaned with a new
    voice and the cleaned sound is offered to listen to."""
    pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")
    from voice_helpers import tagged_wav

    talk = tmp_path / "talk.wav"
    tagged_wav(talk)
    with open_page(browser, server, viewport=LAPTOP) as watched:
        page = watched.page
        [scan] = scan_upload(page, talk)
        assert scan["kind"] == "recording" and scan["speech"] > 0.5
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-state", "ready")
        expect(card).to_contain_text("Jane Doe")
        expect(card).to_contain_text(re.compile(r"Speech in \d+% of the sound"))
        original = card.get_by_label("The sound of the original talk.wav")
        expect(original).to_have_attribute("src", re.compile(r"/api/uploads/.+/original$"))
        playable(page, original)
        # Nothing to hide or draw: no picture, no faces, no way of hiding them.
        expect(card.locator("img")).to_have_count(0)
        expect(card.locator("fieldset.methods")).to_have_count(0)
        expect(card.get_by_label("Give speech a new voice")).to_be_checked()
        expect(card).to_contain_text("Every clean draws its own new voice")

        preview = card.get_by_label("A new voice for talk.wav")
        expect(preview).to_be_hidden()  # nothing to play until asked for
        card.get_by_role("button", name="Hear the new voice").click()
        expect(card).to_have_attribute("data-voice-preview", "ready")
        expect(preview).to_be_visible()
        expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
        playable(page, preview)

        with page.expect_download(timeout=120_000) as download_info:
            card.get_by_role("button", name="Clean and download").click()
        out = tmp_path / "cleaned.wav"
        download_info.value.save_as(out)
        outcome = card.locator(".outcome")
        expect(outcome).to_contain_text("Speech given a new voice")
        cleaned = outcome.get_by_label("The sound of the cleaned talk.wav")
        expect(cleaned).to_have_attribute("src", re.compile(r"/api/uploads/.+/download"))
        page.screenshot(path=artifacts / "serve-flow7-recording.png", full_page=True)
        watched.check_clean()
    assert b"Jane Doe" not in out.read_bytes() and out.read_bytes()[:4] == b"RIFF"


def touch_drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A one-finger drag, as a phone's touch screen sends it (Playwright only has tap())."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]},
        )
        for t in np.linspace(0.1, 1.0, 8):
            x = start[0] + (end[0] - start[0]) * t
            y = start[1] + (end[1] - start[1]) * t
            cdp.send(
                "Input.dispatchTouchEvent",
                {"type": "touchMove", "touchPoints": [{"x": float(x), "y": float(y)}]},
            )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def test_phone_sized_window(browser: Browser, server: str, photo: Photo, artifacts: Path) -> None:
    """390 px wide: picture above preview, no sideways scrolling, and a finger drag adds an
    area."""
    with open_page(browser, server, viewport=PHONE, is_mobile=True, has_touch=True) as watched:
        page = watched.page
        [scan] = scan_upload(page, photo.path)
        card = page.locator("article.card")
        expect(card).to_have_attribute("data-preview-count", "1")
        picture = card.locator(".original .stage").bounding_box()
        preview = card.locator(".result .stage").bounding_box()
        assert picture and preview
        # Stacked: the preview below the picture, both within the screen's width.
        assert preview["y"] >= picture["y"] + picture["height"] - 1, (picture, preview)
        for box in (picture, preview):
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, box
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"

        # A finger drags out an extra area just as a mouse does.
        area = free_area(scan, photo)
        overlay = card.locator("svg.overlay")
        overlay.scroll_into_view_if_needed()  # touches land on the viewport, as fingers do
        size = (scan["width"], scan["height"])
        touch_drag(
            page,
            to_screen(overlay, size, area[0], area[1]),
            to_screen(overlay, size, area[2], area[3]),
        )
        expect(card.locator(".area")).to_have_count(1)
        drawn = rect_box(card.locator(".area .outline"))
        assert all(abs(a - b) <= 4 for a, b in zip(drawn, area, strict=True)), (drawn, area)
        expect(card.locator('.face[aria-pressed="true"]')).to_have_count(0)
        page.screenshot(path=artifacts / "serve-flow6-phone.png", full_page=True)
        watched.check_clean()
