"""The contract every registered format keeps, run over the registry itself (`HANDLERS`,
`VIDEO_HANDLERS`, `AUDIO_HANDLERS`): a new format gets these tests by being registered. What
one format does beyond it (JPEG's lossless strip, TIFF pages, animation timing, video tracks)
stays in that format's own tests.

The contract, for stills: the registry routes its extensions to it and no other handler claims
its content; decoding gives upright uint8 frames of the stated size; an output with the pixels
unchanged reveals nothing and, where the format is lossless or can be stripped, keeps every
pixel; changed pixels are what gets written; a cut-off file, foreign bytes or too many pixels
are refused with veil's own errors, never a library's. For videos: its extensions, its
signature, planted tags found and then gone with every frame kept, and a cut-off file refused;
for sound recordings the same, with every sample kept (tests/formats/test_audio.py goes
further: cover pictures, hand-written tag blocks, exiftool as the oracle).
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from helpers import backdrop, dng_file
from veil.errors import CorruptInput, TooLarge, UnsupportedFormat, VeilError
from veil.formats import (
    AUDIO_HANDLERS,
    DOCUMENT_HANDLERS,
    HANDLERS,
    VIDEO_HANDLERS,
    FormatHandler,
    SvgHandler,
    VideoHandler,
    handler_for_bytes,
)
from veil.formats.base import Decoded

STILLS = pytest.mark.parametrize("handler", HANDLERS, ids=[h.name for h in HANDLERS])
VIDEOS = pytest.mark.parametrize("handler", VIDEO_HANDLERS, ids=[h.name for h in VIDEO_HANDLERS])
SOUNDS = pytest.mark.parametrize("handler", AUDIO_HANDLERS, ids=[h.name for h in AUDIO_HANDLERS])
DOCUMENTS = pytest.mark.parametrize(
    "handler", DOCUMENT_HANDLERS, ids=[h.name for h in DOCUMENT_HANDLERS]
)
EVERY = (*HANDLERS, *VIDEO_HANDLERS, *AUDIO_HANDLERS, *DOCUMENT_HANDLERS)
#: A DNG is a TIFF to its first bytes; the extension tells the two apart.
SAME_SIGNATURE = {"TIFF": ["TIFF", "DNG"], "DNG": ["TIFF", "DNG"]}
WIDTH, HEIGHT = 96, 64
#: Where the tests paint a dark square into the picture, x1, y1, x2, y2.
SQUARE = (24, 16, 56, 48)


def _exif() -> bytes:
    """EXIF naming a device, a person and a place: what every output must have lost."""
    exif = Image.Exif()
    exif[0x010F] = "Contract Cam"  # Make
    exif[0x013B] = "A. Person"  # Artist
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 36.0)})
    return exif.tobytes()


def _still(handler: FormatHandler) -> bytes:
    """A small picture in the handler's format (Pillow writes every registered still kind),
    with the EXIF of `_exif` where the format can carry it; a DNG as a camera writes it."""
    if handler.name == "DNG":
        return dng_file(backdrop(HEIGHT, WIDTH))
    picture = Image.fromarray(backdrop(HEIGHT, WIDTH))
    kind = handler.pil_formats[0]
    out = io.BytesIO()
    try:
        picture.save(out, kind, exif=_exif())
    except (TypeError, ValueError, KeyError, OSError):  # a kind without EXIF
        out = io.BytesIO()
        picture.save(out, kind)
    return out.getvalue()


def _decoded(handler: FormatHandler) -> Decoded:
    return handler.decode(_still(handler), max_pixels=10_000_000)


@STILLS
def test_registry_routes_its_extensions_and_content_to_it(handler: FormatHandler) -> None:
    data = _still(handler)
    assert handler.extensions and all(e == e.lower() and e[0] == "." for e in handler.extensions)
    for ext in handler.extensions:
        assert handler_for_bytes(data, ext) is handler
    claimed = [h.name for h in EVERY if h.accept(data[:64])]
    expected = SAME_SIGNATURE.get(handler.name, [handler.name])
    assert claimed == expected, f"its content is claimed by {claimed}"


def test_no_extension_is_claimed_twice() -> None:
    every = [e for h in EVERY for e in h.extensions]
    assert len(every) == len(set(every)), sorted(e for e in every if every.count(e) > 1)


@STILLS
def test_decode_gives_upright_uint8_frames_and_what_the_file_reveals(
    handler: FormatHandler,
) -> None:
    decoded = _decoded(handler)
    assert (decoded.width, decoded.height) == (WIDTH, HEIGHT)
    for frame in decoded.frames:
        assert frame.dtype == np.uint8 and frame.shape[:2] == (HEIGHT, WIDTH)
    assert decoded.source == _still(handler)
    if "Make" in {f.name for f in decoded.metadata}:  # the format carried the planted EXIF
        assert {"GPS", "Artist"} <= {f.name for f in decoded.metadata}


@STILLS
def test_unchanged_pixels_come_out_revealing_nothing(handler: FormatHandler) -> None:
    decoded = _decoded(handler)
    data = handler.encode(decoded, decoded.frames)
    handler.reread(data, decoded)  # the handler's own check of what it wrote passes
    again = handler.decode(data, max_pixels=10_000_000)
    assert again.metadata == [], again.metadata
    assert (again.width, again.height, len(again.frames)) == (WIDTH, HEIGHT, len(decoded.frames))
    if handler.same_pixels(data, decoded):  # lossless, or rewritten without re-encoding
        for before, after in zip(decoded.frames, again.frames, strict=True):
            np.testing.assert_array_equal(after, before)


@STILLS
def test_changed_pixels_are_what_gets_written(handler: FormatHandler) -> None:
    decoded = _decoded(handler)
    x1, y1, x2, y2 = SQUARE
    frames = []
    for frame in decoded.frames:
        painted = frame.copy()
        painted[y1:y2, x1:x2] = 0
        frames.append(painted)
    if handler.name == "DNG":  # sensor data is not obscured: the file is refused instead
        with pytest.raises(UnsupportedFormat, match="export a JPEG or TIFF"):
            handler.encode(decoded, frames)
        return
    again = handler.decode(handler.encode(decoded, frames), max_pixels=10_000_000)
    for before, after in zip(decoded.frames, again.frames, strict=True):
        inside = after[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4].astype(float)
        assert inside.mean() < 24, "the dark square was not written"
        far = np.abs(after[:, 64:].astype(float) - before[:, 64:].astype(float)).mean()
        assert far < 12, "pixels away from the change moved"


@STILLS
def test_bad_bytes_are_refused_in_veils_words(handler: FormatHandler) -> None:
    data = _still(handler)
    for damaged in (data[: len(data) // 2], data[:40]):
        try:  # anything but a VeilError escaping here fails the test
            decoded = handler.decode(damaged, max_pixels=10_000_000)
        except VeilError:
            continue
        # Some kinds show what arrived of a cut-off file: still the whole picture's size.
        assert (decoded.width, decoded.height) == (WIDTH, HEIGHT)
    with pytest.raises(CorruptInput):
        handler_for_bytes(b"this is not a picture at all" * 4, handler.extensions[0])
    with pytest.raises(TooLarge):
        handler.decode(data, max_pixels=WIDTH * HEIGHT - 1)


# -- videos ------------------------------------------------------------------------------
TAGS = {"title": "Dam square, Amsterdam", "artist": "A. Person", "author": "A. Person"}


def _clip(handler: VideoHandler, path: Path, frames: int = 6) -> None:
    """A few frames of a gradient in the handler's container, tagged with a title, an author
    and an artist (3GP keeps only its own asset tags, the others what they can). VP9 for WebM
    (the one codec family it takes that every FFmpeg build has), else MPEG-4 Part 2, which
    every other container carries."""
    with av.open(str(path), "w", format=handler.muxer) as out:
        out.metadata.update(TAGS)
        video = out.add_stream("libvpx-vp9" if handler.muxer == "webm" else "mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(backdrop(HEIGHT, WIDTH), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())


@VIDEOS
def test_video_container_round_trip(handler: VideoHandler, tmp_path: Path) -> None:
    src, out = tmp_path / f"clip{handler.extensions[0]}", tmp_path / "out"
    _clip(handler, src)
    data = src.read_bytes()
    for ext in handler.extensions:
        assert handler_for_bytes(data, ext) is handler
    claimed = [h.name for h in (*HANDLERS, *VIDEO_HANDLERS) if h.accept(data[:64])]
    assert handler.name in claimed and not any(h.accept(data[:64]) for h in HANDLERS)
    assert {"A. Person", "Dam square, Amsterdam"} & {f.value for f in handler.fields(src)}

    handler.reread(out, handler.clean(src, out))
    assert handler.fields(out) == []
    assert _frames(out) == _frames(src) == 6


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@VIDEOS
def test_cut_off_video_is_refused(handler: VideoHandler, tmp_path: Path) -> None:
    src, cut, out = tmp_path / "whole", tmp_path / "cut", tmp_path / "out"
    _clip(handler, src, frames=30)
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(VeilError):
        handler.check_whole(cut)
        handler.reread(out, handler.clean(cut, out))


# -- sound recordings ----------------------------------------------------------------------
#: The codec, sample rate and channel layout each sound container is made with here.
_SOUND_CODECS = {
    "ipod": ("aac", 44100),
    "mp3": ("libmp3lame", 44100),
    "opus": ("libopus", 48000),
    "ogg": ("flac", 44100),
    "wav": ("pcm_s16le", 44100),
    "flac": ("flac", 44100),
    "asf": ("wmav2", 44100),  # WMA; the ASF muxer writes WMV videos too
}


def _recording(handler: VideoHandler, path: Path, seconds: float = 1.0) -> None:
    """A tone in the handler's container, tagged as `_clip` tags a video."""
    codec, rate = _SOUND_CODECS[handler.muxer]
    with av.open(str(path), "w", format=handler.muxer) as out:
        out.metadata.update(TAGS)
        sound = out.add_stream(codec, rate=rate)
        sound.layout = "mono"
        if codec == "wmav2":
            sound.bit_rate = 64_000  # it has no default
        count = int(rate * seconds)
        tone = (np.sin(np.arange(count) / 9.0) * 0.3).astype(np.float32)
        for start in range(0, count, 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


@SOUNDS
def test_recording_round_trip(handler: VideoHandler, tmp_path: Path) -> None:
    src, out = tmp_path / f"take{handler.extensions[0]}", tmp_path / "out"
    _recording(handler, src)
    data = src.read_bytes()
    assert handler.sound
    for ext in handler.extensions:
        assert handler_for_bytes(data, ext) is handler
    claimed = [h.name for h in EVERY if h.accept(data[:64])]
    assert handler.name in claimed and not any(h.accept(data[:64]) for h in HANDLERS)
    assert {"A. Person", "Dam square, Amsterdam"} & {f.value for f in handler.fields(src)}

    handler.reread(out, handler.clean(src, out))
    assert handler.fields(out) == []
    np.testing.assert_array_equal(_samples(out), _samples(src))


def _samples(path: Path) -> npt.NDArray[np.float32]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1)


@SOUNDS
def test_cut_off_recording_is_refused(handler: VideoHandler, tmp_path: Path) -> None:
    src, cut, out = tmp_path / "whole", tmp_path / "cut", tmp_path / "out"
    _recording(handler, src, seconds=3.0)
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(VeilError):
        handler.reread(out, handler.clean(cut, out))


# -- documents that draw (SVG) ---------------------------------------------------------------
#: A drawing as an editor saves it: a comment, a title, an author and the editor's own
#: attribute naming a home folder; what every output must have lost.
_DRAWING = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- saved by A. Person -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" width="96" height="64"
     inkscape:export-filename="/home/aperson/drawing.png">
  <title>Dam square, Amsterdam</title>
  <metadata><dc:creator>A. Person</dc:creator></metadata>
  <rect x="24" y="16" width="32" height="32" fill="#202020"/>
</svg>
"""


@DOCUMENTS
def test_document_round_trip(handler: SvgHandler) -> None:
    pytest.importorskip("defusedxml", reason="the svg extra is not installed")
    for ext in handler.extensions:
        assert handler_for_bytes(_DRAWING, ext) is handler
    claimed = [h.name for h in EVERY if h.accept(_DRAWING[:64])]
    assert claimed == [handler.name], f"its content is claimed by {claimed}"
    drawing = handler.parse(_DRAWING)
    assert {"A. Person", "Dam square, Amsterdam"} <= {f.value for f in drawing.findings}
    out = drawing.write()
    again = handler.reread(out, drawing)  # the handler's own check of what it wrote passes
    assert again.findings == [] and b"Person" not in out and b"aperson" not in out
    assert b'<rect x="24" y="16" width="32" height="32" fill="#202020"/>' in out


@DOCUMENTS
def test_cut_off_or_foreign_document_is_refused_in_veils_words(handler: SvgHandler) -> None:
    pytest.importorskip("defusedxml", reason="the svg extra is not installed")
    for damaged in (_DRAWING[: len(_DRAWING) // 2], _DRAWING[:40]):
        with pytest.raises(CorruptInput):
            handler.parse(damaged)
    with pytest.raises(CorruptInput):
        handler_for_bytes(b"this is not a picture at all" * 4, handler.extensions[0])
