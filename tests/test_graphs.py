"""veil.graphs: folding constant scale and shift steps into convolutions changes no output;
the int8 copy's rewrites change it by no more than its own rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from veil import graphs, int8

RNG = np.random.default_rng(0)


def _constant(name: str, value: np.ndarray | float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _model(nodes: list[onnx.NodeProto], constants: list[onnx.TensorProto]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return bytes(model.SerializeToString())


def _weights(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return _constant(name, RNG.normal(size=shape))


def _pplcnet_like() -> bytes:
    """The detector's patterns: conv -> scale, shift -> hard-swish (ending in "/ 6") -> scale,
    shift -> a 1x1 conv and a padded 3x3 conv -> a transposed conv, its bias, a batch norm."""
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
        node("Mul", ["a0", "c0"], ["m0"]),
        node("Add", ["m0", "s0"], ["h"]),
        node("Add", ["h", "three"], ["h3"]),
        node("Clip", ["h3", "zero", "six"], ["hc"]),
        node("Mul", ["h", "hc"], ["hm"]),
        node("Div", ["hm", "six"], ["hs"]),
        node("Mul", ["a1", "hs"], ["m1"]),
        node("Add", ["m1", "s1"], ["p"]),
        node("Conv", ["p", "w1"], ["c1"]),  # 1x1, no padding: the shift folds too
        node("Mul", ["c1", "a2"], ["m2"]),
        node("Add", ["m2", "s2"], ["q"]),
        node("Conv", ["q", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),  # the shift must stay
        node("ConvTranspose", ["c2", "wt"], ["t"], strides=[2, 2]),
        node("Add", ["t", "bt"], ["tb"]),
        node("BatchNormalization", ["tb", "g", "beta", "mean", "var"], ["y"], epsilon=1e-5),
    ]
    constants = [
        _weights("w0", (8, 4, 3, 3)),
        _weights("b0", (8,)),
        _constant("a0", [0.7]),
        _constant("s0", [0.3]),
        _constant("three", 3.0),
        _constant("zero", 0.0),
        _constant("six", 6.0),
        _constant("a1", [1.4]),
        _constant("s1", [-0.2]),
        _weights("w1", (8, 8, 1, 1)),
        _constant("a2", [0.5]),
        _constant("s2", [0.9]),
        _weights("w2", (6, 8, 3, 3)),
        _weights("b2", (6,)),
        _weights("wt", (6, 3, 2, 2)),
        _weights("bt", (3, 1, 1)),
        _weights("g", (3,)),
        _weights("beta", (3,)),
        _weights("mean", (3,)),
        _constant("var", RNG.uniform(0.5, 2, 3)),
    ]
    return _model(nodes, constants)


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {"x": x})[0]
    return out


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


def test_folding_changes_no_output_and_leaves_fewer_steps() -> None:
    model = _pplcnet_like()
    folded = graphs.folded(model)
    x = RNG.normal(size=(1, 4, 12, 12)).astype(np.float32)
    assert np.allclose(_run(model, x), _run(folded, x), atol=1e-4)
    ops = _ops(folded)
    # The division and batch norm are gone, the 1x1 conv took the scale and shift before it,
    # and the padded 3x3 conv took only the scale: its shift stays an Add.
    assert "Div" not in ops and "BatchNormalization" not in ops
    assert ops.count("Mul") == 3  # after the first conv, in hard-swish, before the 3x3 conv
    assert ops.count("Add") == 3  # after the first conv, hard-swish's "+ 3", before the 3x3
    assert len(ops) == len(_ops(model)) - 5


def test_an_unpadded_conv_takes_the_shift_before_it_too() -> None:
    model = _pplcnet_like()
    x = RNG.normal(size=(1, 4, 12, 12)).astype(np.float32)
    proto = onnx.load_from_string(model)
    conv = next(n for n in proto.graph.node if n.output[0] == "c2")
    conv.attribute[0].ints[:] = [0, 0, 0, 0]  # unpadded, the same shift does fold
    unpadded = bytes(proto.SerializeToString())
    assert _ops(graphs.folded(unpadded)).count("Add") == 2
    assert np.allclose(_run(unpadded, x), _run(graphs.folded(unpadded), x), atol=1e-4)


def test_a_division_by_a_tensor_is_left_alone() -> None:
    # Div by a computed tensor, not a constant: nothing to fold, the graph is unchanged.
    node = helper.make_node
    nodes = [
        node("Add", ["x", "k"], ["d"]),
        node("Div", ["x", "d"], ["q"]),
        node("Mul", ["q", "k"], ["y"]),
    ]
    model = _model(nodes, [_constant("k", 20.0)])
    assert _ops(graphs.folded(model)) == ["Add", "Div", "Mul"]


# -- the int8 copy ---------------------------------------------------------------------------
def _quantized(model: bytes, inputs: list[np.ndarray], tmp_path: Path) -> bytes:
    """``model`` quantized as veil quantizes its detectors (`veil.int8`), its activation
    ranges recorded over ``inputs``."""
    from onnxruntime.quantization import CalibrationDataReader

    class Inputs(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.left = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(({"x": x} for x in self.left), None)

    prepared = int8.prepared(model)
    ranges = tmp_path / "ranges.json"
    int8.calibrate(prepared, Inputs(), ranges, [])
    return int8.quantized(prepared, ranges, [])


def _lab_hardswish(scale: float) -> bytes:
    """A conv, a learned scale and shift after it (``scale``, 0.3), hard-swish ("+ 3" clipped to
    0-6, a product) and a last conv: the text detector's block."""
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
        node("Mul", ["c0", "a0"], ["m0"]),
        node("Add", ["m0", "s0"], ["h"]),
        node("Add", ["h", "three"], ["h3"]),
        node("Clip", ["h3", "zero", "six"], ["hc"]),
        node("Mul", ["h", "hc"], ["hm"]),
        node("Conv", ["hm", "w1"], ["y"]),
    ]
    constants = [
        _weights("w0", (8, 4, 3, 3)),
        _weights("b0", (8,)),
        _constant("a0", [scale]),
        _constant("s0", [0.3]),
        _constant("three", 3.0),
        _constant("zero", 0.0),
        _constant("six", 6.0),
        _weights("w1", (3, 8, 1, 1)),
    ]
    return _model(nodes, constants)


def _inputs(count: int) -> list[np.ndarray]:
    return [RNG.uniform(-1, 1, (1, 4, 12, 12)).astype(np.float32) for _ in range(count)]


def _constant_steps(model: bytes) -> int:
    """The multiplies and adds of a constant in a QDQ ``model``."""
    proto = onnx.load_from_string(model)
    constants = {t.name for t in proto.graph.initializer}
    dequantized = {n.output[0] for n in proto.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in constants}  # fmt: skip
    steps = [n for n in proto.graph.node if n.op_type in ("Mul", "Add")]
    return sum(1 for n in steps if dequantized & set(n.input))


def test_the_int8_copy_reads_its_constant_steps_into_its_bytes(tmp_path: Path) -> None:
    quantized = _quantized(_lab_hardswish(0.7), _inputs(8), tmp_path)
    rewritten = graphs.constants_read_in(quantized)
    # The scale and the shift go; hard-swish's "+ 3" stays, as its quantizing clips it.
    assert _constant_steps(quantized) == 3 and _constant_steps(rewritten) == 1
    for x in _inputs(4):
        before, after = _run(quantized, x), _run(rewritten, x)
        spread = float(np.ptp(before))
        assert np.abs(before - after).max() < 0.05 * spread


def test_a_negative_scale_stays_a_multiply(tmp_path: Path) -> None:
    quantized = _quantized(_lab_hardswish(-0.7), _inputs(8), tmp_path)
    assert _constant_steps(graphs.constants_read_in(quantized)) == 2  # the shift goes


def test_the_int8_copy_reads_a_picture_s_bytes(tmp_path: Path) -> None:
    """Bytes scaled to -1..1 in steps of 2/255, as the text detector takes them: the copy
    that reads the bytes (N, H, W, C) gives what the float one gives."""
    pictures = [RNG.integers(0, 256, (1, 12, 12, 4), dtype=np.uint8) for _ in range(6)]
    pictures[0][0, 0, 0, :2] = [0, 255]  # the calibration sees the whole range, -1 to 1
    floats = [(p.transpose(0, 3, 1, 2) * (2 / 255) - 1).astype(np.float32) for p in pictures]
    quantized = _quantized(_lab_hardswish(0.7), floats, tmp_path)
    reading = graphs.byte_input(quantized, "x", 2 / 255, 127.5)
    session = ort.InferenceSession(reading, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x_bytes"]
    for picture, x in zip(pictures, floats, strict=True):
        before = _run(quantized, x)
        after = session.run(None, {"x_bytes": picture})[0]
        assert np.abs(before - after).max() < 0.05 * float(np.ptp(before))
    # Read from the model's own zero point, the bytes are exactly what the float input
    # (b - 128) * 2/255 quantizes to: the outputs are the same to the bit.
    own = ort.InferenceSession(
        graphs.byte_input(quantized, "x", 2 / 255, 128), providers=["CPUExecutionProvider"]
    )
    for picture in pictures:
        x = (picture.transpose(0, 3, 1, 2).astype(np.float32) - 128) * np.float32(2 / 255)
        assert np.array_equal(own.run(None, {"x_bytes": picture})[0], _run(quantized, x))
    with pytest.raises(ValueError, match="steps of"):
        graphs.byte_input(quantized, "x", 1 / 255, 127.5)
