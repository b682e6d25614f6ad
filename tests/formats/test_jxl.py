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
)
from veil import Pipeline, Settings
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


def test_an_animation_is_refused_with_its_reason(tmp_path: Path) -> None:
    frames = np.stack([astronaut(), astronaut()[::-1]])
    src = tmp_path / "moving.jxl"
    src.write_bytes(bytes(imagecodecs.jpegxl_encode(frames, distance=1.0)))
    result = Pipeline(Settings()).run(src, tmp_path / "out.jxl")
    assert result.status == "skipped" and "animated JPEG XL" in (result.error or "")


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
