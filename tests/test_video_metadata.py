"""Videos are cleaned by a stream-copy remux: nothing identifying is left (ffprobe and exiftool
-ee agree), the audio and video packets are bit-identical, rotation survives, and every
refusal (faces on, AVCHD, corrupt input) says why and writes nothing.

Test videos are made with PyAV at test time: a few H.264 (or VP9) frames with AAC (or Opus)
audio, carrying a title, comment, artist, make/model, creation time, an ISO 6709 location,
track names, a GoPro-style data track with a GPS payload, a chapter and a rotation.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from conftest import read_report
from helpers import exiftool_read, identifying_tags, leftovers

pytestmark = pytest.mark.video

TAGS = {
    "title": "Secret title",
    "comment": "taken at Jane's house",
    "artist": "Jane Q. Photographer",
    "make": "VeilCam",
    "model": "Spy 3000",
    "creation_time": "2021-06-15T13:45:10.000000Z",
    "location": "+52.3731+004.8926+012.5/",
}
TRACK_NAME = "Jane's phone camera"
GPS_PAYLOAD = b"GPS 52.3731 4.8926 secret-track"
CHAPTER = "Chapter at Jane's house"
SECRETS = [*TAGS.values(), TRACK_NAME, CHAPTER, GPS_PAYLOAD.decode()]
# What ffprobe may still show: container structure and the harmless track facts we keep.
FFPROBE_HARMLESS = {
    "major_brand",
    "minor_version",
    "compatible_brands",
    "language",
    "handler_name",
    "vendor_id",
    "DURATION",
    "encoder",  # Matroska's mandatory writing-application field, "Lavf" in bitexact mode
}
GENERIC_HANDLERS = {"VideoHandler", "SoundHandler"}


@dataclass(frozen=True)
class Clip:
    id: str
    ext: str
    muxer: str
    video: str
    audio: str
    rotation: int | None = None
    data_track: bool = False
    chapters: bool = False


CLIPS = [
    Clip("mp4", ".mp4", "mp4", "h264", "aac", rotation=90, data_track=True, chapters=True),
    Clip("mov", ".mov", "mov", "h264", "aac", rotation=-90, chapters=True),
    Clip("m4v", ".m4v", "mp4", "mpeg4", "aac"),
    Clip("3gp", ".3gp", "3gp", "h264", "aac", rotation=180),
    Clip("mkv", ".mkv", "matroska", "h264", "aac", rotation=90, chapters=True),
    Clip("webm", ".webm", "webm", "libvpx-vp9", "libopus"),
]


def make_clip(clip: Clip, path: Path, frames: int = 12) -> None:
    """A short video with every kind of identifying metadata PyAV can write for ``clip``."""
    with av.open(str(path), "w", format=clip.muxer) as out:
        out.metadata.update(TAGS)
        video = out.add_stream(clip.video, rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.metadata.update(handler_name=TRACK_NAME, creation_time=TAGS["creation_time"])
        if clip.rotation is not None:
            video.set_display_rotation(clip.rotation)
        audio = out.add_stream(clip.audio, rate=48000)
        audio.layout = "mono"
        audio.metadata["language"] = "eng"
        data = out.add_data_stream("bin_data") if clip.data_track else None
        if clip.chapters:
            out.set_chapters(
                [
                    {
                        "id": 1,
                        "start": 0,
                        "end": 2,
                        "time_base": Fraction(1, 10),
                        "metadata": {"title": CHAPTER},
                    }
                ]
            )
        rng = np.random.default_rng(7)
        for i in range(frames):
            pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            if data is not None:
                packet = av.Packet(GPS_PAYLOAD)
                packet.stream, packet.time_base = data, Fraction(1, 25)
                packet.pts = packet.dts = i
                out.mux(packet)
        out.mux(video.encode())
        samples = 48000 * frames // 25
        tone = np.sin(np.arange(samples) / 8.0).astype(np.float32)[None, :] * 0.2
        sound = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        sound.sample_rate, sound.pts = 48000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())


# -- oracles -------------------------------------------------------------------------------
def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    tool = shutil.which("ffprobe")
    if tool is None:
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg): the video oracle")
    proc = subprocess.run(
        [tool, "-v", "error", "-of", "json", *args, "--", str(path)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def probe_streams(path: Path) -> dict[str, Any]:
    return ffprobe(path, "-show_format", "-show_streams", "-show_chapters")


def packet_hashes(path: Path) -> dict[int, list[tuple[str, float]]]:
    """ffprobe's SHA-256 of every packet and its time, per stream (an independent reader)."""
    rows = ffprobe(
        path,
        "-show_data_hash",
        "sha256",
        "-show_entries",
        "packet=stream_index,pts_time,data_hash,size",
    )["packets"]
    by_stream: dict[int, list[tuple[str, float]]] = {}
    for row in rows:
        if int(row.get("size", 0)):
            by_stream.setdefault(row["stream_index"], []).append(
                (row["data_hash"], float(row.get("pts_time", "nan")))
            )
    return by_stream


def rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(side["rotation"])
    return 0


def leftover_tags(info: dict[str, Any]) -> dict[str, str]:
    """Tags ffprobe still sees beyond container structure and generic track names."""
    found = {}
    for scope in [info["format"], *info["streams"]]:
        for key, value in scope.get("tags", {}).items():
            harmless = key in FFPROBE_HARMLESS and not (
                key == "handler_name" and value not in GENERIC_HANDLERS
            )
            if key == "encoder" and value != "Lavf":
                harmless = False
            if not harmless:
                found[key] = value
    return found


# -- cleaning made videos ------------------------------------------------------------------
@pytest.mark.parametrize("clip", CLIPS, ids=[c.id for c in CLIPS])
def test_video_is_cleaned_losslessly(clip: Clip, tmp_path: Path, cli, exiftool: str) -> None:
    src = tmp_path / "in" / f"clip{clip.ext}"
    src.parent.mkdir()
    make_clip(clip, src)
    before = probe_streams(src)
    assert leftover_tags(before), "the test clip carries identifying tags"
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    out = tmp_path / "out" / src.name
    assert row["status"] == "cleaned", row["error"]
    assert row["output"] == str(out)
    removed = set(row["metadata_removed"])
    assert {"Location", "CreationTime"} <= removed
    if clip.muxer != "3gp":  # FFmpeg's 3GP muxer writes no title, comment or artist
        assert {"Title", "Comment", "Artist"} <= removed
    if clip.data_track:
        assert "TelemetryTrack" in row["metadata_removed"]
    after = probe_streams(out)
    kinds_before = [s["codec_type"] for s in before["streams"]]
    assert [s["codec_type"] for s in after["streams"]] == [
        k for k in kinds_before if k in ("video", "audio")
    ]
    assert leftover_tags(after) == {}
    assert after.get("chapters", []) == []
    # The picture still plays the right way up.
    assert rotation(after["streams"][0]) == rotation(before["streams"][0])
    if clip.rotation:
        assert rotation(after["streams"][0]) != 0
    # Stream copy: every audio and video packet is the same bytes at the same time.
    hashes_before, hashes_after = packet_hashes(src), packet_hashes(out)
    kept = [s["index"] for s in before["streams"] if s["codec_type"] in ("video", "audio")]
    for new_index, old_index in enumerate(kept):
        old, new = hashes_before[old_index], hashes_after[new_index]
        assert [h for h, _ in new] == [h for h, _ in old]
        assert all(abs(a - b) <= 0.001 for (_, a), (_, b) in zip(old, new, strict=True))
    # The METRICS.md oracle, embedded documents and timed streams included.
    (tags,) = exiftool_read(out)
    assert identifying_tags(tags) == []
    raw = out.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    assert not leftovers(tmp_path)


def test_scan_names_what_a_video_reveals(tmp_path: Path, cli) -> None:
    src = tmp_path / "clip.mov"
    make_clip(CLIPS[0], src.with_suffix(".mp4"))
    make_clip(CLIPS[1], src)

    run = cli("scan", "--json", "--faces", "off", src, src.with_suffix(".mp4"))

    assert run.code == 0, run.err
    mov, mp4 = json.loads(run.out)
    assert mov["format"] == "QuickTime"
    assert (mov["width"], mov["height"]) == (64, 48)
    found = {f["name"]: f for f in mov["metadata"]}
    assert found["Location"]["category"] == "place"
    assert found["Location"]["value"].startswith("52.37310° N, 4.89260° E")
    assert found["Make"]["value"] == "VeilCam"
    assert found["Model"]["value"] == "Spy 3000"
    assert found["CreationTime"]["category"] == "time"
    assert found["Title"]["value"] == "Secret title"
    mp4_found = {f["name"]: f for f in mp4["metadata"]}
    assert mp4_found["TelemetryTrack"]["value"].startswith("telemetry track (GPS, sensors)")
    assert mp4_found["TelemetryTrack"]["category"] == "place"


def test_scan_says_faces_in_video_were_not_looked_for(tmp_path: Path, cli) -> None:
    src = tmp_path / "clip.mp4"
    make_clip(CLIPS[0], src)
    run = cli("scan", src)
    assert run.code == 0, run.err
    assert "not scanned (video)" in run.out and "none found" not in run.out


def test_scan_of_a_cleaned_video_finds_nothing(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    make_clip(CLIPS[0], src)
    assert cli("clean", src, "-o", tmp_path / "out", "--faces", "off").code == 0

    run = cli("scan", "--json", "--faces", "off", tmp_path / "out" / "clip.mp4")

    (report,) = json.loads(run.out)
    assert report["error"] is None
    assert report["metadata"] == []


# -- refusals ------------------------------------------------------------------------------
def test_faces_on_refuses_video_and_says_how(tmp_path: Path, cli) -> None:
    """Fail closed: faces in video cannot be obscured yet, so no video is written with them."""
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    make_clip(CLIPS[0], src)
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--report", report)

    (row,) = read_report(report)
    assert row["status"] == "skipped"
    assert row["output"] is None
    assert "--faces off" in row["error"] and "video" in row["error"]
    assert not (tmp_path / "out" / "clip.mp4").exists()
    assert run.code == 0


def _mp4_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.mp4"
    make_clip(CLIPS[0], path, frames=25)
    return path.read_bytes()


def _mkv_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.mkv"
    make_clip(CLIPS[4], path, frames=25)
    return path.read_bytes()


@dataclass(frozen=True)
class BadVideo:
    name: str
    content: Callable[[Path], bytes]
    status: str
    reason: str


BAD_VIDEOS = [
    BadVideo("empty.mp4", lambda _: b"", "failed", r"CorruptInput.*empty"),
    BadVideo("empty.mkv", lambda _: b"", "failed", r"CorruptInput.*empty"),
    BadVideo(
        "header_only.mp4",
        lambda _: b"\x00\x00\x00\x18ftypmp42" + bytes(200),
        "failed",
        r"CorruptInput.*cannot read MP4",
    ),
    BadVideo("truncated.mp4", lambda d: _mp4_bytes(d)[:-900], "failed", r"CorruptInput.*MP4"),
    BadVideo(
        "truncated.mkv",
        lambda d: _mkv_bytes(d)[: len(_mkv_bytes(d)) // 2],
        "failed",
        r"CorruptInput.*truncated",
    ),
    BadVideo("random.mov", lambda _: bytes(range(256)) * 8, "failed", r"CorruptInput"),
    BadVideo(
        "camera.mts", lambda _: b"\x47" + bytes(187), "skipped", r"AVCHD.*H\.264 stream itself"
    ),
    BadVideo("old.avi", lambda _: b"RIFF" + bytes(60), "skipped", r"AVI"),
]


@pytest.mark.parametrize("case", BAD_VIDEOS, ids=[c.name for c in BAD_VIDEOS])
def test_bad_video_is_refused_with_no_output(case: BadVideo, tmp_path: Path, cli) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / case.name).write_bytes(case.content(tmp_path))
    report = tmp_path / "report.jsonl"

    run = cli("clean", folder, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    (row,) = read_report(report)
    assert row["status"] == case.status, row["error"]
    assert row["output"] is None
    assert re.search(case.reason, row["error"]), row["error"]
    assert "object at 0x" not in row["error"]
    assert not (tmp_path / "out" / case.name).exists()
    assert not leftovers(tmp_path)
    assert run.code == (1 if case.status == "failed" else 0)


# -- real files ----------------------------------------------------------------------------
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".mkv", ".webm", ".avi", ".mts"}
VIDEO_SUFFIXES |= {".m2ts", ".wmv", ".flv"}
# Outcomes seen on the shared corpus; a change is a regression (or an improvement to record).
EXPECTED = {
    "with-gps.mov": "cleaned",
    "with-gps.mp4": "cleaned",
    "FLIR Thermal.mp4": "cleaned",
    "Issue 515 (java).mp4": "cleaned",
    "sample_iPod.m4v": "cleaned",
    "sample.3gp": "skipped",  # AMR audio
    "Sony ILCE-7M3 (A7M3).mts": "skipped",
    "Matroska.mkv": "failed",  # exiftool's test file: headers only
    "QuickTime.mov": "failed",  # exiftool's test file: no media data
}


def _real_videos(data: Path) -> list[Path]:
    folders = [data / "metadata" / "metadata-extractor", data / "metadata" / "exiftool-t-images"]
    return sorted(
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


@pytest.mark.realdata
@pytest.mark.slow
def test_real_videos_are_cleaned_or_refused(
    shared_data: Path, tmp_path: Path, cli, exiftool: str
) -> None:
    videos = _real_videos(shared_data)
    if not videos:
        pytest.skip(f"no video files under {shared_data / 'metadata'}")
    folder = tmp_path / "in"
    folder.mkdir()
    for video in videos:
        shutil.copyfile(video, folder / video.name)
    report = tmp_path / "report.jsonl"

    cli("clean", folder, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    rows = {Path(r["input"]).name: r for r in read_report(report)}
    assert len(rows) == len(videos)
    for name, row in rows.items():
        out = tmp_path / "out" / name
        if row["status"] == "cleaned":
            (tags,) = exiftool_read(out)
            assert identifying_tags(tags) == [], (name, identifying_tags(tags))
        else:
            assert row["status"] in ("skipped", "failed")
            assert row["error"], f"{name} refused without a reason"
            assert not out.exists()
        if name in EXPECTED:
            assert row["status"] == EXPECTED[name], (name, row["error"])
    assert not leftovers(tmp_path)
