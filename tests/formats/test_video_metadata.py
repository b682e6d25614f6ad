"""Videos are cleaned by a stream-copy remux: nothing identifying is left (ffprobe and exiftool
-ee agree), the audio, video and kept subtitle packets are bit-identical, rotation survives,
subtitle tracks carrying drone telemetry are dropped, and every refusal (faces on, AVCHD,
corrupt input) says why and writes nothing.

Test videos are made with PyAV at test time: a few H.264 (or VP9, MPEG-4 Part 2, MJPEG) frames
with AAC (or Opus, MP3, PCM) audio, carrying a title, comment, artist, make/model, creation
time, an ISO 6709 location, track names, a GoPro-style data track with a GPS payload, a
chapter, a rotation and, where asked, a subtitle track (SubRip, MP4 timed text, DVD bitmaps).
AVI files carry the RIFF INFO tags and, in one test, camera data in a stream header.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.stream import Disposition

from helpers import exiftool_read, identifying_tags, leftovers, read_report
from veil import Pipeline, Settings
from veil.errors import CorruptInput, VerificationFailed
from veil.formats import handler_for
from veil.formats.video import VideoHandler, is_telemetry, open_input

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
SUBTITLE_TITLE = "Jane's subtitles"
DIALOGUE = ("Meet me at 10.30, OK?", "Bring the <i>map</i>.", "Turn the GPS off!")
# What DJI drones write, one cue per frame (Mini/Air firmware, then Phantom 3).
DJI_CUES = (
    '<font size="28">FrameCnt: 1, DiffTime: 33ms\n2021-08-14 15:02:31.140\n'
    "[iso : 100] [shutter : 1/1000.0] [fnum : 280] [latitude: 22.632435] "
    "[longitude: 113.823713] [altitude: 73.600000] </font>",
    "GPS(113.8237,22.6324,73) BAROMETER:72.8",
)
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
GENERIC_HANDLERS = {"VideoHandler", "SoundHandler", "SubtitleHandler"}


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
    Clip("wmv", ".wmv", "asf", "wmv2", "wmav2"),  # Windows Media (ASF)
]
CLIPS_ASF = CLIPS[-1]


def make_clip(
    clip: Clip,
    path: Path,
    frames: int = 12,
    cues: Sequence[str] = (),
    subtitle: str = "subrip",
    muxer: str | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """A short video with every kind of identifying metadata PyAV can write for ``clip``
    (``tags`` for the container), and a French subtitle track (codec ``subtitle``) when there
    are ``cues``."""
    with av.open(str(path), "w", format=muxer or clip.muxer) as out:
        out.metadata.update(TAGS if tags is None else tags)
        video = out.add_stream(clip.video, rate=25)
        video.width, video.height = 64, 48
        video.pix_fmt = "yuvj420p" if clip.video == "mjpeg" else "yuv420p"
        video.metadata.update(handler_name=TRACK_NAME, creation_time=TAGS["creation_time"])
        if clip.muxer == "avi":  # AVI names a track only by its title ("strn")
            video.metadata["title"] = TRACK_NAME
        if clip.rotation is not None:
            video.set_display_rotation(clip.rotation)
        audio = out.add_stream(clip.audio, rate=48000)
        audio.layout = "mono"
        if clip.audio == "wmav2":
            audio.bit_rate = 64_000  # it has no default
        audio.metadata["language"] = "eng"
        data = out.add_data_stream("bin_data") if clip.data_track else None
        if cues:
            _mux_cues(out, subtitle, cues)
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


def _mux_cues(out: av.container.OutputContainer, codec: str, cues: Sequence[str]) -> None:
    """A subtitle track of ``cues``, 120 ms each with 40 ms gaps, muxed as already encoded
    (PyAV has no subtitle encoder): MP4 timed text prefixes each cue with its length."""
    track = out.add_mux_stream(codec, time_base=Fraction(1, 1000))
    track.metadata.update(language="fra", title=SUBTITLE_TITLE)
    track.disposition = Disposition.default | Disposition.forced
    for number, cue in enumerate(cues):
        payload = cue.encode()
        if codec == "mov_text":
            payload = struct.pack(">H", len(payload)) + payload
        packet = av.Packet(payload)
        packet.stream, packet.time_base = track, Fraction(1, 1000)
        packet.pts = packet.dts = number * 160
        packet.duration = 120
        out.mux(packet)


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


def packet_hashes(path: Path) -> dict[int, list[tuple[str, float, int]]]:
    """ffprobe's SHA-256 of every packet, its time and size, per stream (an independent
    reader)."""
    rows = ffprobe(
        path,
        "-show_data_hash",
        "sha256",
        "-show_entries",
        "packet=stream_index,pts_time,data_hash,size",
    )["packets"]
    by_stream: dict[int, list[tuple[str, float, int]]] = {}
    for row in rows:
        if int(row.get("size", 0)):
            by_stream.setdefault(row["stream_index"], []).append(
                (row["data_hash"], float(row.get("pts_time", "nan")), int(row["size"]))
            )
    return by_stream


def assert_copied(src: Path, out: Path, kept: list[int]) -> None:
    """Stream ``kept[i]`` of ``src`` is stream i of ``out``, packet for packet: the same bytes
    at the same times (ffprobe's reading). MP4 timed text is compared without the two-byte
    empty samples that end its cues, which FFmpeg's muxer writes where it needs them."""
    before, after = packet_hashes(src), packet_hashes(out)
    codecs = [s["codec_name"] for s in probe_streams(src)["streams"]]
    assert len(after) == len(kept)
    for new_index, old_index in enumerate(kept):
        old, new = before[old_index], after[new_index]
        if codecs[old_index] == "mov_text":
            old, new = [p for p in old if p[2] != 2], [p for p in new if p[2] != 2]
        assert [h for h, _, _ in new] == [h for h, _, _ in old]
        assert all(abs(a[1] - b[1]) <= 0.001 for a, b in zip(old, new, strict=True))


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
    assert_copied(src, out, [s["index"] for s in before["streams"] if s["codec_type"] != "data"])
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


def test_scan_says_faces_in_video_were_sampled(tmp_path: Path, cli) -> None:
    src = tmp_path / "clip.mp4"
    make_clip(CLIPS[0], src)
    run = cli("scan", src)
    assert run.code == 0, run.err
    assert "none found in 1 sampled key frame\n" in run.out  # noise: no face in it


def test_scan_of_a_cleaned_video_finds_nothing(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    make_clip(CLIPS[0], src)
    assert cli("clean", src, "-o", tmp_path / "out", "--faces", "off").code == 0

    run = cli("scan", "--json", "--faces", "off", tmp_path / "out" / "clip.mp4")

    (report,) = json.loads(run.out)
    assert report["error"] is None
    assert report["metadata"] == []


# -- AVI ------------------------------------------------------------------------------------
# RIFF INFO tags; FFmpeg's AVI muxer also writes ISFT ("Lavf...") into the test file itself.
AVI_TAGS = {
    "title": TAGS["title"],
    "comment": TAGS["comment"],
    "artist": TAGS["artist"],
    "copyright": "(c) Jane Q. Photographer",
    "date": "2021-06-15",
    "ISBJ": "Jane's birthday",
    "IENG": "John Q. Engineer",
    "IKEY": "jane; house",
}
AVI_CLIPS = [
    Clip("avi-mpeg4-mp3", ".avi", "avi", "mpeg4", "libmp3lame"),
    Clip("avi-mjpeg-pcm", ".avi", "avi", "mjpeg", "pcm_s16le"),
]


@pytest.mark.parametrize("clip", AVI_CLIPS, ids=[c.id for c in AVI_CLIPS])
def test_avi_is_cleaned_losslessly(clip: Clip, tmp_path: Path, cli, exiftool: str) -> None:
    src = tmp_path / "in" / "clip.avi"
    src.parent.mkdir()
    make_clip(clip, src, tags=AVI_TAGS)
    before = probe_streams(src)
    assert leftover_tags(before).keys() >= {"title", "artist", "IENG", "software"}
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    out = tmp_path / "out" / src.name
    assert row["status"] == "cleaned", row["error"]
    assert set(row["metadata_removed"]) >= {
        "Title",
        "Comment",
        "Artist",
        "Copyright",
        "Date",
        "Description",
        "Author",
        "Keywords",
        "Software",
    }
    after = probe_streams(out)
    assert [s["codec_type"] for s in after["streams"]] == ["video", "audio"]
    assert leftover_tags(after) == {}  # no INFO list, and no ISFT naming FFmpeg
    assert_copied(src, out, [0, 1])
    (tags,) = exiftool_read(out)
    assert identifying_tags(tags) == []
    raw = out.read_bytes()
    for secret in [*AVI_TAGS.values(), TRACK_NAME]:
        assert secret.encode() not in raw, secret
    assert b"ISFT" not in raw and b"Lavf" not in raw


def _exif_make(make: str) -> bytes:
    """A little-endian TIFF directory with one Make entry, as cameras put into "strd"."""
    value = make.encode() + b"\0"
    entry = struct.pack("<HHII", 0x010F, 2, len(value), 2 + 12 + 4)  # Make, ASCII, at offset
    return struct.pack("<H", 1) + entry + struct.pack("<I", 0) + value


def _put_stream_data(path: Path, payload: bytes) -> None:
    """Write a "strd" chunk into the first stream header list, in place of the JUNK padding
    FFmpeg leaves there (so no size or offset elsewhere changes)."""
    data = bytearray(path.read_bytes())
    junk = data.find(b"JUNK")
    assert 0 < junk < data.find(b"movi"), "FFmpeg left no padding in the stream header"
    size = int.from_bytes(data[junk + 4 : junk + 8], "little")
    payload += bytes(len(payload) % 2)
    chunk = b"strd" + struct.pack("<I", len(payload)) + payload
    rest = size - len(chunk)
    data[junk : junk + 8 + size] = chunk + b"JUNK" + struct.pack("<I", rest) + bytes(rest)
    path.write_bytes(bytes(data))


def test_avi_camera_data_in_a_stream_header_is_dropped(tmp_path: Path, cli) -> None:
    """FFmpeg hands an MJPEG stream's "strd" chunk (Pentax and Fujifilm maker notes) to the
    codec as setup data; copied as is, the muxer would write it into the new stream header."""
    src = tmp_path / "in" / "camera.avi"
    src.parent.mkdir()
    make_clip(AVI_CLIPS[1], src, tags={})
    _put_stream_data(src, b"AVIF" + bytes(4) + _exif_make("VeilCam"))

    scan = cli("scan", "--json", "--faces", "off", src)
    found = {f["name"]: f["value"] for f in json.loads(scan.out)[0]["metadata"]}
    assert found["Make"] == "VeilCam"
    assert found["StreamData"].startswith("camera data in the AVI stream header")
    report = tmp_path / "report.jsonl"
    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned", row["error"]
    assert {"Make", "StreamData"} <= set(row["metadata_removed"])
    out = tmp_path / "out" / src.name
    assert b"VeilCam" not in out.read_bytes()
    assert_copied(src, out, [0, 1])


def _riff(form: bytes, body_size: int, declared: int | None = None) -> bytes:
    size = 4 + body_size if declared is None else declared
    return b"RIFF" + struct.pack("<I", size) + form + bytes(body_size)


@dataclass(frozen=True)
class RiffCase:
    name: str
    content: bytes
    truncated: bool


RIFF_CASES = [
    RiffCase("whole", _riff(b"AVI ", 100), False),
    RiffCase("cut short", _riff(b"AVI ", 100, declared=5000), True),
    # The pad byte after an odd-sized last chunk may be missing: the file is still whole.
    RiffCase("odd size, no pad byte", _riff(b"AVI ", 101), False),
    RiffCase("size never written", _riff(b"AVI ", 100, declared=0), False),
    RiffCase("bytes after the RIFF chunk", _riff(b"AVI ", 100) + b"trailing", False),
    RiffCase("OpenDML whole", _riff(b"AVI ", 100) + _riff(b"AVIX", 50), False),
    RiffCase("OpenDML cut", _riff(b"AVI ", 100) + _riff(b"AVIX", 50, declared=900), True),
    RiffCase("OpenDML after a pad byte", _riff(b"AVI ", 99) + b"\0" + _riff(b"AVIX", 8, 400), True),
]


@pytest.mark.parametrize("case", RIFF_CASES, ids=[c.name for c in RIFF_CASES])
def test_avi_length_is_judged_by_its_riff_chunks(case: RiffCase, tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    path.write_bytes(case.content)
    handler = handler_for(path)
    assert isinstance(handler, VideoHandler) and handler.name == "AVI"
    if case.truncated:
        with pytest.raises(CorruptInput, match=r"AVI file is truncated"):
            handler.check_whole(path)
    else:
        handler.check_whole(path)


# -- subtitles --------------------------------------------------------------------------------
TELEMETRY = [
    DJI_CUES[0],
    DJI_CUES[1],
    "[iso : 100] [shutter : 1/1000.0] [fnum : 280] [latitude: 22.632435] "
    "[longitude: 113.823713] [altitude: 73.600000]",
    "F/2.8, SS 1/320, ISO 100, EV 0, GPS (8.6465, 49.3915, 19), D 24.36m, H 6.70m",
    "[latitude : 22.632435] [longtitude : 113.823713] [rel_alt: 1.200 abs_alt: 73.600]",
    "HOME(113.8237,22.6324) 2017.08.05 14:02:11",
    "N22.632435 E113.823713 45km/h",
    "-33.856800, 151.215300",
    "Lat 22.632435 Lon 113.823713",
    "22°37'56.8\"N 113°49'25.4\"E",
    "ALT:73",
]
SPEECH = [
    "Meet me at 10.30, OK?",
    "Bring the <i>map</i>.",
    "Turn the GPS off, they're tracking us!",
    "We flew at altitude all night.",
    "It was 12.50, or 3 for 30.00.",
    "Pi is about 3.14159.",
    "Version 2.0.1, released 2021-08-14.",
    "At 15:02:31 the train left platform 9.",
]


@pytest.mark.parametrize("text", TELEMETRY)
def test_telemetry_cues_are_recognised(text: str) -> None:
    assert is_telemetry(text)


@pytest.mark.parametrize("text", SPEECH)
def test_speech_is_not_taken_for_telemetry(text: str) -> None:
    assert not is_telemetry(text)


@dataclass(frozen=True)
class Subtitled:
    id: str
    clip: Clip
    codec: str
    cues: tuple[str, ...]
    kept: bool
    removed: str | None = None  # what scan says about a dropped track
    muxer: str | None = None  # what makes the file, when not the clip's own muxer


# No data track and no chapters: FFmpeg writes MP4 chapters as a track of their own.
PLAIN_MP4 = Clip("mp4", ".mp4", "mp4", "h264", "aac", rotation=90)
SUBTITLED = [
    Subtitled("mkv-srt-dialogue", CLIPS[4], "subrip", DIALOGUE, kept=True),
    Subtitled("mp4-mov_text-dialogue", PLAIN_MP4, "mov_text", DIALOGUE, kept=True),
    Subtitled(
        "mkv-srt-drone",
        CLIPS[4],
        "subrip",
        DJI_CUES,
        kept=False,
        removed="subtitle track with GPS/telemetry (drone)",
    ),
    Subtitled(
        "mp4-mov_text-drone",
        PLAIN_MP4,
        "mov_text",
        DJI_CUES,
        kept=False,
        removed="subtitle track with GPS/telemetry (drone)",
    ),
    # A .webm file that is Matroska inside: the WebM muxer takes WebVTT subtitles only.
    Subtitled(
        "webm-srt",
        CLIPS[5],
        "subrip",
        DIALOGUE,
        kept=False,
        removed="subtitle track in srt format, which a webm file cannot hold",
        muxer="matroska",
    ),
    # Bitmap subtitles are pictures: text-like bytes in them are not read as text.
    Subtitled("mkv-dvd-bitmaps", CLIPS[4], "dvd_subtitle", DJI_CUES, kept=True),
]


@pytest.mark.parametrize("case", SUBTITLED, ids=[c.id for c in SUBTITLED])
def test_subtitles_are_copied_unless_they_carry_telemetry(
    case: Subtitled, tmp_path: Path, cli, exiftool: str
) -> None:
    src = tmp_path / "in" / f"clip{case.clip.ext}"
    src.parent.mkdir()
    make_clip(case.clip, src, cues=case.cues, subtitle=case.codec, muxer=case.muxer)
    before = probe_streams(src)
    assert [s["codec_type"] for s in before["streams"]][-1] == "subtitle"
    report = tmp_path / "report.jsonl"

    scan = cli("scan", "--json", "--faces", "off", src)
    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    found = [f for f in json.loads(scan.out)[0]["metadata"] if f["name"] == "SubtitleTrack"]
    assert [f["value"] for f in found] == ([] if case.kept else [case.removed])
    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned", row["error"]
    assert ("SubtitleTrack" in row["metadata_removed"]) is not case.kept
    out = tmp_path / "out" / src.name
    after = probe_streams(out)
    kinds = ["video", "audio", "subtitle"] if case.kept else ["video", "audio"]
    assert [s["codec_type"] for s in after["streams"]] == kinds
    assert leftover_tags(after) == {}  # the track's title is gone
    assert_copied(src, out, list(range(len(kinds))))
    raw = out.read_bytes()
    assert SUBTITLE_TITLE.encode() not in raw
    if case.kept:
        old, new = before["streams"][-1], after["streams"][-1]
        assert new["tags"]["language"] == "fra"
        for flag in ("default", "forced"):
            assert new["disposition"][flag] == old["disposition"][flag], flag
    else:
        assert b"22.632435" not in raw and b"113.8237" not in raw
    (tags,) = exiftool_read(out)
    assert identifying_tags(tags) == []


ASS_SCRIPT = """[Script Info]
; Script generated by Aegisub 3.2.2
Title: Jane's holiday
Original Script: Jane Q. Photographer
ScriptType: v4.00+
PlayResX: 640
PlayResY: 480

[Aegisub Project Garbage]
Video File: /home/jane/Videos/holiday.mp4

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, Bold, Alignment
Style: Default,Arial,20,&H00FFFFFF,0,2

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.00,0:00:00.12,Default,,0,0,0,,Meet me at 10.30, OK?
Dialogue: 0,0:00:00.16,0:00:00.28,Default,,0,0,0,,Bring the map.
"""
ASS_SECRETS = ("Jane's holiday", "Jane Q. Photographer", "/home/jane", "Aegisub")


def make_with_script(path: Path, script: Path, frames: int = 12) -> None:
    """A Matroska video with the subtitle track of ``script`` (an .ass file PyAV reads)."""
    with av.open(str(script)) as subs, av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("h264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        track = out.add_stream_from_template(subs.streams.subtitles[0])
        for packet in subs.demux(subs.streams.subtitles[0]):
            if packet.size:
                packet.stream = track
                out.mux(packet)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())


def test_ass_subtitles_keep_their_styles_not_their_credits(tmp_path: Path, cli) -> None:
    """An ASS script's header names its authors and, from Aegisub, the editor's video file."""
    script = tmp_path / "subs.ass"
    script.write_text(ASS_SCRIPT)
    src = tmp_path / "in" / "clip.mkv"
    src.parent.mkdir()
    make_with_script(src, script)
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned", row["error"]
    assert "SubtitleHeader" in row["metadata_removed"]
    out = tmp_path / "out" / src.name
    with av.open(str(out)) as cleaned:
        header = (cleaned.streams.subtitles[0].codec_context.extradata or b"").decode()
    assert "PlayResX: 640" in header and "Style: Default,Arial,20" in header
    assert "Format: Layer, Start, End" in header
    raw = out.read_bytes()
    for secret in ASS_SECRETS:
        assert secret.encode() not in raw, secret
    assert_copied(src, out, [0, 1])


def test_carried_streams_leaves_the_container_unread(tmp_path: Path) -> None:
    """The transcoder judges the streams, then demuxes the same container from the start."""
    path = tmp_path / "clip.mkv"
    make_clip(CLIPS[4], path, cues=DIALOGUE)
    handler = handler_for(path)
    assert isinstance(handler, VideoHandler)
    with open_input(path, handler.name) as container:
        carried = handler.carried_streams(container)
        assert [s.type for s in carried] == ["video", "audio", "subtitle"]
        after_judging = sum(1 for p in container.demux(carried) if p.size)
    with open_input(path, handler.name) as fresh:
        assert after_judging == sum(1 for p in fresh.demux(list(fresh.streams)) if p.size)


def test_verify_reads_the_text_of_kept_subtitles(tmp_path: Path) -> None:
    """Fail closed: an output whose subtitle cues carry telemetry does not pass."""
    handler = VideoHandler("Matroska", (".mkv",), "matroska")
    dialogue, drone = tmp_path / "dialogue.mkv", tmp_path / "drone.mkv"
    make_clip(CLIPS[4], dialogue, cues=DIALOGUE, tags={})
    make_clip(CLIPS[4], drone, cues=DJI_CUES, tags={})
    expected = handler.clean(dialogue, tmp_path / "out.mkv")
    handler.reread(tmp_path / "out.mkv", expected)

    with pytest.raises(VerificationFailed, match="SubtitleTrack"):
        handler.reread(drone, expected)


# -- refusals ------------------------------------------------------------------------------
def test_faces_on_reencodes_video_without_its_metadata(tmp_path: Path, cli) -> None:
    """With faces on, a video is re-encoded (faces are searched in every frame); the
    metadata goes as in the remux, and the sound is still copied."""
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    make_clip(CLIPS[0], src)
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--report", report, "--progress", "off")

    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned"
    assert {"Location", "Artist", "TelemetryTrack"} <= set(row["metadata_removed"])
    rescan = cli("scan", tmp_path / "out" / "clip.mp4")
    assert "nothing identifying found" in rescan.out


def _mp4_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.mp4"
    make_clip(CLIPS[0], path, frames=25)
    return path.read_bytes()


def _mkv_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.mkv"
    make_clip(CLIPS[4], path, frames=25)
    return path.read_bytes()


def _avi_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.avi"
    make_clip(AVI_CLIPS[0], path, frames=25, tags=AVI_TAGS)
    return path.read_bytes()


def _asf_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.wmv"
    if not path.exists():
        make_clip(CLIPS_ASF, path, frames=25)
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
    BadVideo("zeros.wmv", lambda _: bytes(64), "failed", r"CorruptInput.*not a valid ASF"),
    BadVideo(
        "cut.wmv",
        lambda d: _asf_bytes(d)[: len(_asf_bytes(d)) // 2],
        "failed",
        r"CorruptInput.*ASF file is truncated",
    ),
    BadVideo(
        "sound.avi",
        lambda _: b"RIFF" + struct.pack("<I", 64) + b"WAVE" + bytes(60),
        "failed",
        r"CorruptInput.*WAV",  # cleaned as the WAV it is, which holds no sound
    ),
    BadVideo(
        "truncated.avi",
        lambda d: _avi_bytes(d)[: len(_avi_bytes(d)) // 2],
        "failed",
        r"CorruptInput.*AVI file is truncated",
    ),
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


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [("movie_named.avi", _mp4_bytes, "MP4"), ("movie_named.mp4", _avi_bytes, "AVI")],
)
def test_a_video_named_as_another_kind_is_cleaned_as_what_it_is(
    name: str, content: Callable[[Path], bytes], kind: str, tmp_path: Path, cli
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(content(tmp_path))
    report = tmp_path / "report.jsonl"

    cli("clean", folder, "-o", tmp_path / "out", "--faces", "off", "--report", report)

    (row,) = read_report(report)
    assert row["status"] == "cleaned", row["error"]
    assert row["content"].startswith(f"the content is {kind}, the extension says")
    assert handler_for(tmp_path / "out" / name).name == kind  # its name kept, its kind too
    assert not leftovers(tmp_path)


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
    "Pentax.avi": "failed",  # exiftool's test files: headers only
    "RIFF.avi": "failed",
    "ASF.wmv": "failed",  # exiftool's test file: headers only
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
            # a reason about the file, never veil's own fault (a sound stream with no sound
            # in it once failed as "dictionary changed size during iteration")
            assert "unexpectedly" not in row["error"], (name, row["error"])
            assert not out.exists()
        if name in EXPECTED:
            assert row["status"] == EXPECTED[name], (name, row["error"])
    assert not leftovers(tmp_path)


def test_3gpp_asset_boxes_are_read_and_a_place_is_said(tmp_path: Path) -> None:
    """FFmpeg reads almost none of the 3GPP asset boxes (title, author, place, ...) that 3GP
    phones write in ``moov/udta``; veil reads them itself, UTF-16 ones and the place's
    coordinates included."""
    from veil.formats.isobmff import box, full_box
    from veil.formats.video import _asset_fields

    lang = (0x15C7).to_bytes(2, "big")  # "eng", packed
    place = lang + b"Dam\0" + b"\0" + round(4.875 * 65536).to_bytes(4, "big")
    place += round(52.375 * 65536).to_bytes(4, "big") + bytes(4) + b"earth\0\0"
    udta = box(
        b"udta",
        full_box(b"auth", 0, 0, lang + "A. Person".encode("utf-16") + b"\0\0")
        + full_box(b"loci", 0, 0, place)
        + full_box(b"yrrc", 0, 0, (2026).to_bytes(2, "big")),
    )
    path = tmp_path / "phone.3gp"
    path.write_bytes(box(b"ftyp", b"3gp4" + bytes(4)) + box(b"moov", udta))

    found = {f.name: (f.category, f.value) for f in _asset_fields(path)}

    assert found["Author"] == ("person", "A. Person")
    assert found["Location"] == ("place", "Dam (52.37500, 4.87500)")
    assert found["Year"] == ("time", "2026")


def test_a_video_file_holding_sound_only_is_cleaned_not_refused(tmp_path: Path) -> None:
    """A voice memo saved as .mp4 (or .mkv) has no picture to search: with faces on, its
    streams are copied without the tags, where before it failed for want of a video track."""
    rate, block = 16000, 1024
    for ext, muxer in ((".mp4", "mp4"), (".mkv", "matroska")):
        src, out = tmp_path / f"memo{ext}", tmp_path / "out" / f"memo{ext}"
        with av.open(str(src), "w", format=muxer) as container:
            container.metadata["title"] = TAGS["title"]
            stream = container.add_stream("aac", rate=rate, layout="mono")
            noise = np.random.default_rng(3).uniform(-0.05, 0.05, (1, block)).astype(np.float32)
            for index in range(20):
                frame = av.AudioFrame.from_ndarray(noise, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, index * block
                container.mux(stream.encode(frame))
            container.mux(stream.encode())

        result = Pipeline(Settings(voice="keep")).run(src, out)

        assert result.status == "cleaned", result.error
        assert "Title" in result.metadata_removed
        assert TAGS["title"].encode() not in out.read_bytes()
