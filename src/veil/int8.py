"""int8 copies of veil's fp32 ONNX detectors, built on first use from the shipped model file
and activation ranges committed beside the code (no weights are committed or downloaded).

Both detectors spend most of a photo's time in convolutions, which run faster in int8 on a CPU:
CenterFace 2x, the text detector 1.4x (docs/benchmarks.md). A copy is built the same way for
each: the model brought to opset 13 (per-channel weight scales need its DequantizeLinear
axis), its nodes named ``node0``, ``node1``, ... in graph order (so that the nodes kept in fp32
can be named), batch norms folded, then quantized statically: QDQ, weights int8 per channel,
activations uint8 over the MinMax ranges that a calibration run recorded
(scripts/calibrate_int8.py). Whether a copy finds what the fp32 model finds is measured by the
benchmarks, never assumed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import atomic


def prepared(model: bytes) -> bytes:
    """``model`` at opset 13 with named nodes and folded batch norms: what is quantized."""
    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ort.set_default_logger_severity(3)  # its sessions warn about unused batch-norm counters
    converted = onnx.load_from_string(model)
    if converted.opset_import[0].version < 13:
        converted = version_converter.convert_version(converted, 13)
    for i, node in enumerate(converted.graph.node):
        node.name = f"node{i}"
    with _workspace() as tmp:
        source, folded = tmp / "in.onnx", tmp / "folded.onnx"
        onnx.save(converted, source)
        quant_pre_process(str(source), str(folded), skip_symbolic_shape=True)
        return folded.read_bytes()


def options(keep_fp32: list[str]) -> dict[str, Any]:
    """quantize_static's options, for the calibration run and the build alike: nodes named in
    ``keep_fp32`` are left in fp32."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {
        "nodes_to_exclude": keep_fp32,
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
    }


def quantized(model: bytes, ranges: Path, keep_fp32: list[str]) -> bytes:
    """The int8 copy of `prepared` ``model`` over the activation ``ranges`` recorded by
    `calibrate`. Raises OSError when the temporary folder it is built in has no room."""
    return _quantize(model, None, ranges, keep_fp32)


def calibrate(model: bytes, reader: Any, ranges: Path, keep_fp32: list[str]) -> None:
    """Record the activation ranges of `prepared` ``model`` over the inputs ``reader`` (an
    onnxruntime CalibrationDataReader) gives into ``ranges``, a JSON file."""
    ranges.unlink(missing_ok=True)  # quantize_static reads the ranges from a file that exists
    _quantize(model, reader, ranges, keep_fp32)


def _quantize(model: bytes, reader: Any, ranges: Path, keep_fp32: list[str]) -> bytes:
    """quantize_static on ``model``: over ``reader``'s inputs, recording ``ranges``, or (no
    reader) over the ``ranges`` recorded before; the int8 model it writes."""
    from onnxruntime.quantization import quantize_static

    with _workspace() as tmp:
        source, target = tmp / "fp32.onnx", tmp / "int8.onnx"
        source.write_bytes(model)
        quantize_static(
            str(source),
            str(target),
            reader,
            calibration_cache_path=str(ranges),
            **options(keep_fp32),
        )
        return target.read_bytes()


@contextmanager
def _workspace() -> Iterator[Path]:
    """A folder in the system's temporary folder for one build's model files (tens of MB),
    named as `veil.atomic` names its temporary folders: a build killed half-way (SIGKILL) leaves
    it behind, and the next build, of any process, removes it."""
    root = Path(tempfile.gettempdir())
    atomic.sweep(root, recursive=False)
    folder = atomic.temporary_folder(root)
    try:
        yield folder
    finally:
        atomic.discard(folder)
