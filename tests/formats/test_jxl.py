"""JPEG XL: the container's EXIF, XMP and JUMBF boxes found by `scan` and left out, the
codestream copied byte for byte when nothing is obscured, a face obscured in a new codestream
otherwise; files made in the test with imagecodecs (exiftool as the oracle where installed).
The common contract runs over it too (test_format_contract, test_formats)."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from helpers import (
    ASTRONAUT_FACE,
    astronaut,
    central,
    decoded,
    exif_block,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    ssim_grey,
    textured,
)
from veil import Pipeline, Settings
from veil.errors import TooLarge
from veil.extras import install_command
from veil.formats import jxl
from veil.formats.jxl import strip_jxl

SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def _box(kind: bytes, body: bytes) -> bytes:
    return (len(body) + 8).to_bytes(4, "big") + kind + body


def _container(codestream: bytes) -> bytes:
    """A JPEG XL container: the codestream after EXIF (GPS, owner, serials), XMP naming the
    author, and a JUMBF box, as a phone or an editor writes them."""
    tiff = exif_block().removeprefix(b"Exif\x00\x00")
    return (
        SIGNATURE
        + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
        + _box(b"Exif", bytes(4) + tiff)
        + _box(b"xml ", b'<x:xmpmeta><rdf:Description dc:creator="Jane Doe"/></x:xmpmeta>')
        + _box(b"jumb", b"c2pa: edited by Jane Doe")
        + _box(b"jxlc", codestream)
    )


@pytest.fixture(scope="module")
def codestream() -> bytes:
    return bytes(imagecodecs.jpegxl_encode(astronaut(), distance=1.0))


def test_with_no_face_the_codestream_is_copied_and_the_boxes_go(
    tmp_path: Path, codestream: bytes
) -> None:
    src, dst = tmp_path / "photo.jxl", tmp_path / "out" / "photo.jxl"
    src.write_bytes(_container(codestream))
    found = {f.name for f in Pipeline(Settings()).scan(src).metadata}
    assert {"GPS", "CameraOwnerName", "XMP", "JUMBF"} <= found

    result = Pipeline(Settings(faces=False)).run(src, dst)

    assert result.status == "cleaned", result.error
    out = dst.read_bytes()
    assert out == SIGNATURE + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + _box(b"jxlc", codestream)
    assert b"Jane" not in out
    if exiftool_path():
        (row,) = exiftool_read(dst)
        assert identifying_tags(row) == []


def test_a_face_is_obscured_in_a_new_codestream(tmp_path: Path, codestream: bytes) -> None:
    src, dst = tmp_path / "portrait.jxl", tmp_path / "out" / "portrait.jxl"
    src.write_bytes(_container(codestream))

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned" and len(result.faces) >= 1, result.error
    before, after = decoded(src), decoded(dst)
    x1, y1, x2, y2 = central(ASTRONAUT_FACE)
    assert ssim_grey(before[y1:y2, x1:x2], after[y1:y2, x1:x2]) < 0.6
    assert b"Jane" not in dst.read_bytes() and b"Exif" not in dst.read_bytes()


def test_a_bare_codestream_is_kept_as_it_is(codestream: bytes) -> None:
    assert strip_jxl(codestream) == codestream


def _animation(*frames: np.ndarray) -> bytes:
    """A bare animated codestream, every frame lossless (libjxl gives each one 0.1 s)."""
    return bytes(imagecodecs.jpegxl_encode(np.stack(frames), lossless=True))


def _frames(data: bytes) -> np.ndarray:
    return imagecodecs.jpegxl_decode(data)


@pytest.fixture(scope="module")
def faceless() -> bytes:
    """Three faceless frames, each different, the size of `astronaut`."""
    height, width = astronaut().shape[:2]
    return _animation(*(np.roll(textured(height, width), 40 * k, axis=1) for k in range(3)))


def test_an_animation_with_no_face_keeps_every_frame_and_loses_its_boxes(
    tmp_path: Path, faceless: bytes
) -> None:
    src, dst = tmp_path / "moving.jxl", tmp_path / "out" / "moving.jxl"
    src.write_bytes(_container(faceless))
    report = Pipeline(Settings()).scan(src)
    assert report.frames == 3 and report.faces == [], report.error
    assert {"GPS", "CameraOwnerName", "XMP", "JUMBF"} <= {f.name for f in report.metadata}

    result = Pipeline(Settings()).run(src, dst)  # faces searched in all three frames: none

    assert result.status == "cleaned" and result.faces == [], result.error
    out = dst.read_bytes()
    # The codestream, which holds every frame's duration, is copied byte for byte.
    assert out == SIGNATURE + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + _box(b"jxlc", faceless)
    np.testing.assert_array_equal(_frames(out), _frames(faceless))
    assert b"Jane" not in out and b"Exif" not in out


def test_an_animation_split_in_parts_keeps_its_parts_and_loses_what_follows() -> None:
    # libjxl's own container: the codestream in jxlp parts; EXIF and XMP written after it.
    frames = np.stack([textured(24, 32), textured(24, 32, seed=2)])
    data = bytes(imagecodecs.jpegxl_encode(frames, lossless=True, usecontainer=True))
    assert data.count(b"jxlp") == 2
    planted = data + _box(b"Exif", bytes(4) + exif_block()[6:]) + _box(b"xml ", b"<x:xmpmeta/>")
    handler = jxl.JxlHandler()
    source = handler.decode(planted, max_pixels=10_000_000)
    assert len(source.frames) == 2 and {"GPS", "XMP"} <= {f.name for f in source.metadata}
    assert handler.encode(source, source.frames) == data


def test_a_grey_animation_is_read_frame_by_frame() -> None:
    # imagecodecs gives a grey animation as (frames, height, width), the shape of a still
    # with samples; one frame's shape tells them apart.
    frames = np.stack([textured(40, 48)[..., 0], textured(40, 48, seed=2)[..., 0]])
    data = _animation(*frames)
    handler = jxl.JxlHandler()
    decoded_ = handler.decode(data, max_pixels=10_000_000)
    assert len(decoded_.frames) == 2 and (decoded_.width, decoded_.height) == (48, 40)
    for frame, grey in zip(decoded_.frames, frames, strict=True):
        np.testing.assert_array_equal(frame, np.repeat(grey[..., None], 3, axis=2))
    assert handler.encode(decoded_, decoded_.frames) == data


def test_a_face_in_one_frame_of_an_animation_is_found_and_the_file_refused(
    tmp_path: Path,
) -> None:
    # Only the last frame shows a face: every frame is searched. imagecodecs cannot write an
    # animation with its timing, so the file is refused rather than written with other timing.
    height, width = astronaut().shape[:2]
    src, dst = tmp_path / "moving.jxl", tmp_path / "out" / "moving.jxl"
    src.write_bytes(_container(_animation(textured(height, width), astronaut())))
    report = Pipeline(Settings()).scan(src)
    assert report.frames == 2 and len(report.faces) >= 1, report.error
    assert "cannot write JPEG XL animations" in (report.refused or "")  # scan says so first

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "skipped", result
    assert result.error == report.refused
    assert not dst.exists() and not dst.parent.exists()


def test_a_truncated_animation_fails_clearly(tmp_path: Path) -> None:
    # Cut between its two frames, libjxl decodes the first without an error: the longest
    # such prefix reads as a still, and was copied as if whole.
    data = _animation(textured(24, 32), textured(24, 32, seed=2))
    between = next(cut for cut in range(len(data) - 1, 0, -1) if _decodes_to_fewer(data[:cut]))
    for cut in (between, len(data) - 20):  # between the frames, inside the last one
        src, dst = tmp_path / f"cut{cut}.jxl", tmp_path / "out" / f"cut{cut}.jxl"
        src.write_bytes(data[:cut])
        result = Pipeline(Settings(faces=False)).run(src, dst)
        assert result.status == "failed", result
        assert "JPEG XL file is truncated" in (result.error or ""), result.error
        assert not dst.exists()


def _decodes_to_fewer(data: bytes) -> bool:
    """Whether ``data`` decodes, without an error, to one frame of two."""
    try:
        return _frames(data).ndim == 3
    except imagecodecs.JpegxlError:
        return False


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data[:32] + b"\xff\xff\xff\xff" + data[36:],  # the EXIF box past the end
    ],
    ids=["cut", "box-past-end"],
)
def test_a_damaged_file_fails_clearly(tmp_path: Path, codestream: bytes, damage) -> None:
    src = tmp_path / "broken.jxl"
    src.write_bytes(damage(_container(codestream)))
    result = Pipeline(Settings()).run(src, tmp_path / "out.jxl")
    assert result.status == "failed" and "JPEG XL" in (result.error or ""), result.error
    assert "unexpectedly" not in (result.error or "")
    assert not (tmp_path / "out.jxl").exists()


def test_without_the_decoder_a_jxl_file_is_skipped_with_the_install_hint(
    tmp_path: Path, codestream: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jxl, "available", lambda: False)
    src = tmp_path / "photo.jxl"
    src.write_bytes(codestream)
    result = Pipeline(Settings()).run(src, tmp_path / "out.jxl")
    assert result.status == "skipped" and install_command("jxl") in (result.error or "")


@pytest.mark.parametrize("shape", [(64, 96, 3), (63, 97), (100, 150, 3), (1000, 3000, 3)])
def test_the_size_is_read_from_the_header(shape: tuple[int, ...]) -> None:
    bare = bytes(imagecodecs.jpegxl_encode(np.zeros(shape, np.uint8), distance=1.0))
    assert jxl.picture_size(bare) == (shape[1], shape[0])
    assert jxl.picture_size(_container(bare)) == (shape[1], shape[0])


def test_a_file_claiming_too_many_pixels_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SizeHeader of 2**20 x 2**20 (ratio 1:1) and nothing after it: libjxl would try to
    make a terabyte picture; veil says no from the header alone."""
    header = 0b0 | 0b11 << 1 | ((1 << 20) - 1) << 3 | 0b001 << 33
    bomb = b"\xff\x0a" + header.to_bytes(12, "little") + bytes(64)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded before the size was checked")

    monkeypatch.setattr(imagecodecs, "jpegxl_decode", no_decoding)
    with pytest.raises(TooLarge, match="1048576x1048576"):
        jxl.JxlHandler().decode(bomb, max_pixels=10**8)
