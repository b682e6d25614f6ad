"""WMA sound recordings, and what they share with WMV videos: one container (ASF), one signature
and one FFmpeg muxer. A recording's tags, ``WM/`` descriptors, cover picture and File
Properties date are gone after ``veil clean`` (exiftool, the independent oracle, agrees), its
sound packets are copied bit for bit with ``--voice keep``, a cut-off file is refused in
veil's words, and the file's tracks, not its extension, say whether it is cleaned as a
recording or as a video. The recordings are made here (tests/formats/test_audio.py's maker,
which test_audio.py also runs through every recording's checks).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_audio import BY_NAME, SECRETS, WMA_CREATED, WMA_EXTRAS, exif_dump, make

from clips import KINDS, make_clip
from helpers import CliRun, read_report
from veil.errors import CorruptInput, UnsupportedFormat
from veil.formats import VIDEO_HANDLERS, disagreement, handler_for
from veil.formats.video import AUDIO_HANDLERS, VideoHandler
from veil.pipeline import Pipeline
from veil.settings import Settings

pytestmark = pytest.mark.video  # PyAV makes and remuxes the files, as for videos

WMA = next(h for h in AUDIO_HANDLERS if h.name == "WMA")
ASF = next(h for h in VIDEO_HANDLERS if h.name == "ASF")
RATE = 16_000


def _packets(path: Path) -> list[tuple[bytes, Fraction | None]]:
    """Every sound packet's bytes and presentation time, in seconds."""
    with av.open(str(path)) as container:
        return [
            (bytes(p), None if p.pts is None else p.pts * p.time_base)
            for p in container.demux(audio=0)
            if p.size
        ]


def _kinds(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.type for s in container.streams]


def _speech_wma(path: Path, seconds: float = 3.0) -> Path:
    """Speech-like syllables as a tagged WMA v2 recording (16 kHz mono)."""
    pytest.importorskip("scipy", reason="the test vowels are made with scipy's filters")
    from voice_helpers import syllables

    with av.open(str(path), "w", format="asf") as out:
        out.metadata.update(title="Interview with Jane", artist="Jane Q. Person")
        stream = out.add_stream("wmav2", rate=RATE)
        stream.layout, stream.bit_rate = "mono", 32_000
        frame = av.AudioFrame.from_ndarray(syllables(seconds)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_every_tag_block_of_a_wma_is_gone(
    tmp_path: Path, exiftool: str, cli: Callable[..., CliRun]
) -> None:
    """``veil scan`` names the planted tags; after ``veil clean`` exiftool finds none of them,
    nor the recording date, in any of the encodings ASF stores text in."""
    (tmp_path / "in").mkdir()
    src = make(BY_NAME["WMA"], tmp_path / "in" / "take.wma")
    before = exif_dump(src)
    for planted in ["Jane Q. Person", "2021:06:15 13:45:10", "Jane at home", *WMA_EXTRAS]:
        assert planted in before, f"the test did not plant {planted!r}"
    scan = cli("scan", src)
    assert scan.code == 0, scan.err
    for said in ["CreationTime", WMA_CREATED, "VEIL-WMA-0042", "Jane's Label", "CoverArt"]:
        assert said in scan.out, scan.out

    report = tmp_path / "report.jsonl"
    run = cli("clean", src.parent, "-o", tmp_path / "out", "--voice", "keep", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["status"] == "cleaned" and "content" not in row
    assert {"CreationTime", "CoverArt", "Serial", "Title"} <= set(row["metadata_removed"])
    out = tmp_path / "out" / "take.wma"
    after, raw = exif_dump(out), out.read_bytes()
    for secret in [*SECRETS, *WMA_EXTRAS, "Jane at home", "2021:06:15"]:
        assert secret not in after, f"exiftool still shows {secret!r}: {after}"
        for encoding in ("utf-8", "utf-16-le"):  # ASF's text is UTF-16
            assert secret.encode(encoding) not in raw, secret
    assert '"ASF:Picture' not in after and _kinds(out) == ["audio"]
    assert WMA.fields(out) == []
    assert _packets(out) == _packets(src)


def test_voice_keep_copies_a_wma_sound_stream_bit_for_bit(
    tmp_path: Path, cli: Callable[..., CliRun]
) -> None:
    (tmp_path / "in").mkdir()
    src = _speech_wma(tmp_path / "in" / "talk.wma")
    report = tmp_path / "report.jsonl"

    run = cli("clean", src, "-o", tmp_path / "out", "--voice", "keep", "--report", report)

    assert run.code == 0, run.err
    (row,) = read_report(report)
    assert row["voice"]["action"] == "kept", row  # speech was found, and left as it was
    out = tmp_path / "out" / "talk.wma"
    assert _packets(out) == _packets(src) and _packets(src)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "wmav2"
        assert "title" not in container.metadata and "artist" not in container.metadata


def test_a_new_voice_is_written_as_wma_v2(tmp_path: Path) -> None:
    src, out = _speech_wma(tmp_path / "talk.wma"), tmp_path / "out.wma"
    result = Pipeline(Settings(faces=False)).clean_file(src, out)
    assert result.voice is not None and result.voice.action == "anonymized"
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "wmav2"
    assert _packets(out) != _packets(src)


def _cut_in_header(data: bytes) -> bytes:
    return data[:200]


def _cut_in_data(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _data_longer_than_file(data: bytes) -> bytes:
    """The Data Object's size (after the Header Object) raised by a packet's worth."""
    header = struct.unpack_from("<Q", data, 16)[0]
    damaged = bytearray(data)
    size = struct.unpack_from("<Q", damaged, header + 16)[0]
    struct.pack_into("<Q", damaged, header + 16, size + 3200)
    return bytes(damaged)


@pytest.mark.parametrize("damage", [_cut_in_header, _cut_in_data, _data_longer_than_file])
def test_a_cut_off_wma_is_refused_with_no_output(
    damage: Callable[[bytes], bytes], tmp_path: Path, cli: Callable[..., CliRun]
) -> None:
    """Refused in veil's words, nothing written. The handler says "truncated"; through the
    CLI the voice step, which decodes the sound first, may be the one to find the damage."""
    whole = make(BY_NAME["WMA"], tmp_path / "whole.wma")
    folder = tmp_path / "in"
    folder.mkdir()
    cut = folder / "cut.wma"
    cut.write_bytes(damage(whole.read_bytes()))
    with pytest.raises(CorruptInput, match=r"^WMA file is truncated: \d+ of its \d+ bytes"):
        assert handler_for(cut) is WMA
        WMA.clean(cut, tmp_path / "direct.wma")
    report = tmp_path / "report.jsonl"

    run = cli("clean", folder, "-o", tmp_path / "out", "--voice", "keep", "--report", report)

    (row,) = read_report(report)
    assert run.code != 0 and row["status"] == "failed", row
    assert row["error"].startswith("CorruptInput: "), row["error"]
    assert "Traceback" not in run.err
    assert not list((tmp_path / "out").rglob("*.wma"))


@pytest.mark.parametrize("name", ["take.wmv", "take.asf"])
def test_a_recording_named_as_a_video_is_cleaned_as_a_recording(name: str, tmp_path: Path) -> None:
    """Sound recorders write sound-only .asf files: the file's tracks say it is a recording
    (the signature cannot), so it is not sent down the face path, which wants a picture."""
    made = make(BY_NAME["WMA"], tmp_path / "made.wma")
    src = made.rename(tmp_path / name)
    handler = handler_for(src)
    assert handler is WMA
    assert disagreement(src, handler) == (
        "the content is WMA, the extension says ASF: cleaned as WMA"
    )

    result = Pipeline(Settings()).clean_file(src, tmp_path / "out" / name)  # faces on

    assert result.status == "cleaned" and result.content == disagreement(src, handler)
    out = tmp_path / "out" / name
    assert _kinds(out) == ["audio"] and _packets(out) == _packets(src)
    assert WMA.fields(out) == []


def test_a_video_named_wma_is_cleaned_as_a_video(tmp_path: Path) -> None:
    """A picture in a .wma makes it a WMV: its faces are obscured like any video's, and the
    report says what it was (a recording's handler would refuse it)."""
    src = tmp_path / "clip.wma"
    make_clip(src, next(k for k in KINDS if k.muxer == "asf"), frames=12)
    handler = handler_for(src)
    assert handler is ASF
    with pytest.raises(UnsupportedFormat, match=r"not only sound.*\.wmv"):
        WMA.clean(src, tmp_path / "refused.wma")

    result = Pipeline(Settings()).clean_file(src, tmp_path / "out" / "clip.wma")

    assert result.status == "cleaned" and result.faces, result
    assert result.content == "the content is ASF, the extension says WMA: cleaned as ASF"
    assert sorted(_kinds(tmp_path / "out" / "clip.wma")) == ["audio", "video"]
    assert ASF.fields(tmp_path / "out" / "clip.wma") == []


def test_unreadable_asf_is_judged_by_its_extension(tmp_path: Path) -> None:
    """Headers FFmpeg cannot read leave the extension's kind, whose cleaning says why."""
    for name in ("junk.wma", "junk.wmv"):
        path = tmp_path / name
        path.write_bytes(bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(100))
        assert handler_for(path).extensions[0] == Path(name).suffix


def _with_subtitles(path: Path) -> None:
    """A Matroska file with sound and a SubRip track of speech (nothing to flag in it)."""
    with av.open(str(path), "w", format="matroska") as out:
        sound = out.add_stream("flac", rate=RATE)
        sound.layout = "mono"
        track = out.add_mux_stream("subrip", time_base=Fraction(1, 1000))
        packet = av.Packet(b"Hello there")
        packet.stream, packet.time_base = track, Fraction(1, 1000)
        packet.pts = packet.dts = 0
        packet.duration = 500
        out.mux(packet)
        tone = (np.sin(np.arange(RATE) / 9.0) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode())


@pytest.mark.parametrize(
    ("handler", "says"),
    [(ASF, "subtitle track in srt format, which a asf file cannot hold"), (WMA, "text track")],
    ids=["WMV", "WMA"],
)
def test_what_a_shared_muxer_drops_goes_by_the_handlers_kind(
    handler: VideoHandler, says: str, tmp_path: Path
) -> None:
    """WMV and WMA are written by one muxer: that a recording's output holds sound only is
    the WMA handler's, and must not change what the WMV handler says of a subtitle track."""
    src = tmp_path / "subtitled.mkv"
    _with_subtitles(src)
    with av.open(str(src)) as container:
        assert [s.type for s in container.streams] == ["audio", "subtitle"]
    dropped = [f for f in handler.fields(src) if "track" in f.value]
    assert len(dropped) == 1 and dropped[0].value.startswith(says), dropped
