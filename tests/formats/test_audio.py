"""Sound recordings (M4A, MP3, Ogg Vorbis, Opus, WAV, FLAC, WMA) are cleaned by a stream-copy remux:
every tag structure their kind can carry is gone (exiftool, the independent oracle, agrees),
the sound packets are bit-identical and decode to the very same samples, and damaged, cut-off
or mislabelled files are refused in veil's own words.

Each recording is made here with PyAV (a second and a half of a tone with noise) and then
given what the kind can carry: FFmpeg's own tags (title, artist, date, comment, an ISO 6709
location, the "Lavf..." encoder string), and by hand or with exiftool what FFmpeg does not
write: iTunes cover art, ``©xyz`` and ``©too`` (M4A); an ID3v2 picture, an ID3v1 tag and an
APE tag (MP3); a cover picture as a Vorbis comment (Ogg, Opus); PICTURE and APPLICATION
blocks (FLAC); RIFF ``LIST``/``INFO``, Broadcast Wave ``bext`` and ``iXML`` chunks (WAV);
a ``WM/Picture`` cover and ``WM/`` text descriptors, and the File Properties creation date
(WMA; tests/formats/test_wma.py goes further).
The recordings of the shared corpus are cleaned too, where it is present.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from veil.errors import CorruptInput, UnsupportedFormat
from veil.formats import AUDIO_EXTENSIONS, AUDIO_HANDLERS, disagreement, handler_for
from veil.formats.video import VideoHandler

pytestmark = pytest.mark.video  # PyAV makes and remuxes the files, as for videos

TITLE, ARTIST, COMMENT = "Secret title", "Jane Q. Person", "taken at Jane's house"
DATE, LOCATION, DEVICE = "2021-06-15", "+48.8577+002.2950/", "VeilRecorder 2.1"
TAGS = {
    "title": TITLE,
    "artist": ARTIST,
    "date": DATE,
    "comment": COMMENT,
    "location": LOCATION,
    "encoded_by": DEVICE,
}
# What FFmpeg's muxer names itself as, with its version, unless told to be bit-exact.
LAVF = re.compile(rb"Lavf\d")
# What every output must have lost, as exiftool would print it or as bytes.
SECRETS = [TITLE, ARTIST, COMMENT, DEVICE, "48.857", "Jane"]
SECONDS = 1.5


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def _flac_picture(picture: bytes) -> bytes:
    """A FLAC PICTURE block's body (front cover), as FLAC and Vorbis comments carry it."""
    mime, description = b"image/jpeg", b"Jane at home"
    return (
        struct.pack(">II", 3, len(mime))
        + mime
        + struct.pack(">I", len(description))
        + description
        + struct.pack(">IIIII", 16, 16, 24, 0, len(picture))
        + picture
    )


def encode(
    path: Path,
    muxer: str,
    codec: str,
    rate: int = 44100,
    layout: str = "mono",
    tags: dict[str, str] | None = None,
    bitexact: bool = False,
) -> None:
    """A tone with a little noise, ``SECONDS`` long, in ``codec`` and the ``muxer`` kind."""
    options = {"fflags": "+bitexact"} if bitexact else {}
    with av.open(str(path), "w", format=muxer, container_options=options) as out:
        out.metadata.update(TAGS if tags is None else tags)
        # FFmpeg's own Vorbis encoder is marked experimental and writes stereo only.
        extra = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = out.add_stream(codec, rate=rate, options=extra)
        stream.layout = layout
        if codec == "wmav2":
            stream.bit_rate = 64_000  # it has no default
        channels = 2 if layout == "stereo" else 1
        count = int(rate * SECONDS)
        rng = np.random.default_rng(3)
        tone = np.sin(np.arange(count) / 7.0) * 0.3 + rng.normal(0.0, 0.03, count)
        sound = np.stack([tone] * channels).astype(np.float32)
        for start in range(0, count, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(sound[:, start : start + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


# -- metadata FFmpeg does not write, added by hand -------------------------------------------
def _syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _unsyncsafe(raw: bytes) -> int:
    return (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]


def _ape_tag(items: dict[str, str]) -> bytes:
    """An APE tag v2 with header and footer (text items)."""
    body = b"".join(
        struct.pack("<II", len(v.encode()), 0) + k.encode() + b"\0" + v.encode()
        for k, v in items.items()
    )
    size = len(body) + 32

    def header(flags: int) -> bytes:
        return b"APETAGEX" + struct.pack("<IIII", 2000, size, len(items), flags) + bytes(8)

    return header(0xA0000000) + body + header(0x80000000)


def _id3v1(title: str, artist: str, year: str, comment: str) -> bytes:
    def text(value: str, width: int) -> bytes:
        return value.encode()[:width].ljust(width, b"\0")

    fields = text(title, 30) + text(artist, 30) + text("", 30) + text(year, 4)
    return b"TAG" + fields + text(comment, 30) + b"\xff"


MP3_EXTRAS = ["v1 title", "v1 artist", "v1 comment", "Ape Person", "ape secret"]


def plant_mp3(path: Path) -> None:
    """An ID3v2.4 APIC (cover) frame in FFmpeg's ID3v2 tag, then an APE tag and an ID3v1 tag
    after the frames, as taggers leave them."""
    data = path.read_bytes()
    assert data[:3] == b"ID3" and data[3] == 4
    picture = b"\0image/jpeg\0\x03\0" + _jpeg()
    frame = b"APIC" + _syncsafe(len(picture)) + b"\0\0" + picture
    size = _unsyncsafe(data[6:10]) + len(frame)
    data = data[:6] + _syncsafe(size) + frame + data[10:]
    tail = _ape_tag({"Artist": "Ape Person", "Comment": "ape secret"})
    tail += _id3v1("v1 title", "v1 artist", "2019", "v1 comment")
    path.write_bytes(data + tail)


def _block(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def plant_flac(path: Path) -> None:
    """A PICTURE block and an APPLICATION block after STREAMINFO."""
    data = path.read_bytes()
    assert data[:4] == b"fLaC" and not data[4] & 0x80  # STREAMINFO, not the last block
    application = _block(2, b"VeiL" + DEVICE.encode() + b" at Jane's")
    picture = _block(6, _flac_picture(_jpeg()))
    path.write_bytes(data[:42] + picture + application + data[42:])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _bext() -> bytes:
    """A Broadcast Wave "bext" chunk body (EBU Tech 3285 v1)."""

    def text(value: str, width: int) -> bytes:
        return value.encode().ljust(width, b"\0")

    return (
        text("Interview at Jane's house", 256)
        + text(DEVICE, 32)
        + text("FR-VEIL-SN0042", 32)
        + text(DATE, 10)
        + text("13:45:10", 8)
        + struct.pack("<QH", 1_234_567, 1)
        + bytes(64 + 10 + 180)
        + b"A=PCM,F=44100,W=16,M=mono,T="
        + DEVICE.encode()
        + b"\r\n"
    )


WAV_EXTRAS = ["Interview at Jane's house", "FR-VEIL-SN0042", "Secret project", "Jane's garden"]


def plant_wav(path: Path) -> None:
    """bext and iXML chunks before the format chunk, a LIST/INFO chunk after the samples."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and b"LIST" not in data
    info = b"INFO" + b"".join(
        _chunk(kind, value.encode() + b"\0")
        for kind, value in (
            (b"INAM", TITLE),
            (b"IART", ARTIST),
            (b"ICRD", DATE),
            (b"ICMT", COMMENT),
            (b"ISFT", DEVICE),
        )
    )
    ixml = b"<BWFXML><PROJECT>Secret project</PROJECT><NOTE>Jane's garden</NOTE></BWFXML>"
    body = b"WAVE" + _chunk(b"bext", _bext()) + _chunk(b"iXML", ixml)
    body += data[12:] + _chunk(b"LIST", info)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def plant_m4a(path: Path) -> None:
    """iTunes cover art, the encoding program (``©too``) and a QuickTime ``©xyz`` place,
    written by exiftool (FFmpeg writes the 3GPP ``loci`` box instead)."""
    picture = path.with_name("cover.jpg")
    picture.write_bytes(_jpeg())
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-UserData:GPSCoordinates=48.8577, 2.2950",
            f"-ItemList:Encoder={DEVICE}",
            f"-CoverArt<={picture}",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    picture.unlink()


#: ASF's Header, File Properties and Extended Content Description Objects (ASF
#: Specification 1.20, 3.1, 3.2, 3.11).
ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")
ASF_EXTENDED_CONTENT = bytes.fromhex("40a4d0d207e3d21197f000a0c95ea850")
WMA_EXTRAS = ["Jane's Label", "VEIL-WMA-0042"]


def _wm_string(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _wm_descriptor(name: str, kind: int, value: bytes) -> bytes:
    """One Content Descriptor: its name, value type (0 text, 1 bytes) and value."""
    label = _wm_string(name)
    return struct.pack("<H", len(label)) + label + struct.pack("<HH", kind, len(value)) + value


def _wm_picture(picture: bytes) -> bytes:
    """A ``WM/Picture`` value: type (3, front cover), size, MIME type, description, data."""
    return (
        struct.pack("<BI", 3, len(picture))
        + _wm_string("image/jpeg")
        + _wm_string("Jane at home")
        + picture
    )


def add_wm_descriptors(path: Path, descriptors: list[bytes]) -> None:
    """``descriptors`` appended to the Extended Content Description Object FFmpeg's muxer
    wrote (it writes the tags it has no Content Description field for there), the sizes of
    that object, of the Header Object and of the whole file put right."""
    data = bytearray(path.read_bytes())
    assert data[:16] == ASF_HEADER
    extra = b"".join(descriptors)
    at, header_end, found = 30, struct.unpack_from("<Q", data, 16)[0], {}
    while at < header_end:
        found[bytes(data[at : at + 16])] = at
        at += struct.unpack_from("<Q", data, at + 16)[0]
    ext, props = found[ASF_EXTENDED_CONTENT], found[ASF_FILE_PROPERTIES]
    end = ext + struct.unpack_from("<Q", data, ext + 16)[0]
    for where in (16, ext + 16, props + 40):  # header, object, file sizes (64-bit)
        struct.pack_into("<Q", data, where, struct.unpack_from("<Q", data, where)[0] + len(extra))
    count = struct.unpack_from("<H", data, ext + 24)[0]
    struct.pack_into("<H", data, ext + 24, count + len(descriptors))
    data[end:end] = extra
    path.write_bytes(bytes(data))


def plant_wma(path: Path) -> None:
    """A ``WM/Picture`` cover, a publisher and a file identifier, as Windows Media Player and
    taggers write them (FFmpeg's muxer writes no pictures)."""
    add_wm_descriptors(
        path,
        [
            _wm_descriptor("WM/Picture", 1, _wm_picture(_jpeg())),
            _wm_descriptor("WM/Publisher", 0, _wm_string(WMA_EXTRAS[0])),
            _wm_descriptor("WM/UniqueFileIdentifier", 0, _wm_string(WMA_EXTRAS[1])),
        ],
    )


#: When the WMA recordings were made, as FFmpeg's ASF muxer writes it into the File
#: Properties Object (from the "creation_time" tag).
WMA_CREATED = "2021-06-15T13:45:10Z"


def cover_comment() -> dict[str, str]:
    """Vorbis comments with a cover picture (METADATA_BLOCK_PICTURE, base64)."""
    picture = base64.b64encode(_flac_picture(_jpeg())).decode()
    return {**TAGS, "METADATA_BLOCK_PICTURE": picture}


@dataclass(frozen=True)
class Recording:
    name: str  # the handler's
    ext: str
    codec: str
    rate: int = 44100
    layout: str = "mono"
    plant: Callable[[Path], None] | None = None
    tags: Callable[[], dict[str, str]] | None = None
    bitexact: bool = False
    #: What `VideoHandler.fields` must name in the planted file.
    fields: frozenset[str] = frozenset()
    #: Planted values beyond `SECRETS` that exiftool shows in the input.
    extras: tuple[str, ...] = ()


_COMMON = frozenset({"Title", "Artist", "Date", "Comment", "Location"})
RECORDINGS = [
    Recording(
        "M4A",
        ".m4a",
        "aac",
        plant=plant_m4a,
        fields=_COMMON | {"Software", "CoverArt"},
    ),
    Recording(
        "MP3",
        ".mp3",
        "libmp3lame",
        plant=plant_mp3,
        fields=_COMMON | {"Author", "CoverArt"},
        extras=tuple(MP3_EXTRAS),
    ),
    Recording(
        "Ogg", ".ogg", "vorbis", layout="stereo", tags=cover_comment, fields=_COMMON | {"CoverArt"}
    ),
    Recording("Opus", ".opus", "libopus", rate=48000, tags=cover_comment, fields=_COMMON),
    Recording(
        "WAV",
        ".wav",
        "pcm_s16le",
        plant=plant_wav,
        tags=dict,
        bitexact=True,
        fields=frozenset(
            {"Title", "Artist", "Date", "Comment", "Software", "Author", "Serial"}
            | {"CreationTime", "Timecode", "iXML"}
        ),
        extras=tuple(WAV_EXTRAS),
    ),
    Recording(
        "FLAC",
        ".flac",
        "flac",
        plant=plant_flac,
        fields=_COMMON | {"CoverArt", "ApplicationData"},
    ),
    Recording(
        "WMA",
        ".wma",
        "wmav2",
        plant=plant_wma,
        tags=lambda: {**TAGS, "creation_time": WMA_CREATED},
        fields=_COMMON | {"CoverArt", "CreationTime", "Serial"},
        extras=tuple(WMA_EXTRAS),
    ),
]
BY_NAME = {r.name: r for r in RECORDINGS}
EACH = pytest.mark.parametrize("recording", RECORDINGS, ids=[r.name for r in RECORDINGS])


def make(recording: Recording, path: Path) -> Path:
    tags = recording.tags() if recording.tags else None
    muxer = _handler(recording).muxer
    encode(path, muxer, recording.codec, recording.rate, recording.layout, tags, recording.bitexact)
    if recording.plant is not None:
        recording.plant(path)
    return path


def _handler(recording: Recording) -> VideoHandler:
    return next(h for h in AUDIO_HANDLERS if h.name == recording.name)


# -- oracles -------------------------------------------------------------------------------
def exif_dump(path: Path) -> str:
    """``exiftool -j -a -G1`` of a file, every value in one string (File:System left out)."""
    proc = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", "-b", "--", str(path)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    (row,) = json.loads(proc.stdout)
    kept: dict[str, Any] = {k: v for k, v in row.items() if not k.startswith("System:")}
    kept.pop("SourceFile", None)
    return json.dumps(kept, ensure_ascii=False)


def samples(path: Path) -> npt.NDArray[Any]:
    """Every decoded sample of the first sound track, channels by time."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray() for f in container.decode(container.streams.audio[0])]
    return np.concatenate(frames, axis=1)


def stream_kinds(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.type for s in container.streams]


# -- cleaning ------------------------------------------------------------------------------
@EACH
def test_recording_is_cleaned_losslessly(
    recording: Recording, tmp_path: Path, exiftool: str
) -> None:
    src = make(recording, tmp_path / f"take{recording.ext}")
    out = tmp_path / f"clean{recording.ext}"
    handler = handler_for(src)
    assert handler is _handler(recording) and handler.sound
    before = exif_dump(src)
    for planted in [TITLE, ARTIST, *recording.extras]:
        assert planted in before, f"the test did not plant {planted!r}"
    found = handler.fields(src)
    assert recording.fields <= {f.name for f in found}, found

    handler.reread(out, handler.clean(src, out))

    after = exif_dump(out)
    raw = out.read_bytes()
    for secret in [*SECRETS, *recording.extras]:
        assert secret not in after, f"exiftool still shows {secret!r}: {after}"
        assert secret.encode() not in raw, secret
    assert not LAVF.search(raw), "FFmpeg's versioned encoder string was written"
    assert not re.search(r'"[\w-]+:(Picture|CoverArt|Application\w*)"', after), after
    assert handler.fields(out) == []
    assert stream_kinds(out) == ["audio"]  # no cover picture
    np.testing.assert_array_equal(samples(out), samples(src))


def test_probe_of_a_recording_has_no_picture(tmp_path: Path) -> None:
    src = make(BY_NAME["FLAC"], tmp_path / "take.flac")
    probe = _handler(BY_NAME["FLAC"]).probe(src)
    assert (probe.width, probe.height, probe.frames) == (None, None, 0)
    place = next(f for f in probe.fields if f.name == "Location")
    assert place.category == "place" and place.value.startswith("48.85770° N, 2.29500° E")


def test_wav_chunks_and_mp3_tail_tags_are_said_in_words(tmp_path: Path) -> None:
    wav = make(BY_NAME["WAV"], tmp_path / "take.wav")
    found = {f.name: f for f in _handler(BY_NAME["WAV"]).fields(wav)}
    assert found["Serial"].value == "FR-VEIL-SN0042"  # bext originator reference
    assert found["Author"].value == DEVICE  # bext originator
    assert found["iXML"].category == "text"
    mp3 = make(BY_NAME["MP3"], tmp_path / "take.mp3")
    values = {(f.name, f.value) for f in _handler(BY_NAME["MP3"]).fields(mp3)}
    # FFmpeg reads the ID3v2 tag only; the ID3v1 and APE tags at the end are veil's reading.
    assert {("Artist", "v1 artist"), ("Artist", "Ape Person"), ("Date", "2019")} <= values


def test_registry_knows_the_sound_extensions() -> None:
    assert {".m4a", ".mp3", ".ogg", ".oga", ".opus", ".wav", ".flac", ".wma"} <= AUDIO_EXTENSIONS
    assert all(h.sound for h in AUDIO_HANDLERS)


# -- refusals ------------------------------------------------------------------------------
@EACH
def test_cut_off_recording_is_refused(recording: Recording, tmp_path: Path) -> None:
    src = make(recording, tmp_path / f"take{recording.ext}")
    data = src.read_bytes()
    for keep in (len(data) // 2, len(data) * 3 // 4):
        cut = tmp_path / f"cut{recording.ext}"
        cut.write_bytes(data[:keep])
        with pytest.raises(CorruptInput):
            handler = handler_for(cut)
            handler.reread(tmp_path / "out", handler.clean(cut, tmp_path / "out"))


@pytest.mark.parametrize("ext", sorted(AUDIO_EXTENSIONS))
def test_garbage_is_refused_in_veils_words(ext: str, tmp_path: Path) -> None:
    junk = bytes(range(256)) * 16
    signatures = {
        ".flac": b"fLaC",
        ".ogg": b"OggS",
        ".oga": b"OggS",
        ".opus": b"OggS\0\2" + bytes(20) + b"\1\x13OpusHead",
        ".wav": b"RIFF" + struct.pack("<I", len(junk) + 4) + b"WAVE",
        ".mp3": b"ID3\4\0\0\0\0\0\x0a" + bytes(10),
        ".m4a": b"\0\0\0\x18ftypM4A \0\0\2\0M4A isom",
        ".wma": ASF_HEADER,
    }
    for name, data in (("text", b"not a recording at all " * 8), ("junk", signatures[ext] + junk)):
        path = tmp_path / f"{name}{ext}"
        path.write_bytes(data)
        with pytest.raises(CorruptInput):
            handler = handler_for(path)
            handler.fields(path)
            handler.reread(tmp_path / "out", handler.clean(path, tmp_path / "out"))


@pytest.mark.parametrize(
    ("made", "named", "says"),
    [("FLAC", ".mp3", "FLAC.*MP3"), ("MP3", ".wav", "MP3.*WAV"), ("WAV", ".ogg", "WAV.*Ogg")],
)
def test_content_of_another_kind_is_cleaned_as_what_it_is(
    made: str, named: str, says: str, tmp_path: Path
) -> None:
    src = make(BY_NAME[made], tmp_path / f"take{BY_NAME[made].ext}")
    renamed = src.rename(tmp_path / f"renamed{named}")
    handler = handler_for(renamed)
    assert handler.name == made
    assert re.search(says, disagreement(renamed, handler) or "")
    assert disagreement(src.with_name(f"take{BY_NAME[made].ext}"), handler) is None


def test_m4a_and_mp4_share_iso_bmff_content(tmp_path: Path) -> None:
    """An M4A named .mp4 is an MP4 (a video handler copies its sound as well); an MP4
    recording (brand isom, as phones write) named .m4a is an M4A."""
    m4a = tmp_path / "take.m4a"
    encode(m4a, "ipod", "aac")
    as_mp4 = tmp_path / "take.mp4"
    as_mp4.write_bytes(m4a.read_bytes())
    handler = handler_for(as_mp4)
    assert handler.name == "MP4" and not handler.sound
    handler.reread(tmp_path / "out.mp4", handler.clean(as_mp4, tmp_path / "out.mp4"))
    phone = tmp_path / "phone.m4a"
    encode(phone, "mp4", "aac")
    assert phone.read_bytes()[8:12] == b"isom"
    recording = handler_for(phone)
    assert recording.name == "M4A"
    out = tmp_path / "out.m4a"
    recording.reread(out, recording.clean(phone, out))
    assert out.read_bytes()[8:12] == b"M4A "  # written back as what it is
    np.testing.assert_array_equal(samples(out), samples(phone))


def test_a_video_named_as_a_recording_is_refused(tmp_path: Path) -> None:
    """A sound handler's output must hold sound only: a picture track is not left unobscured
    (and not silently dropped)."""
    clip = tmp_path / "clip.m4a"
    with av.open(str(clip), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    handler = handler_for(clip)
    with pytest.raises(UnsupportedFormat, match="not only sound"):
        handler.clean(clip, tmp_path / "out.m4a")


def test_sound_the_container_cannot_hold_is_refused(tmp_path: Path) -> None:
    """MP3 sound in an MP4 file named .m4a: FFmpeg's M4A muxer cannot write it."""
    src = tmp_path / "mp3inside.m4a"
    encode(src, "mp4", "libmp3lame")
    handler = handler_for(src)
    with pytest.raises(UnsupportedFormat, match=r"mp3.*cannot write"):
        handler.clean(src, tmp_path / "out.m4a")


def _itunes_gapless(path: Path) -> None:
    """An iTunes ``iTunSMPB`` atom (encoder delay and padding) in moov/udta/meta/ilst, which
    FFmpeg's muxer writes at the end of the file (so no chunk offset moves)."""
    data = bytearray(path.read_bytes())

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    value = b" 00000000 00000840 000001C0 0000000000010260"
    atom = box(
        b"----",
        box(b"mean", bytes(4) + b"com.apple.iTunes")
        + box(b"name", bytes(4) + b"iTunSMPB")
        + box(b"data", struct.pack(">II", 1, 0) + value),
    )
    parents = [data.find(kind) - 4 for kind in (b"moov", b"udta", b"meta", b"ilst")]
    assert all(p > 0 for p in parents) and parents == sorted(parents)
    ilst = parents[-1]
    end = ilst + struct.unpack(">I", data[ilst : ilst + 4])[0]
    data[end:end] = atom
    for at in parents:
        size = struct.unpack(">I", data[at : at + 4])[0]
        data[at : at + 4] = struct.pack(">I", size + len(atom))
    path.write_bytes(bytes(data))


def test_itunes_gapless_data_is_refused_rather_than_lost(tmp_path: Path) -> None:
    src = tmp_path / "itunes.m4a"
    encode(src, "ipod", "aac")
    _itunes_gapless(src)
    with av.open(str(src)) as container:
        assert "iTunSMPB" in container.metadata
    handler = handler_for(src)
    with pytest.raises(UnsupportedFormat, match="iTunSMPB"):
        handler.clean(src, tmp_path / "out.m4a")


@pytest.mark.realdata
@pytest.mark.slow
def test_real_recordings_clean_and_read_back(shared_data: Path, tmp_path: Path) -> None:
    """Every recording in the shared corpus (LibriSpeech FLAC, at the time of writing) cleans,
    reads back as an exact copy, and reveals nothing; a sample decodes to the same samples."""
    recordings = sorted(
        p for p in shared_data.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
    if not recordings:
        pytest.skip(f"no sound recordings under {shared_data}")
    for number, src in enumerate(recordings):
        handler = handler_for(src)
        out = tmp_path / f"out{src.suffix}"
        handler.reread(out, handler.clean(src, out))
        assert handler.fields(out) == [], src
        if number % 10 == 0:
            np.testing.assert_array_equal(samples(out), samples(src))
