"""PP-OCR's text detector (DB) and recognizer (CTC) run through onnxruntime.

The ONNX files are PaddleOCR's models (Apache-2.0, (c) Baidu): the PP-OCRv4 mobile detector as
shipped in the ``rapidocr_onnxruntime`` wheel and the PP-OCRv6 small recognizer as shipped in
the ``rapidocr`` wheel. veil installs both wheels without their dependencies, reads the two
files and runs them itself, so their code (and the ``requests`` it would pull in) is never
imported. Their SHA-256 is checked before they are loaded: a file that changed between releases
would change what is found, unmeasured.

The detector is v4 mobile, not the v6 small one of the same ``rapidocr`` wheel: in about three
quarters of the time it draws fewer boxes that are not plates (fewer crops to read, less area
obscured, a third of the false alarms on the face set). In fp32 it finds as many dev plates;
its int8 copy finds one to three fewer than v6's in each harder view (docs/benchmarks.md,
"Plates and text"). veil runs it with its constant scales and shifts
folded into its convolutions (`veil.graphs`: the same output, less work). Pictures are
searched with an int8 copy of that (`veil.int8`, ranges recorded by scripts/calibrate_int8.py
on camera photos that are no benchmark's), its constant multiplies and adds dropped and its
input read as the picture's bytes (`veil.graphs.constants_read_in`, `byte_input`). Outputs are
checked with the fp32 detector, the stronger reader an attacker would use.

Both models take BGR, scaled to -1..1, channels first (the int8 detector: the BGR bytes).
The detector outputs a text probability map at the input's size; boxes are read from it as
PaddleOCR does (threshold, contours, mean score, then the rectangle grown by ``area * 1.6 /
perimeter``). The recognizer reads a crop 48 px tall into 18,710 characters of many scripts
(the list is in the model's metadata).
"""

from __future__ import annotations

import functools
import hashlib
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from .. import arena, cores, int8
from ..cache import cached
from ..errors import UsageError
from ..pixels import Pixels

if TYPE_CHECKING:
    import onnxruntime as ort

#: The models: (wheel's package, file, a prefix of the SHA-256 of the file measured in
#: benchmarks/plates.py), and the wheels that ship them.
DETECTOR = ("rapidocr_onnxruntime", "ch_PP-OCRv4_det_infer.onnx", "d2a7720d")
RECOGNIZER = ("rapidocr", "PP-OCRv6_rec_small.onnx", "6f327246")
WHEELS = ("rapidocr_onnxruntime==1.4.4", "rapidocr==3.10.0")
# Without their dependencies: veil reads only the model files (the Makefile does the same).
_WHEEL_ARGS = " ".join(shlex.quote(wheel) for wheel in WHEELS)
_INSTALL = f"{shlex.quote(sys.executable)} -m pip install --no-deps --force-reinstall {_WHEEL_ARGS}"

#: The int8 detector's activation ranges (scripts/calibrate_int8.py --model text).
INT8_RANGES = Path(__file__).with_name("detector_int8_ranges.json")
_BUILD_VERSION = "10"  # bump when the way the detector copies are built changes (veil.graphs)

Quads = npt.NDArray[np.float32]  # (N, 4, 2): corners of each text box, clockwise from top left

# The detector's post-processing. ``BOX_THRESHOLD`` 0.3, not PaddleOCR's 0.5 or 0.6: chosen
# with the v6 detector, over whose boxes clean, frontal plates scored 0.45 on average (plates
# study, benchmarks/plates.py). v4's dev plate boxes score 0.80 (tenth percentile 0.72), but
# small plates far less (0.41 for a half-size one): kept, not re-tuned.
_PIXEL_THRESHOLD = 0.3
BOX_THRESHOLD = 0.3
_UNCLIP = 1.6
_MIN_SIDE = 3
_MAX_BOXES = 1000
_REC_HEIGHT = 48
_REC_BATCH = 8


_CHECKED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime, digest) hashed and found


def model_path(package: str, name: str, digest: str) -> Path:
    """The copy of model ``name`` that the installed wheel of ``package`` ships, checked
    against ``digest`` (a prefix of its SHA-256). Found without importing the package, whose
    dependencies veil does not install."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"finding plates and text needs the OCR models: {_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, digest)
        # Hashed once a process for each version of the file (the recognizer's 21 MB take
        # 30 ms, and a batch asks for both models three times before its first picture).
        found = digest if key in _CHECKED else hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(
            f"the OCR model {name} cannot be read ({exc.strerror}): {_INSTALL}"
        ) from exc
    if found.startswith(digest):
        _CHECKED.add(key)
    else:
        version = _version(package)
        raise UsageError(
            f"the OCR model {name} of {package} {version} is not the one veil was measured "
            f"with: {_INSTALL}"
        )
    return path


def require_models() -> None:
    """`UsageError` now, with the command that installs them, if the models are missing or
    not the ones measured: a batch should stop at once, not fail each of its files."""
    for model in (DETECTOR, RECOGNIZER):
        model_path(*model)


@functools.cache
def _detector_bytes() -> bytes:
    """The shipped detector file, checked (`model_path`), read once."""
    return model_path(*DETECTOR).read_bytes()


@functools.cache
def _detector_digest() -> bytes:
    """SHA-256 of the shipped detector file: part of the built copies' cache keys."""
    return hashlib.sha256(_detector_bytes()).digest()


def _built(name: str, inputs: list[bytes], build: Callable[[], bytes]) -> bytes:
    import onnxruntime as ort

    version = f"{ort.__version__}/{_BUILD_VERSION}".encode()
    return cached(name, [_detector_digest(), *inputs, version], build)


def _folded() -> bytes:
    """The detector at opset 13 with named nodes, its batch norms and its constant scales and
    shifts folded into its convolutions (`veil.graphs`): the same map for less work (the int8
    copy 30 against 47 ms on a 640x480 picture, docs/benchmarks.md). What is run in fp32 and
    what is quantized."""
    from .. import graphs

    return graphs.folded(int8.prepared(_detector_bytes()))


def fp32_detector_bytes() -> bytes:
    """The fp32 detector, folded (`_folded`) on first use and cached (`veil.cache`)."""
    return _built("ocr-detector-fp32", [], _folded)


def keep_fp32(prepared: bytes) -> list[str]:
    """The detector's nodes left in fp32: its two upsampling ConvTransposes and what follows,
    which draw the probability map at full size. The first of them in int8 was no faster
    (onnxruntime runs it between dequantize and quantize steps); the convolution before them,
    where the feature pyramid is joined, cost no plate in int8 (108 of 108 dev plates and 104
    at half size, with it quantized or not) and saves a sixth of the int8 detector's time."""
    import onnx

    nodes = onnx.load_from_string(prepared).graph.node
    first = min(i for i, node in enumerate(nodes) if node.op_type == "ConvTranspose")
    return [node.name for node in nodes[first:]]


def int8_detector_bytes() -> bytes:
    """The int8 text detector, built from `fp32_detector_bytes` and `INT8_RANGES` on first
    use (a few seconds) and cached (`veil.cache`)."""

    def build() -> bytes:
        from .. import graphs

        folded = fp32_detector_bytes()
        quantized = graphs.constants_read_in(int8.quantized(folded, INT8_RANGES, keep_fp32(folded)))
        # It reads the picture's bytes, which `_normalised` scales to 2/255 * (byte - 127.5).
        return graphs.byte_input(quantized, "x", 2 / 255, 127.5)

    return _built("ocr-detector-int8", [INT8_RANGES.read_bytes()], build)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(unknown version)"


def _session(model: Path | bytes, threads: int | None) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Always a number, as for CenterFace: left at 0, onnxruntime starts a thread per physical
    # core and pins each to its core, past the cores the process was given (`veil.cores`).
    options.intra_op_num_threads = threads or cores.available()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Its threads sleep when idle rather than spin: they would take the cores from CenterFace,
    # which runs between the two (and spinning CenterFace threads from these).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    arena.join(options)  # CenterFace's arena, not one of their own (`veil.arena`)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _normalised(bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    scaled = bgr.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1))


def bgr(pixels: Pixels) -> npt.NDArray[np.uint8]:
    """An RGB(A) or grey frame as the BGR the models were trained on."""
    if pixels.ndim == 2:
        code = cv2.COLOR_GRAY2BGR
    else:
        code = cv2.COLOR_RGBA2BGR if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    out: npt.NDArray[np.uint8] = cv2.cvtColor(pixels, code)
    return out


class TextDetector:
    """Where text is in a picture: quadrilaterals and their mean scores. ``fast``: the int8
    copy of the model (`int8_detector_bytes`), else the fp32 model."""

    def __init__(self, threads: int | None = None, fast: bool = False) -> None:
        model: Path | bytes = model_path(*DETECTOR)
        #: Whether the int8 copy runs. With no room to build the copies (a full disk), the
        #: folded fp32 one or the shipped one does, more slowly.
        self.int8 = False
        builds = [(int8_detector_bytes, True)] if fast else []
        for build, is_int8 in [*builds, (fp32_detector_bytes, False)]:
            try:
                model, self.int8 = build(), is_int8
                break
            except OSError:
                continue
        self.session = _session(model, threads)
        self._input = self.session.get_inputs()[0].name

    def detect(self, image: npt.NDArray[np.uint8], scale: float) -> tuple[Quads, list[float]]:
        """Text in BGR ``image`` run at ``scale`` times its size (sides rounded to a multiple
        of 32, as the network needs); the quads are in ``image``'s pixels."""
        height, width = image.shape[:2]
        h = max(32, round(height * scale / 32) * 32)
        w = max(32, round(width * scale / 32) * 32)
        # Bilinear, not INTER_AREA, when shrinking: area averaging costs small plates 1-15
        # points of recall (plates study).
        resized = cv2.resize(image, (w, h)) if (h, w) != (height, width) else image
        # The int8 copy takes the bytes as they are (`veil.graphs.byte_input`).
        pixels = np.ascontiguousarray(resized) if self.int8 else _normalised(resized)
        heat = self.session.run(None, {self._input: pixels[None]})[0][0, 0]
        quads, scores = _boxes(heat)
        if len(quads):
            quads *= np.array([width / w, height / h], np.float32)
        return quads, scores


def _boxes(heat: npt.NDArray[np.float32]) -> tuple[Quads, list[float]]:
    """Text boxes of the detector's probability map, in its pixels."""
    mask = cv2.dilate((heat > _PIXEL_THRESHOLD).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads, scores = [], []
    for contour in contours[:_MAX_BOXES]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < _MIN_SIDE:
            continue
        corners = cv2.boxPoints(rect)
        score = _mean_inside(heat, corners)
        if score < BOX_THRESHOLD:
            continue
        (cx, cy), (rw, rh), angle = rect
        # PaddleOCR grows the polygon by area * ratio / perimeter on every side (the map
        # marks a shrunk core of each word); for a rectangle that is a rectangle again.
        grow = rw * rh * _UNCLIP / (2 * (rw + rh))
        grown = ((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)
        if min(grown[1]) < _MIN_SIDE + 2:
            continue
        quads.append(_ordered(cv2.boxPoints(grown)))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), []
    return np.stack(quads).astype(np.float32), scores


def _mean_inside(heat: npt.NDArray[np.float32], corners: npt.NDArray[np.float32]) -> float:
    h, w = heat.shape
    x1, y1 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x2, y2 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - [x1, y1]).astype(np.int32)], 1)
    return float(cv2.mean(heat[y1 : y2 + 1, x1 : x2 + 1], mask)[0])


def _ordered(corners: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Corners as top left, top right, bottom right, bottom left."""
    by_x = corners[np.argsort(corners[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def sides(quad: npt.NDArray[np.float32]) -> tuple[float, float]:
    """A quad's mean length along the text and across it (its height for level text)."""
    along = (np.linalg.norm(quad[0] - quad[1]) + np.linalg.norm(quad[3] - quad[2])) / 2
    across = (np.linalg.norm(quad[0] - quad[3]) + np.linalg.norm(quad[1] - quad[2])) / 2
    return float(along), float(across)


def crop(image: npt.NDArray[np.uint8], quad: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The text in ``quad``, straightened (a perspective warp) and turned level when the box
    stands upright."""
    along, across = sides(quad)
    w, h = max(2, int(along)), max(2, int(across))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    out = cv2.warpPerspective(
        image, warp, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if h >= 1.5 * w:
        out = np.rot90(out)
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float


class Recognizer:
    """What text crops say (CTC, greedy), in batches of crops of similar width."""

    def __init__(self, threads: int | None = None) -> None:
        self.session = _session(model_path(*RECOGNIZER), threads)
        self._input = self.session.get_inputs()[0].name
        meta: dict[str, Any] = self.session.get_modelmeta().custom_metadata_map
        self.alphabet = ["", *meta["character"].splitlines(), " "]  # CTC blank first

    def read(self, crops: list[npt.NDArray[np.uint8]]) -> list[Reading]:
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = np.argsort(ratios, kind="stable")
        out: list[Reading] = [Reading("", 0.0)] * len(crops)
        for start in range(0, len(crops), _REC_BATCH):
            batch = order[start : start + _REC_BATCH]
            # As wide as the batch's widest crop, not PaddleOCR's floor of 320 px: a plate is
            # about 200, and the padding tripled the time (29 against 9 ms a crop, the same
            # plates read as plates on the dev set: 162 against 160).
            width = math.ceil(_REC_HEIGHT * max(1.0, *(ratios[i] for i in batch)))
            x = np.zeros((len(batch), 3, _REC_HEIGHT, width), np.float32)
            for k, i in enumerate(batch):
                w = min(width, math.ceil(_REC_HEIGHT * ratios[i]))
                x[k, :, :, :w] = _normalised(cv2.resize(crops[i], (w, _REC_HEIGHT)))
            probs = self.session.run(None, {self._input: x})[0]
            for k, i in enumerate(batch):
                out[i] = self._decode(probs[k])
        return out

    def _decode(self, probs: npt.NDArray[np.float32]) -> Reading:
        best, conf = probs.argmax(axis=1), probs.max(axis=1)
        keep = np.ones(len(best), bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        text = "".join(self.alphabet[i] for i in best[keep] if i < len(self.alphabet))
        return Reading(text, float(conf[keep].mean()) if keep.any() else 0.0)
