"""`veil serve`'s API on its own: scan, preview, clean with a person's edits, download, the
guards (host, origin, content type, limits) and the private, forgetful upload store.

The photo is two astronauts side by side with a full identifying EXIF block: one face is kept
visible, the other obscured, and an area without a face is added.
"""

from __future__ import annotations

import gc
import io
import stat
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'veil[web]'")

from fastapi.testclient import TestClient
from PIL import Image

from clips import frames_of, make_clip
from helpers import (
    ASTRONAUT_FACE,
    SERIAL,
    astronaut,
    central,
    crop,
    exif_block,
    mean_abs_diff,
    png_bomb,
)
from veil.cli import main
from veil.pipeline import Pipeline
from veil.settings import Settings
from veil.web.app import CSP, create_app

pytestmark = pytest.mark.web

BASE = "http://127.0.0.1:8765"
RAW = {"content-type": "application/octet-stream"}
LEFT = ASTRONAUT_FACE  # the first astronaut's face
RIGHT = (ASTRONAUT_FACE[0] + 512, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] + 512, ASTRONAUT_FACE[3])
ADDED = (420, 400, 500, 480)  # the left astronaut's suit: no face there


def two_faces() -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.concatenate([astronaut(), astronaut()], axis=1)


def two_faces_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(two_faces()).save(out, "JPEG", quality=92, exif=exif_block())
    return out.getvalue()


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(Settings(verify=True))


@pytest.fixture(scope="module")
def client(pipeline: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(pipeline=pipeline), base_url=BASE) as c:
        yield c


def upload(client: TestClient, name: str, data: bytes) -> Any:
    return client.post("/api/scan", params={"name": name}, content=data, headers=RAW)


@pytest.fixture(scope="module")
def scanned(client: TestClient) -> dict[str, Any]:
    answer = upload(client, "Dam square.jpg", two_faces_jpeg())
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def face_at(scanned: dict[str, Any], box: tuple[int, int, int, int]) -> int:
    """The index of the face found inside ``box``."""
    for face in scanned["faces"]:
        x1, y1, x2, y2 = face["box"]
        if box[0] <= (x1 + x2) / 2 <= box[2] and box[1] <= (y1 + y2) / 2 <= box[3]:
            return int(face["index"])
    raise AssertionError(f"no face found in {box}: {scanned['faces']}")


def picture_of(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_scan_finds_both_faces_and_says_what_the_metadata_reveals(
    scanned: dict[str, Any],
) -> None:
    assert (scanned["kind"], scanned["editable"], scanned["width"]) == ("photo", True, 1024)
    assert len(scanned["faces"]) == 2
    assert face_at(scanned, LEFT) != face_at(scanned, RIGHT)
    labels = {r["label"]: r["value"] for r in scanned["reveals"]}
    assert labels["Place"].startswith("52.37310° N, 4.89260° E")
    assert labels["Serial number"] == SERIAL
    assert {"Device", "Owner or author", "Time", "Embedded picture"} <= set(labels)
    # the reveals come in the order a person cares about: place first
    assert scanned["reveals"][0]["category"] == "place"
    assert scanned["name"] == "Dam square.jpg"


def test_original_picture_is_the_displayed_photo(client: TestClient, scanned: dict) -> None:
    answer = client.get(scanned["original"])
    assert answer.headers["content-type"] == "image/jpeg"
    shown = picture_of(answer.content)
    assert shown.shape == (512, 1024, 3) and scanned["scale"] == 1.0
    assert mean_abs_diff(shown, two_faces()) < 4


def _edits(scanned: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {"id": scanned["id"], "method": "fill", "keep": [face_at(scanned, LEFT)]}
    body["add"] = [list(ADDED)]
    return {**body, **changes}


def test_preview_shows_the_edits(client: TestClient, scanned: dict[str, Any]) -> None:
    answer = client.post("/api/preview", json=_edits(scanned))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    before, after = picture_of(two_faces_jpeg()), picture_of(answer.content)
    assert mean_abs_diff(crop(after, central(LEFT)), crop(before, central(LEFT))) < 6  # kept
    assert mean_abs_diff(crop(after, central(RIGHT)), crop(before, central(RIGHT))) > 30
    assert mean_abs_diff(crop(after, ADDED), crop(before, ADDED)) > 30  # added, whole box


def test_clean_writes_what_was_previewed_and_verifies_it(
    client: TestClient, scanned: dict[str, Any], tmp_path: Path
) -> None:
    edits = _edits(scanned, method="pixelate")
    preview = picture_of(client.post("/api/preview", json=edits).content)
    answer = client.post("/api/clean", json=edits)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    # The kept face is visible on purpose: verification must not call it a leak.
    assert done["verified"] == "protected", done["result"]
    assert done["unjudged"] == 0
    assert (done["faces_obscured"], done["kept"], done["added"]) == (1, 1, 1)
    assert {"GPS", "BodySerialNumber", "Make"} <= set(done["metadata_removed"])
    assert done["result"]["input"] == "Dam square.jpg"  # no temp path in the report
    download = client.get(done["download"])
    assert "filename*=utf-8''Dam%20square.jpg" in download.headers["content-disposition"]
    out = tmp_path / "out.jpg"
    out.write_bytes(download.content)
    with Image.open(out) as im:
        assert not im.getexif() and "exif" not in im.info
        written = np.asarray(im.convert("RGB"))
    before = picture_of(two_faces_jpeg())
    assert mean_abs_diff(crop(written, central(LEFT)), crop(before, central(LEFT))) < 6
    assert mean_abs_diff(crop(written, central(RIGHT)), crop(before, central(RIGHT))) > 20
    assert mean_abs_diff(crop(written, ADDED), crop(before, ADDED)) > 20
    # What was written is what was previewed (the obscurers' noise is fresh per call, so an
    # obscured face re-made for the download would differ from the preview by ~20 levels).
    assert mean_abs_diff(crop(written, RIGHT), crop(preview, RIGHT)) < 4
    shown = picture_of(client.get(done["cleaned"]).content)
    assert mean_abs_diff(shown, written) < 3


def test_a_face_too_small_to_judge_is_unconfirmed(client: TestClient) -> None:
    """A face under the second opinion's reach: cleaned and downloadable, but the check says
    it could not judge it (unconfirmed, with how many), rather than protected."""
    small = np.asarray(Image.fromarray(astronaut()).resize((150, 150), Image.Resampling.BOX))
    canvas = np.full((240, 320, 3), 90, np.uint8)
    canvas[40:190, 40:190] = small
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, "PNG")
    scan = upload(client, "small.png", out.getvalue()).json()
    answer = client.post("/api/clean", json={"id": scan["id"]})
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["verified"] == "unconfirmed", done["result"]
    assert done["unjudged"] >= 1
    assert done["result"]["verification"]["unjudged"] == done["unjudged"]
    assert client.get(done["download"]).status_code == 200


def test_without_edits_every_face_is_obscured(client: TestClient, scanned: dict) -> None:
    answer = client.post("/api/clean", json={"id": scanned["id"]})
    assert answer.status_code == 200
    assert (answer.json()["faces_obscured"], answer.json()["kept"]) == (2, 0)
    written = picture_of(client.get(answer.json()["download"]).content)
    for face in (LEFT, RIGHT):
        assert mean_abs_diff(crop(written, central(face)), crop(two_faces(), central(face))) > 30


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"keep": [7]}, "not one of the 2 faces"),
        ({"add": [[50, 50, 50, 90]]}, "empty or outside"),
        ({"add": [[5000, 10, 5100, 20]]}, "empty or outside"),
        ({"method": "smudge"}, "method"),
        ({"add": [[1, 2, 3]]}, "add"),
    ],
)
def test_bad_edits_are_refused_in_words(
    client: TestClient, scanned: dict, edits: dict, message: str
) -> None:
    answer = client.post("/api/preview", json={"id": scanned["id"], **edits})
    assert answer.status_code == 422
    assert message in answer.json()["error"]


def test_zip_holds_every_cleaned_file_under_unique_names(client: TestClient) -> None:
    ids = [upload(client, "same.jpg", two_faces_jpeg()).json()["id"] for _ in range(2)]
    refused = client.post("/api/zip", json={"ids": ids})
    assert refused.status_code == 409 and "clean every file" in refused.json()["error"]
    for upload_id in ids:
        assert client.post("/api/clean", json={"id": upload_id}).status_code == 200
    answer = client.post("/api/zip", json={"ids": ids})
    assert answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["same.jpg", "same (2).jpg"]
        assert archive.read("same.jpg")[:2] == b"\xff\xd8"


def _truncated() -> bytes:
    return two_faces_jpeg()[:3000]


@pytest.mark.parametrize(
    ("name", "content", "status", "kind"),
    [
        ("notes.jpg", lambda: b"this is not a photo", 422, "CorruptInput"),
        ("notes.txt", lambda: b"this is not a photo", 415, "UnsupportedFormat"),
        ("cut.jpg", _truncated, 422, "CorruptInput"),
        ("empty.jpg", lambda: b"", 422, "CorruptInput"),
        ("bomb.png", png_bomb, 413, "TooLarge"),
        ("raw.nef", lambda: b"II*\x00" + b"\x00" * 100, 415, "UnsupportedFormat"),
    ],
)
def test_bad_uploads_get_a_clear_error_and_are_not_kept(
    client: TestClient, name: str, content: Any, status: int, kind: str
) -> None:
    uploads = client.app.state.uploads  # type: ignore[attr-defined]
    before = sorted(uploads.root.iterdir())
    answer = upload(client, name, content())
    assert answer.status_code == status, answer.text
    assert answer.json()["type"] == kind and answer.json()["error"]
    assert sorted(uploads.root.iterdir()) == before


def test_upload_over_the_byte_limit_is_refused(pipeline: Pipeline) -> None:
    app = create_app(pipeline=pipeline, max_upload_bytes=10_000)
    with TestClient(app, base_url=BASE) as small:
        answer = upload(small, "big.jpg", two_faces_jpeg())
        assert answer.status_code == 413 and "limit" in answer.json()["error"]
        assert [p.name for p in app.state.uploads.root.iterdir()] == ["owner"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("post", "/api/clean", {"content-type": "text/plain"}, 415),  # a cross-site form's type
        ("post", "/api/scan?name=a.jpg", {"content-type": "multipart/form-data"}, 415),
        (
            "post",
            "/api/clean",
            {"content-type": "application/json", "origin": "http://evil.example"},
            403,
        ),
        ("get", "/api/config", {"host": "evil.example:8765"}, 403),  # DNS rebinding
        ("get", "/api/clean", {}, 405),  # state changes are POST only
        ("get", "/docs", {}, 404),  # no Swagger UI: it would load from a CDN
    ],
)
def test_requests_that_are_not_from_this_page_are_refused(
    client: TestClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    answer = client.request(method, path, headers=headers, content=b"{}")
    assert answer.status_code == status


def test_same_origin_requests_are_accepted(client: TestClient, scanned: dict) -> None:
    headers = {"origin": BASE, "content-type": "application/json"}
    answer = client.post("/api/preview", content=f'{{"id": "{scanned["id"]}"}}', headers=headers)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("path", "cache"),
    [
        ("/", "no-store"),
        ("/api/config", "no-store"),
        ("/api/uploads/nope/original.jpg", "no-store"),  # an error answer too
        ("/static/app.js", "no-cache"),  # kept, but checked each time: never a stale script
        ("/static/style.css", "no-cache"),
    ],
)
def test_every_answer_carries_a_strict_content_security_policy(
    client: TestClient, path: str, cache: str
) -> None:
    answer = client.get(path)
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == cache
    assert "server" not in answer.headers
    assert "script-src 'self';" in CSP and "connect-src 'self'" in CSP


def test_the_picture_of_an_upload_is_not_cached(client: TestClient, scanned: dict) -> None:
    answer = client.get(scanned["original"])
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"


def test_unknown_or_malformed_ids_are_not_found(client: TestClient) -> None:
    for upload_id in ("nope", "../../etc/passwd", "A" * 22):
        answer = client.post("/api/preview", json={"id": upload_id})
        assert answer.status_code == 404 and answer.json()["type"] == "UnknownUpload"


def test_api_is_described_by_openapi(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    for path in ("/api/scan", "/api/preview", "/api/clean", "/api/zip", "/api/discard"):
        assert "post" in spec["paths"][path]
    upload_body = spec["paths"]["/api/scan"]["post"]["requestBody"]["content"]
    assert "application/octet-stream" in upload_body
    assert {"id", "faces", "reveals"} <= set(spec["components"]["schemas"]["Scanned"]["properties"])


def test_uploads_are_private_named_by_the_server_and_deleted(client: TestClient) -> None:
    uploads = client.app.state.uploads  # type: ignore[attr-defined]
    assert stat.S_IMODE(uploads.root.stat().st_mode) == 0o700
    body = upload(client, "../../../tmp/evil name.jpg", two_faces_jpeg()).json()
    folder = uploads.root / body["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["input.jpg", "original.jpg"]
    assert body["name"] == "evil name.jpg"
    assert client.post("/api/discard", json={"id": body["id"]}).status_code == 204
    assert not folder.exists()
    assert client.get(body["original"]).status_code == 404


def test_idle_uploads_expire_and_everything_goes_when_the_server_stops(
    pipeline: Pipeline,
) -> None:
    app = create_app(pipeline=pipeline, idle_seconds=60)
    with TestClient(app, base_url=BASE) as c:
        uploads = app.state.uploads
        first = upload(c, "a.jpg", two_faces_jpeg()).json()["id"]
        uploads.get(first).used -= 120  # idle for two minutes
        second = upload(c, "b.jpg", two_faces_jpeg()).json()["id"]
        assert uploads.sweep() == 1
        assert c.post("/api/preview", json={"id": first}).status_code == 404
        assert c.post("/api/preview", json={"id": second}).status_code == 200
        root = uploads.root
    assert not root.exists()


@pytest.mark.video
def test_video_is_scanned_then_cleaned_whole(client: TestClient, tmp_path: Path) -> None:
    clip = tmp_path / "walk.mp4"
    make_clip(clip, frames=12)
    body = upload(client, "walk.mp4", clip.read_bytes()).json()
    assert (body["kind"], body["editable"], body["frames"]) == ("video", False, 12)
    assert body["faces"] and body["sampled_frames"] >= 1
    assert any(r["name"] == "title" or "Amsterdam" in r["value"] for r in body["reveals"])
    assert client.post("/api/preview", json={"id": body["id"]}).status_code == 409
    edited = client.post("/api/clean", json={"id": body["id"], "keep": [0]})
    assert edited.status_code == 409 and "still photos" in edited.json()["error"]
    done = client.post("/api/clean", json={"id": body["id"]})
    assert done.status_code == 200, done.text
    out = tmp_path / "out.mp4"
    out.write_bytes(client.get(done.json()["download"]).content)
    assert len(frames_of(out)) == 12
    assert client.get(done.json()["cleaned"]).headers["content-type"] == "image/jpeg"


@pytest.mark.video
def test_a_video_s_voices_are_changed_or_kept_as_the_page_asks(
    client: TestClient, tmp_path: Path
) -> None:
    """The page's voice toggle: a new voice by default (the server's --voice), or the sound
    copied unchanged; the answer says which."""
    pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")
    import cv2
    import numpy as np

    from voice_helpers import syllables

    speech = syllables(2.0)
    speech48 = cv2.resize(speech[None, :], (len(speech) * 3, 1), interpolation=cv2.INTER_LINEAR)
    clip = tmp_path / "talk.mp4"
    make_clip(clip, frames=20, sound=speech48[0].astype(np.float32))
    assert client.get("/api/config").json()["voice"] == "anonymize"
    actions = {}
    for voice in (None, "keep"):
        scanned = upload(client, "talk.mp4", clip.read_bytes()).json()
        done = client.post("/api/clean", json={"id": scanned["id"], "voice": voice})
        assert done.status_code == 200, done.text
        actions[voice] = done.json()["result"]["voice"]["action"]
    assert actions == {None: "anonymized", "keep": "kept"}
    bad = client.post("/api/clean", json={"id": scanned["id"], "voice": "mute"})
    assert bad.status_code == 422


def test_serve_warns_loudly_when_not_bound_to_this_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.update(kw, app=app))
    assert main(["serve", "--host", "0.0.0.0", "--port", "9999", "--verify", "off"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0" in err
    assert (started["host"], started["port"], started["access_log"]) == ("0.0.0.0", 9999, False)
    assert started["server_header"] is False  # no "Server: uvicorn" for a prober
    assert main(["serve", "--verify", "off"]) == 0
    assert "WARNING" not in capsys.readouterr().err and started["host"] == "127.0.0.1"


# -- the idle timer, the memory cap -----------------------------------------------------------
@contextmanager
def in_flight(app: Any, fire: Callable[[], Any]) -> Iterator[list[Any]]:
    """Run ``fire`` (a request) in a thread while the reviewer is busy, so the request waits
    in the queue; the block runs while it waits. The answer is in the list after the block."""
    answers: list[Any] = []
    uploads, lock = app.state.uploads, app.state.reviewer.lock
    with lock:
        waiting = threading.Thread(target=lambda: answers.append(fire()))
        waiting.start()
        deadline = time.monotonic() + 10
        while not any(u.users for u in list(uploads._items.values())):
            assert time.monotonic() < deadline, "the request never reached the server"
            time.sleep(0.01)
        yield answers
    waiting.join(10)


def test_an_upload_waiting_for_its_turn_is_not_swept(pipeline: Pipeline) -> None:
    """The idle timer counts from a request's end, and never runs out under one that is
    queued or working: the scan that waited longer than the idle time still answers, and so
    do the requests after it."""
    app = create_app(pipeline=pipeline, idle_seconds=60)
    with TestClient(app, base_url=BASE) as c:
        uploads = app.state.uploads
        with in_flight(app, lambda: upload(c, "queued.jpg", two_faces_jpeg())) as answers:
            (waiting,) = uploads._items.values()
            waiting.used -= 600  # it has waited ten minutes behind other work
            assert uploads.sweep() == 0
        scanned = answers[0]
        assert scanned.status_code == 200, scanned.text
        assert uploads.sweep() == 0  # idle from the scan's end, not from its arrival
        body = {"id": scanned.json()["id"]}
        with in_flight(app, lambda: c.post("/api/preview", json=body)) as answers:
            assert uploads.sweep(now=time.monotonic() + 600) == 0
        assert answers[0].status_code == 200
        assert uploads.sweep(now=time.monotonic() + 600) == 1  # done and idle: it goes
        assert c.post("/api/preview", json=body).status_code == 404


def test_a_discard_while_in_use_waits_for_the_request(pipeline: Pipeline) -> None:
    app = create_app(pipeline=pipeline)
    with TestClient(app, base_url=BASE) as c:
        scanned = upload(c, "a.jpg", two_faces_jpeg()).json()
        folder = app.state.uploads.root / scanned["id"]
        body = {"id": scanned["id"]}
        with in_flight(app, lambda: c.post("/api/clean", json=body)) as answers:
            assert c.post("/api/discard", json=body).status_code == 204
            assert folder.is_dir()  # the clean waiting for its turn still has its files
            assert c.post("/api/preview", json=body).status_code == 404  # but it is gone
        # It is not done once its turn comes (what it wrote would only be deleted), and then
        # the folder goes.
        assert answers[0].status_code == 404, answers[0].text
        assert not folder.exists()


def test_only_the_last_few_uploads_keep_their_pixels(pipeline: Pipeline) -> None:
    """With room for 2, the first two of four uploads lose their pixels, yet their edits,
    preview and clean still work: the file is decoded again, the face numbers unchanged."""
    app = create_app(pipeline=pipeline, held=2)
    with TestClient(app, base_url=BASE) as c:
        uploads = app.state.uploads
        scans = [upload(c, f"{i}.jpg", two_faces_jpeg()).json() for i in range(4)]
        kept = [uploads.get(s["id"]).opened is not None for s in scans]
        assert kept == [False, False, True, True] and len(uploads.held) == 2
        first = scans[0]
        assert c.get(first["original"]).status_code == 200
        edits = _edits(first)
        preview = picture_of(c.post("/api/preview", json=edits).content)
        assert uploads.get(first["id"]).opened is not None  # decoded again, and held
        assert uploads.get(scans[2]["id"]).opened is None  # the oldest made room
        done = c.post("/api/clean", json=edits)
        assert done.status_code == 200, done.text
        assert (done.json()["faces_obscured"], done.json()["kept"]) == (1, 1)
        written = picture_of(c.get(done.json()["download"]).content)
        before = two_faces()
        for shown in (preview, written):
            assert mean_abs_diff(crop(shown, central(LEFT)), crop(before, central(LEFT))) < 6
            assert mean_abs_diff(crop(shown, central(RIGHT)), crop(before, central(RIGHT))) > 30
            assert mean_abs_diff(crop(shown, ADDED), crop(before, ADDED)) > 30
        # A clean of an upload whose pixels went since its preview still writes the edits.
        second = scans[1]
        c.post("/api/preview", json=_edits(second))
        for other in scans[2:]:
            c.post("/api/preview", json={"id": other["id"]})
        assert uploads.get(second["id"]).opened is None
        done = c.post("/api/clean", json=_edits(second))
        assert (done.json()["faces_obscured"], done.json()["kept"]) == (1, 1)
        pixels = weakref.ref(uploads.get(scans[3]["id"]).opened)
        for scan in scans:  # a discard lets go of the pixels: nothing else holds them
            c.post("/api/discard", json={"id": scan["id"]})
        assert len(uploads.held) == 0
        gc.collect()
        assert pixels() is None
