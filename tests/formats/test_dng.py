"""DNG: with nothing to obscure, the sensor data is copied byte for byte into a one-IFD DNG
that keeps only the tags a developer needs; what a camera or converter adds (serials, owner,
GPS, XMP, maker data, previews) goes. With a face, the file is refused: veil does not obscure
sensor data. Files made in the test (`helpers.dng_file`), developed with LibRaw (rawpy);
exiftool as the oracle where installed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import (
    DNG_ORIGINAL_NAME,
    MAKER_SERIAL,
    MODEL,
    OWNER,
    SERIAL,
    astronaut,
    dng_file,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    textured,
)
from veil import Pipeline, Settings
from veil.errors import CorruptInput, UnsupportedFormat
from veil.extras import install_command
from veil.formats import handler_for_bytes
from veil.formats.dng import DngHandler

rawpy = pytest.importorskip("rawpy", reason="DNG needs the dng extra: pip install -e '.[dng]'")


def _developed(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The sensor values LibRaw reads and the picture it develops with its defaults."""
    with rawpy.imread(io.BytesIO(data)) as raw:
        return raw.raw_image_visible.copy(), raw.postprocess()


@pytest.mark.parametrize("in_subifd", [True, False], ids=["sensor-in-subifd", "sensor-in-ifd0"])
def test_with_nothing_to_obscure_the_sensor_data_is_copied_and_the_rest_goes(
    tmp_path: Path, in_subifd: bool
) -> None:
    src, dst = tmp_path / "street.dng", tmp_path / "out" / "street.dng"
    src.write_bytes(dng_file(textured(96, 128), in_subifd=in_subifd))

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned" and not result.faces, result.error
    removed = set(result.metadata_removed)
    assert {"GPS", "Artist", "CameraOwnerName", "Make", "CameraSerialNumber"} <= removed
    assert {"RawDataUniqueID", "OriginalRawFileName", "DNGPrivateData", "XMP"} <= removed
    assert ("PreviewImage" in removed) is in_subifd
    source, out = src.read_bytes(), dst.read_bytes()
    # The Model tag goes; UniqueCameraModel ("VeilCam Spy") stays, as the DNG specification
    # requires, so the maker's name is no test here.
    for planted in (MODEL, SERIAL, OWNER, MAKER_SERIAL, DNG_ORIGINAL_NAME, "Amsterdam"):
        assert planted.encode() not in out, planted
    sensor_bytes = source[-96 * 128 * 2 :]  # the builder writes the sensor data last
    assert sensor_bytes in out  # byte for byte
    raw_before, picture_before = _developed(source)
    raw_after, picture_after = _developed(out)
    np.testing.assert_array_equal(raw_after, raw_before)
    np.testing.assert_array_equal(picture_after, picture_before)
    # What a developer needs is still there, and the output is still a DNG.
    assert handler_for_bytes(out, ".dng").name == "DNG"
    assert DngHandler().decode(out, 10**8).metadata == []


@pytest.mark.skipif(exiftool_path() is None, reason="exiftool is the oracle here")
def test_exiftool_finds_nothing_identifying_left(tmp_path: Path) -> None:
    src, dst = tmp_path / "street.dng", tmp_path / "out" / "street.dng"
    src.write_bytes(dng_file(textured(64, 96)))
    assert Pipeline(Settings()).run(src, dst).status == "cleaned"

    before, after = exiftool_read(src, dst)

    assert len(identifying_tags(before)) >= 10, identifying_tags(before)
    assert identifying_tags(after) == []
    names = {key.rsplit(":", 1)[-1] for key in after}
    assert {"DNGVersion", "UniqueCameraModel", "ColorMatrix1", "CFAPattern2"} <= names
    assert not names & {"CameraSerialNumber", "RawDataUniqueID", "OriginalRawFileName"}
    assert after.get("File:FileType") == "DNG"


def test_the_orientation_in_ifd0_still_applies(tmp_path: Path) -> None:
    src, dst = tmp_path / "portrait.dng", tmp_path / "out" / "portrait.dng"
    src.write_bytes(dng_file(textured(64, 96), orientation=6))

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned", result.error
    before, after = _developed(src.read_bytes())[1], _developed(dst.read_bytes())[1]
    assert before.shape[:2] == (96, 64)  # turned a quarter, as a viewer shows it
    np.testing.assert_array_equal(after, before)


def test_a_face_in_a_dng_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    src, dst = tmp_path / "portrait.dng", tmp_path / "out" / "portrait.dng"
    src.write_bytes(dng_file(astronaut()))
    report = Pipeline(Settings()).scan(src)
    assert report.faces and "export a JPEG or TIFF" in (report.refused or "")  # said first

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "skipped" and result.error == report.refused
    assert not dst.exists()


def _written(folder: Path, rgb: np.ndarray) -> Path:
    path = folder / "photo.dng"
    path.write_bytes(dng_file(rgb))
    return path


def test_scan_shows_what_a_dng_reveals(tmp_path: Path) -> None:
    found = {
        f.name: f.value for f in DngHandler().decode(dng_file(textured(64, 96)), 10**8).metadata
    }

    assert found["OriginalRawFileName"] == DNG_ORIGINAL_NAME
    assert Pipeline(Settings()).scan(_written(tmp_path, textured(64, 96))).refused is None
    assert found["CameraSerialNumber"] == SERIAL and found["CameraOwnerName"] == OWNER
    assert found["GPS"].startswith("52.373")
    expected = {"Make", "Model", "Artist", "DateTime", "DateTimeOriginal", "BodySerialNumber"}
    assert expected | {"RawDataUniqueID", "DNGPrivateData", "XMP", "PreviewImage"} <= set(found)
    # The tags the rewrite keeps are no finding.
    assert not set(found) & {"UniqueCameraModel", "ColorMatrix1", "DNGVersion", "BlackLevel"}


def test_cut_short_or_foreign_files_are_refused_in_veils_words(tmp_path: Path) -> None:
    data = dng_file(textured(64, 96))
    handler = DngHandler()
    with pytest.raises(CorruptInput, match="cut short"):
        handler.decode(data[: len(data) - 100], 10**8)
    with pytest.raises(CorruptInput):
        handler.decode(data[:300], 10**8)
    tiff = io.BytesIO()
    from PIL import Image

    Image.fromarray(textured(32, 32)).save(tiff, "TIFF")
    with pytest.raises(CorruptInput, match=r"name it \.tif"):
        handler.decode(tiff.getvalue(), 10**8)
    src = tmp_path / "cut.dng"
    src.write_bytes(data[: len(data) // 2])
    result = Pipeline(Settings()).run(src, tmp_path / "out" / "cut.dng")
    assert result.status == "failed" and "CorruptInput" in (result.error or "")


def test_without_libraw_a_dng_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy now fails

    with pytest.raises(UnsupportedFormat, match="LibRaw") as caught:
        DngHandler().decode(dng_file(textured(32, 32)), 10**8)

    assert install_command("dng") in str(caught.value)
