"""An animated AVIF (an image sequence, brand avis) keeps every frame and its timing, with the
face obscured in each and the metadata gone (veil kept only the first frame before); made in
the test, exiftool as the oracle where it is installed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from helpers import (
    ASTRONAUT_FACE,
    astronaut,
    central,
    exif_block,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    ssim_grey,
)
from veil import Pipeline, Settings

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
