"""`veil serve` with SVG drawings: upload, scan (the drawing as it shows, the faces on it,
what it reveals), clean whole as a video is (no per-face choices), download; a face drawn in
the vectors is refused in words and nothing can be downloaded."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'veil[web]'")
pytest.importorskip("defusedxml", reason="the svg extra is not installed")
pytest.importorskip("resvg_py", reason="the svg extra is not installed")

from fastapi.testclient import TestClient
from PIL import Image

from formats.test_svg import _drawn_face, _embedding, _jpeg, _pictures
from helpers import astronaut, exif_block
from veil.pipeline import Pipeline
from veil.web.app import create_app

pytestmark = pytest.mark.web

BASE = "http://127.0.0.1:8765"
RAW = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(pipeline=Pipeline()), base_url=BASE) as c:
        yield c


def _scan(client: TestClient, name: str, data: bytes) -> dict[str, Any]:
    answer = client.post("/api/scan", params={"name": name}, content=data, headers=RAW)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_drawing_is_scanned_cleaned_and_downloaded(client: TestClient) -> None:
    svg = _embedding(_jpeg(astronaut(), exif_block()))
    scanned = _scan(client, "poster.svg", svg)
    assert scanned["kind"] == "drawing" and not scanned["editable"]
    assert scanned["format"] == "SVG" and (scanned["width"], scanned["height"]) == (1024, 1024)
    # The face is outlined where it shows on the drawing: the picture is placed at (20, 30)
    # and scaled 0.8 in a 480-unit drawing drawn 1024 px wide, so its middle, (225, 118) in
    # the picture, shows at about (427, 265).
    middles = [
        ((x1 + x2) / 2, (y1 + y2) / 2)
        for x1, y1, x2, y2 in (f["box"] for f in scanned["faces"] if f["score"] > 0.5)
    ]
    assert len(middles) == 1 and abs(middles[0][0] - 427) < 30, scanned["faces"]
    assert abs(middles[0][1] - 265) < 30, scanned["faces"]
    original = client.get(scanned["original"])
    assert original.status_code == 200
    edits = {"id": scanned["id"], "method": "fill", "keep": [0]}
    refused = client.post("/api/clean", json=edits)
    assert refused.status_code == 409, refused.text  # no per-face choices in a drawing
    done = client.post("/api/clean", json={"id": scanned["id"], "method": "fill"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "cleaned" and body["faces_obscured"] == 1
    assert "image1:GPS" in body["metadata_removed"]
    assert body["result"]["faces"][0]["image"] == 1
    download = client.get(body["download"]).content
    assert download.startswith(b"<?xml") and b"Jane" not in download
    [picture] = _pictures(download)
    with Image.open(io.BytesIO(picture)) as im:
        assert not im.getexif()
    shown = client.get(body["cleaned"])
    assert shown.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(shown.content))).shape[:2] == (1024, 1024)


def test_a_face_drawn_in_vectors_is_refused_in_words(client: TestClient) -> None:
    scanned = _scan(client, "portrait.svg", _drawn_face())
    answer = client.post("/api/clean", json={"id": scanned["id"], "method": "fill"})
    assert answer.status_code == 415, answer.text
    assert "vector shapes" in answer.json()["error"]
    assert client.get(f"/api/uploads/{scanned['id']}/download").status_code != 200
