"""veil.graphs: folding constant scale and shift steps into convolutions changes no output."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from veil import graphs

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
