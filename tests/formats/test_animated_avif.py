"""An animated AVIF (an image sequence, brand avis) keeps every frame and its timing, with the
face obscured in each and the metadata gone (veil kept only the first frame before); made in
the test, exiftool as the oracle where it is installed.

With no face, the file is rewritten rather than re-encoded (`isobmff.strip_heif` following the
``moov`` track): every coded frame byte for byte, the timing, and none of the metadata planted
in the movie (udta GPS and names, handler and compressor names, a timed GPS track, dates)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

import veil
from helpers import (
    ASTRONAUT_FACE,
    SERIAL,
    astronaut,
    central,
    exif_block,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    ssim_grey,
    textured,
    xmp_packet,
)
from veil import Pipeline, Settings
from veil.formats.isobmff import Box, box, boxes, full_box, strip_heif

DURATIONS = [100, 200, 300]


def _animation() -> bytes:
    frames = [Image.fromarray(np.roll(astronaut(), 8 * i, axis=0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(
        out, "AVIF", save_all=True, append_images=frames[1:], duration=DURATIONS, quality=90,
        exif=exif_block(),
    )  # fmt: skip
    return out.getvalue()


def test_every_frame_is_kept_with_its_timing_and_its_face_obscured(tmp_path: Path) -> None:
    src, dst = tmp_path / "wave.avif", tmp_path / "out" / "wave.avif"
    src.write_bytes(_animation())

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned", result.error
    assert "GPS" in result.metadata_removed and result.faces
    with Image.open(dst) as out, Image.open(src) as before:
        assert out.n_frames == 3
        pairs = zip(ImageSequence.Iterator(before), ImageSequence.Iterator(out), strict=True)
        for i, (a, b) in enumerate(pairs):
            x1, y1, x2, y2 = central(ASTRONAUT_FACE)
            shift = 8 * i  # the face moves down with the frame
            face = (x1, y1 + shift, x2, y2 + shift)
            was, now = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
            crop = np.s_[face[1] : face[3], face[0] : face[2]]
            assert ssim_grey(was[crop], now[crop]) < 0.6, f"frame {i}: the face is still there"
            assert b.info.get("duration") == DURATIONS[i]
    if exiftool_path():
        (row,) = exiftool_read(dst)
        assert identifying_tags(row) == []


# -- no face: the sequence is rewritten, not re-encoded --------------------------------------
XMP_MARKER = b"veil-seq-xmp-3b9e"
XMP_PACKET = xmp_packet(XMP_MARKER)
# Planted in the movie: a udta title and place, a track name, the handler and compressor names,
# a timed-metadata track's GPS sample (in an mdat of its own), a free box at the top level.
TITLE, TRACK_NAME = b"veil-movie-title-77c1", b"veil-track-name-e042"
HANDLER_NAME, COMPRESSOR = b"veil-handler-name-19af", b"veil-cname-5d"
GPS_SAMPLE, FREE_MARKER = b"veil-gps-track-+52.3731+004.8924", b"veil-free-box-0c6a"
PLACE = b"+52.3731+004.8924/"
MARKERS = (XMP_MARKER, SERIAL.encode(), TITLE, TRACK_NAME, HANDLER_NAME, COMPRESSOR,
           GPS_SAMPLE, FREE_MARKER, PLACE)  # fmt: skip
DATED = struct.pack(">II", 3_706_000_000, 3_706_000_000)  # 2021-06-10, as seconds since 1904
_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def _faceless(mode: str = "RGB") -> bytes:
    """Three frames of grain (re-encoding would change pixels) with EXIF (GPS) and XMP."""
    frames = []
    for i in range(3):
        pixels = textured(64, 96, seed=i + 1)
        if mode == "RGBA":  # an alpha plane that changes from frame to frame
            pixels = np.dstack([pixels, np.full((64, 96), 90 + 60 * i, np.uint8)])
        frames.append(Image.fromarray(pixels, mode))
    out = io.BytesIO()
    frames[0].save(
        out, "AVIF", save_all=True, append_images=frames[1:], duration=DURATIONS, quality=80,
        exif=exif_block(), xmp=XMP_PACKET,
    )  # fmt: skip
    return out.getvalue()


def _top(data: bytes) -> dict[bytes, Box]:
    return {b.type: b for b in boxes(data)}


def _rewrite(data: bytes, start: int, end: int, extra: dict[bytes, bytes]) -> bytes:
    """data[start:end] with the planted names and dates, ``extra`` appended to containers."""
    out = b""
    for found in boxes(data, start, end):
        body = bytearray(data[found.body : found.end])
        if found.type in _CONTAINERS:
            body = bytearray(
                _rewrite(data, found.body, found.end, extra) + extra.get(found.type, b"")
            )
        elif found.type in (b"mvhd", b"tkhd", b"mdhd"):  # version 1: 64-bit times
            times = struct.pack(">QQ" if body[0] else ">II", *struct.unpack(">II", DATED))
            body[4 : 4 + len(times)] = times
        elif found.type == b"hdlr":
            body = body[:20] + HANDLER_NAME + b"\x00"
        elif found.type == b"stsd":  # the first entry's compressorname (a length, then text)
            name = bytes([len(COMPRESSOR)]) + COMPRESSOR
            body[8 + 8 + 42 : 8 + 8 + 42 + len(name)] = name
        out += box(found.type, bytes(body))
    return out


def _gps_track(offset: int, length: int) -> bytes:
    """A timed-metadata track (handler meta) of one sample at ``offset``, describing track 1."""
    tkhd = full_box(b"tkhd", 0, 1, DATED + (9).to_bytes(4, "big") + bytes(68))
    mdhd = full_box(b"mdhd", 0, 0, DATED + struct.pack(">II", 1000, 1000) + b"\x55\xc4" + bytes(2))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4) + b"meta" + bytes(12) + b"\x00")
    dinf = box(
        b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1) + full_box(b"url ", 0, 1, b""))
    )
    mett = box(b"mett", bytes(6) + struct.pack(">H", 1) + b"\x00application/gps\x00")
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1) + mett)
        + full_box(b"stts", 0, 0, struct.pack(">III", 1, 1, 1000))
        + full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1))
        + full_box(b"stsz", 0, 0, struct.pack(">III", 0, 1, length))
        + full_box(b"stco", 0, 0, struct.pack(">II", 1, offset)),
    )
    minf = box(b"minf", full_box(b"nmhd", 0, 0, b"") + dinf + stbl)
    tref = box(b"tref", box(b"cdsc", struct.pack(">I", 1)))
    return box(b"trak", tkhd + tref + box(b"mdia", mdhd + hdlr + minf))


def _planted(data: bytes) -> bytes:
    """``data`` (libavif's ftyp, meta, moov, mdat) with metadata planted in its movie. The old
    moov becomes a free box of the same size, so no offset moves; the new one goes last."""
    top = _top(data)
    assert list(top) == [b"ftyp", b"meta", b"moov", b"mdat"], "libavif's layout changed"
    moov = top[b"moov"]
    gps_at = len(data) + 8  # its mdat follows the file
    udta = box(
        b"udta",
        box(b"\xa9nam", struct.pack(">HH", len(TITLE), 0) + TITLE)
        + box(b"\xa9xyz", struct.pack(">HH", len(PLACE), 0x15C7) + PLACE),
    )
    in_tracks = {b"trak": box(b"udta", box(b"name", TRACK_NAME))}
    new_moov = box(
        b"moov",
        _rewrite(data, moov.body, moov.end, in_tracks) + udta + _gps_track(gps_at, len(GPS_SAMPLE)),
    )
    free = box(b"free", FREE_MARKER.ljust(moov.end - moov.start - 8, b"\x00"))
    gps = box(b"mdat", GPS_SAMPLE)
    return data[: moov.start] + free + data[moov.end :] + gps + new_moov


def _frames(data: bytes) -> list[tuple[np.ndarray, int]]:
    with Image.open(io.BytesIO(data)) as im:
        return [
            (np.asarray(f.convert("RGBA")), f.info.get("duration"))
            for f in ImageSequence.Iterator(im)
        ]


def _stbl(data: bytes, track: Box) -> dict[bytes, Box]:
    found = track
    for kind in (b"mdia", b"minf", b"stbl"):
        (found,) = (b for b in boxes(data, found.body, found.end) if b.type == kind)
    return {b.type: b for b in boxes(data, found.body, found.end)}


def _tracks(data: bytes) -> list[Box]:
    moov = _top(data)[b"moov"]
    return [b for b in boxes(data, moov.body, moov.end) if b.type == b"trak"]


def _samples(data: bytes, track: int = 0) -> list[bytes]:
    """The coded frames of a track, read through its own sample tables (stco, stsc, stsz)."""
    table = _stbl(data, _tracks(data)[track])

    def table_of(kind: bytes, fields: str) -> list[tuple[int, ...]]:
        (count,) = struct.unpack_from(">I", data, table[kind].body + 4)
        return list(
            struct.iter_unpack(fields, data[table[kind].body + 8 :][: count * 4 * len(fields[1:])])
        )

    offsets = [offset for (offset,) in table_of(b"stco", ">I")]
    runs = [(first, per) for first, per, _ in table_of(b"stsc", ">III")]
    size, count = struct.unpack_from(">II", data, table[b"stsz"].body + 4)
    sizes = (
        [size] * count
        if size
        else list(struct.unpack_from(f">{count}I", data, table[b"stsz"].body + 12))
    )
    samples: list[bytes] = []
    for chunk, offset in enumerate(offsets, 1):
        per_chunk = next(per for first, per in reversed(runs) if first <= chunk)
        for size in sizes[len(samples) : len(samples) + per_chunk]:
            samples.append(data[offset : offset + size])
            offset += size
    assert len(samples) == count
    return samples


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sequence")
    plain = _faceless()
    src, dst = root / "grain.avif", root / "out" / "grain.avif"
    src.write_bytes(_planted(plain))
    # The planted file must still be the same animation to libavif, and carry every marker.
    assert [(a.tobytes(), d) for a, d in _frames(src.read_bytes())] == [
        (a.tobytes(), d) for a, d in _frames(plain)
    ]
    assert all(m in src.read_bytes() for m in MARKERS)
    result = veil.clean(src, dst, faces=False)
    assert result.status == "cleaned", result.error
    return src, dst


def _rewritten(planted: tuple[Path, Path]) -> bytes:
    """The output, checked to be the rewrite (the source's coded frames), not a re-encode."""
    src, dst = planted
    data = dst.read_bytes()
    assert _samples(data) == _samples(src.read_bytes()), "coded frames differ: re-encoded"
    return data


def test_faceless_animation_is_rewritten_frame_for_frame(planted: tuple[Path, Path]) -> None:
    src, dst = planted
    before, after = _frames(src.read_bytes()), _frames(dst.read_bytes())
    assert [d for _, d in after] == DURATIONS
    assert len(after) == len(before) == 3
    for i, ((was, _), (now, _)) in enumerate(zip(before, after, strict=True)):
        assert np.array_equal(was, now), f"frame {i} changed: re-encoded, not rewritten"
    _rewritten(planted)


def test_movie_metadata_is_gone(planted: tuple[Path, Path]) -> None:
    data = _rewritten(planted)
    for marker in MARKERS:
        assert marker not in data, marker
    assert b"Exif\x00\x00" not in data and b"application/rdf+xml" not in data
    assert len(_tracks(data)) == 1, "only the picture track is kept"
    moov = _top(data)[b"moov"]
    assert [b.type for b in boxes(data, moov.body, moov.end)] == [b"mvhd", b"trak"]
    headers = [moov]
    for trak in _tracks(data):
        headers.append(trak)
        (mdia,) = (b for b in boxes(data, trak.body, trak.end) if b.type == b"mdia")
        headers.append(mdia)
    for container in headers:
        for found in boxes(data, container.body, container.end):
            if found.type in (b"mvhd", b"tkhd", b"mdhd"):
                wide = data[found.body] == 1
                times = data[found.body + 4 : found.body + (20 if wide else 12)]
                assert times == bytes(len(times)), f"{found.type!r} keeps a date"


def test_exiftool_finds_nothing_identifying(planted: tuple[Path, Path], exiftool: str) -> None:
    _rewritten(planted)
    before, after = exiftool_read(*planted)
    planted_tags = identifying_tags(before)
    assert any("GPSCoordinates" in k for k in planted_tags), "the fixture's udta place"
    assert any(k.startswith("EXIF:GPS:") for k in planted_tags)
    assert any("CreateDate" in k for k in planted_tags)
    assert identifying_tags(after) == [], {k: after[k] for k in identifying_tags(after)}


def test_alpha_track_kept() -> None:
    data = _faceless("RGBA")
    assert len(_tracks(data)) == 2, "libavif writes alpha as an auxiliary track"
    stripped = strip_heif(data, 3)
    assert stripped is not None
    assert len(_tracks(stripped)) == 2
    before, after = _frames(data), _frames(stripped)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(before, after, strict=True))
    assert len(after) == 3 and len({a[..., 3].tobytes() for a, _ in after}) == 3
    for track in (0, 1):
        assert _samples(stripped, track) == _samples(data, track)


def _other_first_item(data: bytes) -> bytes:
    """The primary item pointed at the second frame: a still the reader never shows."""
    first, second = (data.find(s) for s in _samples(data)[:2])
    old = struct.pack(">II", first, len(_samples(data)[0]))
    new = struct.pack(">II", second, len(_samples(data)[1]))
    meta = _top(data)[b"meta"]
    assert data.count(old, meta.body, meta.end) == 1
    return data[: meta.body] + data[meta.body : meta.end].replace(old, new) + data[meta.end :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: (d[: len(d) * 2 // 3], 3), id="truncated"),
        pytest.param(lambda d: (d, 2), id="fewer-frames-decoded"),
        pytest.param(lambda d: (d[:8] + b"avif" + d[12:], 1), id="reader-shows-the-still"),
        pytest.param(lambda d: (d, None), id="frames-not-decoded-heif"),
        pytest.param(lambda d: (_other_first_item(d), 3), id="still-is-not-a-frame"),
        pytest.param(lambda d: (d + box(b"moof", b""), 3), id="fragmented"),
        pytest.param(
            lambda d: (d.replace(b"url \x00\x00\x00\x01", b"url \x00\x00\x00\x00"), 3),
            id="frames-in-another-file",
        ),
        pytest.param(lambda d: (d.replace(b"stsc", b"stsC"), 3), id="no-sample-to-chunk"),
    ],
)
def test_unfollowable_sequences_fall_back(
    damage: Callable[[bytes], tuple[bytes, int | None]],
) -> None:
    data, frames = damage(_faceless())
    assert strip_heif(data, frames) is None


def test_truncated_sequence_fails_clearly(tmp_path: Path) -> None:
    data = _faceless()
    cut = data[: len(data) - 200]  # inside the last frame
    assert strip_heif(cut, 3) is None
    src, dst = tmp_path / "cut.avif", tmp_path / "out" / "cut.avif"
    src.write_bytes(cut)
    result = veil.clean(src, dst, faces=False)
    assert result.status == "failed" and "CorruptInput" in (result.error or ""), result
    assert not dst.exists()
