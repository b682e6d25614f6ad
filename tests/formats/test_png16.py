"""A 16-bit PNG with a face obscured stays 16 bits a sample: the samples away from the face
are the source's, to the bit, and its colour chunks are kept (veil wrote 8 bits before);
made in the test, with OpenCV, which writes 16-bit PNGs."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import ASTRONAUT_FACE, astronaut, central, srgb_icc, ssim_grey
from veil import Pipeline, Settings
from veil.formats.png import _chunk, _chunks


def _deep(rgb: np.ndarray, kind: str) -> bytes:
    """``rgb`` as a 16-bit PNG with fine detail in the low byte, an ICC profile and a text
    chunk naming its author."""
    wide = rgb.astype(np.uint16) * 257 + np.arange(rgb.shape[1], dtype=np.uint16)[:, None] % 200
    if kind == "grey":
        wide = wide.mean(axis=2).astype(np.uint16)
    elif kind == "rgba":  # a soft alpha edge on the left
        alpha = np.clip(np.arange(rgb.shape[1]) * 600, 0, 65535).astype(np.uint16)
        wide = cv2.cvtColor(wide, cv2.COLOR_RGB2BGR)
        wide = np.dstack([wide, np.broadcast_to(alpha, rgb.shape[:2])])
    else:
        wide = cv2.cvtColor(wide, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", wide)
    assert ok
    chunks = _chunks(encoded.tobytes())
    icc = b"" if kind == "grey" else _chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_icc()))
    text = _chunk(b"tEXt", b"Author\x00Jane Q. Photographer")
    rest = b"".join(c for k, c in chunks[1:])
    return b"\x89PNG\r\n\x1a\n" + chunks[0][1] + icc + text + rest


@pytest.mark.parametrize("kind", ["rgb", "grey", "rgba"])
def test_a_16_bit_png_keeps_its_samples_away_from_the_face(tmp_path: Path, kind: str) -> None:
    src, dst = tmp_path / "deep.png", tmp_path / "out" / "deep.png"
    src.write_bytes(_deep(astronaut(), kind))

    result = Pipeline(Settings()).run(src, dst)

    assert result.status == "cleaned" and len(result.faces) == 1, result.error
    assert result.metadata_removed  # the author's name
    before = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    after = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
    assert after.dtype == np.uint16 and after.shape == before.shape
    x1, y1, x2, y2 = result.faces[0].region
    away = np.ones(before.shape[:2], bool)
    away[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(after[away], before[away])  # to the bit
    cx1, cy1, cx2, cy2 = central(ASTRONAUT_FACE)
    face = np.s_[cy1:cy2, cx1:cx2]
    assert ssim_grey(_top_byte(before[face]), _top_byte(after[face])) < 0.6
    data = dst.read_bytes()
    assert (b"iCCP" in data) is (kind != "grey") and b"Jane" not in data and b"tEXt" not in data


def _top_byte(wide: np.ndarray) -> np.ndarray:
    """What an 8-bit viewer shows of 16-bit samples, alpha left out."""
    colour = wide[..., :3] if wide.ndim == 3 else wide
    return (colour >> 8).astype(np.uint8)
