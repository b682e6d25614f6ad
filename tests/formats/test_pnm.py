"""PNM (PBM, PGM, PPM): header comments found by `scan`, gone from every output, the raster
copied byte for byte when nothing is obscured; files made in the test, exiftool as the oracle
where it is installed (the common contract runs over every format: test_format_contract)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import backdrop
from veil import Pipeline, Settings
from veil.errors import VeilError
from veil.formats import handler_for_bytes
from veil.formats.pnm import PnmHandler, strip_pnm

COMMENT = b"# Scanned by Jane Doe, Flatbed SN 0042-7781, 2026-05-01\n"


def _raw(magic: bytes, width: int, height: int, maxval: bytes | None, raster: bytes) -> bytes:
    header = magic + b"\n" + COMMENT + b"%d %d\n" % (width, height)
    return header + (maxval + b"\n" if maxval else b"") + raster


def _ppm(height: int = 48, width: int = 64) -> tuple[bytes, np.ndarray]:
    rgb = backdrop(height, width)
    return _raw(b"P6", width, height, b"255", rgb.tobytes()), rgb


def _exiftool_comment(path: Path) -> str | None:
    """exiftool's Comment tag of ``path``; None where exiftool is not installed."""
    if shutil.which("exiftool") is None:
        return None
    out = subprocess.run(
        ["exiftool", "-s3", "-Comment", str(path)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_a_comment_is_found_and_the_raster_is_copied_without_it(tmp_path: Path) -> None:
    data, rgb = _ppm()
    src = tmp_path / "scan.ppm"
    src.write_bytes(data)
    assert _exiftool_comment(src) in (None, COMMENT[2:].decode().strip())
    handler = handler_for_bytes(data, ".ppm")
    decoded = handler.decode(data, 10_000_000)
    assert [f.name for f in decoded.metadata] == ["PNM comment"]
    assert "Jane Doe" in decoded.metadata[0].value

    out = handler.encode(decoded, decoded.frames)
    assert out == b"P6\n64 48\n255\n" + rgb.tobytes()  # the raster, byte for byte
    handler.reread(out, decoded)
    (tmp_path / "out.ppm").write_bytes(out)
    assert _exiftool_comment(tmp_path / "out.ppm") in (None, "")


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        # 16-bit grey: the samples stay 16-bit (Pillow alone would write them as 8)
        (_raw(b"P5", 2, 2, b"65535", bytes(range(8))), b"P5\n2 2\n65535\n" + bytes(range(8))),
        # a bitmap: no maxval, rows padded to a byte
        (_raw(b"P4", 9, 2, None, b"\xff\x80\x01\x00"), b"P4\n9 2\n\xff\x80\x01\x00"),
        # plain (ASCII) stays plain, its samples as written
        (_raw(b"P3", 2, 1, b"255", b"1 2 3\n4 5 6\n"), b"P3\n2 1\n255\n1 2 3\n4 5 6\n"),
        # a second picture appended to the file is not the one shown, and goes
        (
            _raw(b"P5", 2, 1, b"255", b"\x10\x20" + b"P5\n2 1\n255\n\x00\x00"),
            b"P5\n2 1\n255\n\x10\x20",
        ),
    ],
    ids=["16-bit", "bitmap", "plain", "appended"],
)
def test_every_variant_keeps_its_samples(data: bytes, kept: bytes) -> None:
    assert strip_pnm(data) == kept
    handler = PnmHandler()
    decoded = handler.decode(data, 10_000_000)
    assert handler.encode(decoded, decoded.frames) == kept


def test_an_obscured_face_is_written_and_the_comment_is_not(tmp_path: Path) -> None:
    from helpers import astronaut

    rgb = astronaut()
    src = tmp_path / "portrait.ppm"
    src.write_bytes(_raw(b"P6", rgb.shape[1], rgb.shape[0], b"255", rgb.tobytes()))
    result = Pipeline(Settings()).run(src, tmp_path / "out" / "portrait.ppm")
    assert result.status == "cleaned" and len(result.faces) == 1
    assert result.metadata_removed == ["PNM comment"]
    out = (tmp_path / "out" / "portrait.ppm").read_bytes()
    assert b"Jane" not in out and out.startswith(b"P6\n")


@pytest.mark.parametrize(
    "bad",
    [
        b"P6\n# only a comment\n",  # no size
        b"P6\n64 48\n255\n" + b"\x00" * 100,  # the raster cut short
        b"P6\n-4 48\n255\n",  # not a size
    ],
)
def test_a_broken_header_or_raster_fails_clearly(bad: bytes) -> None:
    with pytest.raises(VeilError):
        PnmHandler().decode(bad, 10_000_000)
