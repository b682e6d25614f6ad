"""`veil serve` with sound (issue 18): recordings are scanned for their tags and their speech,
played, cleaned with a new voice or kept as they are, and zipped; the speech of a recording or
a video can be heard with a new voice before cleaning (`/api/voice-preview`).

The recording is `voice_helpers.tagged_wav`: 3 s of speech-like syllables whose artist tag is
"Jane Doe". Verification is off: what is tested is what the page does with sound, not the
voice check (tests/voice, tests/verify).
"""

from __future__ import annotations

import io
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'veil[web]'")
pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")

from fastapi.testclient import TestClient

from clips import KINDS, Kind, make_clip
from helpers import astronaut
from veil.pipeline import Pipeline
from veil.settings import Settings
from veil.web.app import create_app
from voice_helpers import RATE, load, syllables, tagged_wav

pytestmark = pytest.mark.web

BASE = "http://127.0.0.1:8765"
RAW = {"content-type": "application/octet-stream"}
PREVIEW_MAX_S = 12.0


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(pipeline=Pipeline(Settings(verify=False))), base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The tagged recording, and its samples as stored."""
    path = tmp_path_factory.mktemp("talk") / "talk.wav"
    return path, tagged_wav(path)


def upload(client: TestClient, name: str, data: bytes) -> dict[str, Any]:
    answer = client.post("/api/scan", params={"name": name}, content=data, headers=RAW)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wav_file(path: Path, sound: np.ndarray[Any, np.dtype[np.float32]]) -> Path:
    """``sound`` (16 kHz mono) as a plain 16-bit WAV without tags."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.round(np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def heard(answer: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A voice preview's WAV, checked to be one, as samples in [-1, 1] (16 kHz mono)."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "audio/wav"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.content[:4] == b"RIFF" and answer.content[8:12] == b"WAVE"
    with wave.open(io.BytesIO(answer.content)) as sound:
        assert (sound.getnchannels(), sound.getsampwidth(), sound.getframerate()) == (1, 2, RATE)
        pcm = np.frombuffer(sound.readframes(sound.getnframes()), "<i2")
    assert 0 < len(pcm) <= PREVIEW_MAX_S * RATE
    return (pcm / 32767).astype(np.float32)


def test_the_page_accepts_recordings(client: TestClient) -> None:
    accepted = set(client.get("/api/config").json()["extensions"])
    assert {".wav", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".flac"} <= accepted
    assert {".jpg", ".mp4"} <= accepted


def test_a_recording_is_scanned_for_its_tags_and_its_speech(
    client: TestClient, talk: tuple[Path, bytes]
) -> None:
    path, _ = talk
    body = upload(client, "talk.wav", path.read_bytes())
    assert (body["kind"], body["format"], body["editable"]) == ("recording", "WAV", False)
    assert body["faces"] == [] and body["sound"] is True
    assert body["speech"] > 0.5 and body["speech_note"] is None
    assert {"name": "Artist", "value": "Jane Doe"}.items() <= body["reveals"][0].items()
    # The page plays the original as it was uploaded, and says what it is.
    played = client.get(body["original"])
    assert played.status_code == 200 and played.content == path.read_bytes()
    assert played.headers["content-type"] == "audio/wav"
    assert played.headers["content-disposition"].startswith("inline")
    # No picture was made of it, and none is offered.
    folder = client.app.state.uploads.root / body["id"]  # type: ignore[attr-defined]
    assert sorted(p.name for p in folder.iterdir()) == ["input.wav"]
    assert client.get(f"/api/uploads/{body['id']}/original.jpg").status_code == 409
    # Nothing to preview or edit in a recording.
    assert client.post("/api/preview", json={"id": body["id"]}).status_code == 409
    edited = client.post("/api/clean", json={"id": body["id"], "keep": [0]})
    assert edited.status_code == 409


@pytest.mark.parametrize("voice", [None, "anonymize", "keep"])
def test_a_recording_is_cleaned_with_a_new_voice_or_its_own(
    client: TestClient, talk: tuple[Path, bytes], tmp_path: Path, voice: str | None
) -> None:
    """The server's --voice (anonymize) or the page's choice: the download is a WAV without
    the artist tag; its samples changed where there is speech, or, kept, identical."""
    path, pcm = talk
    body = upload(client, "talk.wav", path.read_bytes())
    answer = client.post("/api/clean", json={"id": body["id"], "voice": voice})
    assert answer.status_code == 200, answer.text
    done = answer.json()
    kept = voice == "keep"
    assert done["result"]["voice"]["action"] == ("kept" if kept else "anonymized")
    assert "Artist" in done["metadata_removed"] and done["cleaned"] is None
    download = client.get(done["download"])
    assert download.headers["content-type"] == "audio/wav"
    assert download.headers["content-disposition"] == 'attachment; filename="talk.wav"'
    out = tmp_path / "out.wav"
    out.write_bytes(download.content)
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["audio"]
        assert "Jane Doe" not in str(dict(container.metadata))
    assert b"Jane Doe" not in download.content
    assert (download.content[-len(pcm) :] == pcm) == kept
    before, after = load(path), load(out)
    assert len(after) == len(before)
    change = float(np.mean(np.abs(after - before)))
    assert change == 0.0 if kept else change > 0.01, change


def test_zip_holds_cleaned_recordings(client: TestClient, talk: tuple[Path, bytes]) -> None:
    path, _ = talk
    ids = [upload(client, "talk.wav", path.read_bytes())["id"] for _ in range(2)]
    downloads = []
    for upload_id in ids:
        done = client.post("/api/clean", json={"id": upload_id, "voice": "keep"}).json()
        downloads.append(client.get(done["download"]).content)
    answer = client.post("/api/zip", json={"ids": ids})
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["talk.wav", "talk (2).wav"]
        assert [archive.read(n) for n in archive.namelist()] == downloads


def test_the_new_voice_of_a_recording_can_be_heard_before_cleaning(
    client: TestClient, talk: tuple[Path, bytes]
) -> None:
    """A short WAV of the speech, changed; drawn anew each time (nothing kept between)."""
    path, _ = talk
    body = upload(client, "talk.wav", path.read_bytes())
    folder = client.app.state.uploads.root / body["id"]  # type: ignore[attr-defined]
    first = heard(client.post("/api/voice-preview", json={"id": body["id"]}))
    original = load(path)[: len(first)]
    assert len(first) == len(original)  # 3 s of speech from the start: all of it
    assert float(np.mean(np.abs(first - original))) > 0.01, "the voice was not changed"
    again = heard(client.post("/api/voice-preview", json={"id": body["id"]}))
    assert not np.array_equal(first, again), "each preview draws its own voice"
    assert sorted(p.name for p in folder.iterdir()) == ["input.wav"], "nothing is stored"


def test_the_preview_is_the_first_stretch_of_speech_and_at_most_12_s(
    client: TestClient, tmp_path: Path
) -> None:
    """5 s of quiet, then 20 s of speech: the preview starts a little before the speech and
    stops 12 s later."""
    quiet = np.zeros(5 * RATE, np.float32)
    path = wav_file(tmp_path / "late.wav", np.concatenate([quiet, syllables(20.0)]))
    body = upload(client, "late.wav", path.read_bytes())
    answer = client.post("/api/voice-preview", json={"id": body["id"]})
    sound = heard(answer)
    assert len(sound) == PREVIEW_MAX_S * RATE
    start = float(answer.headers["veil-preview-start"])
    assert 4.0 <= start <= 5.0, start
    assert float(answer.headers["veil-preview-seconds"]) == PREVIEW_MAX_S


@pytest.mark.parametrize(
    ("made", "status", "words"),
    [
        ("photo", 409, "no sound"),
        ("hum", 422, "no speech found"),
        ("speech after a minute", 422, "no speech found in the first 60 seconds"),
    ],
)
def test_no_preview_without_sound_or_speech(
    client: TestClient, tmp_path: Path, made: str, status: int, words: str
) -> None:
    if made == "photo":
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(astronaut()).save(out, "PNG")
        name, data = "face.png", out.getvalue()
    else:
        hum = (0.2 * np.sin(2 * np.pi * 120 * np.arange(3 * RATE) / RATE)).astype(np.float32)
        # Only the first minute is searched: speech after it is not found (nor decoded).
        if made != "hum":
            hum = np.concatenate([np.zeros(70 * RATE, np.float32), syllables(3.0)])
        name, data = "sound.wav", wav_file(tmp_path / "sound.wav", hum).read_bytes()
    body = upload(client, name, data)
    answer = client.post("/api/voice-preview", json={"id": body["id"]})
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert answer.json()["type"] in ("Conflict", "UsageError")
    if made == "photo":  # and no sound to play either
        assert client.get(f"/api/uploads/{body['id']}/original").status_code == 409


@pytest.mark.video
def test_a_video_s_speech_can_be_heard_and_one_without_sound_says_so(
    client: TestClient, tmp_path: Path
) -> None:
    import cv2

    speech = syllables(2.0)
    speech48 = cv2.resize(speech[None, :], (len(speech) * 3, 1), interpolation=cv2.INTER_LINEAR)
    talking = tmp_path / "talk.mp4"
    make_clip(talking, frames=20, sound=speech48[0].astype(np.float32))
    body = upload(client, "talk.mp4", talking.read_bytes())
    assert body["kind"] == "video" and body["sound"] and body["speech"] > 0.3
    heard(client.post("/api/voice-preview", json={"id": body["id"]}))

    silent = tmp_path / "silent.mp4"
    make_clip(silent, Kind("mp4", ".mp4", "mp4", KINDS[0].codec, None, "h264"), frames=6)
    body = upload(client, "silent.mp4", silent.read_bytes())
    assert (body["sound"], body["speech"]) == (False, None)
    answer = client.post("/api/voice-preview", json={"id": body["id"]})
    assert answer.status_code == 422 and "no sound" in answer.json()["error"]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "text/plain"}, b'{"id": "x"}', 415),  # a cross-site form's type
        ({"content-type": "application/json", "origin": "http://evil.example"}, b"{}", 403),
        ({"content-type": "application/json", "host": "evil.example:8765"}, b"{}", 403),
        ({"content-type": "application/json"}, b'{"id": "' + b"A" * 22 + b'"}', 404),
        ({"content-type": "application/json"}, b"{}", 422),
    ],
)
def test_the_voice_preview_is_guarded_like_every_request(
    client: TestClient, headers: dict[str, str], body: bytes, status: int
) -> None:
    answer = client.post("/api/voice-preview", headers=headers, content=body)
    assert answer.status_code == status
    assert answer.json()["error"]


def test_the_voice_preview_is_described_by_openapi(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    preview = spec["paths"]["/api/voice-preview"]["post"]
    assert "audio/wav" in preview["responses"]["200"]["content"]
    assert "VoicePreviewIn" in str(preview["requestBody"])
    assert "recording" in str(spec["components"]["schemas"]["Scanned"]["properties"]["kind"])
