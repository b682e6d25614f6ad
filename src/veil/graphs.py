"""Exact rewrites of an ONNX graph that make it cheaper to run: constant scale and shift steps
folded into the convolutions beside them.

PaddleOCR's PP-OCRv4 text detector (PPLCNetV3) follows its convolutions and activations with
learned scales and shifts (``y * a + b``, each a single number), writes hard-swish as four
elementwise steps ending in a division by 6, and adds its upsampling layers' biases and batch
norms as steps of their own. onnxruntime fuses none of them, and once quantized each becomes
its own int8 multiply or add over a whole feature map. Folded into the next step's constants
they cost nothing: the int8 detector takes a third less time. Every rewrite here is exact up to
float rounding (tests/test_graphs.py compares the outputs), so the fp32 model finds what it
found before; the int8 copy, whose activation ranges are recorded on the rewritten graph, is
measured again (benchmarks/plates.py).

Not done: the scale and shift right after a convolution folded into it. Exact in fp32 too, but
its int8 copy lost plates when pictures were not run at the calibration photos' size (on the
dev plates at 384 and 416 px, 104 and 102 of 108 against 107 and 108; why is not known).

Works on a graph whose weights are initializers with batch norms folded (`veil.int8.prepared`).
Imported only where a model is built (importing onnx takes a good part of a second). Built
models are cached: a change here must bump ``veil.text.ocr._BUILD_VERSION``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

Array = npt.NDArray[np.float32]


class _Graph:
    """The graph's nodes and constant tensors, with the lookups the rewrites need."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.constants = {t.name: t for t in self.graph.initializer}
        self.outputs = {o.name for o in self.graph.output}

    def constant(self, name: str) -> Array | None:
        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor).astype(np.float32)

    def scalar(self, node: onnx.NodeProto, of: str) -> float | None:
        """The single-number constant that ``node`` combines with tensor ``of``, if any."""
        others = [name for name in node.input if name != of]
        if len(others) != 1 or len(node.input) != 2:
            return None
        value = self.constant(others[0])
        return None if value is None or value.size != 1 else float(value.reshape(()))

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if tensor in n.input]

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        found = self.consumers(tensor)
        return found[0] if len(found) == 1 and tensor not in self.outputs else None

    def feeds_only(self, tensor: str, node: onnx.NodeProto) -> bool:
        """Whether ``tensor`` goes to ``node`` and nowhere else."""
        return self.only_consumer(tensor) is node

    def producer(self, tensor: str) -> onnx.NodeProto | None:
        return next((n for n in self.graph.node if tensor in n.output), None)

    def add_constant(self, base: str, value: Array) -> str:
        name = f"{base}_folded{len(self.constants)}"
        self.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        self.constants[name] = self.graph.initializer[-1]
        return name

    def weights(self, conv: onnx.NodeProto) -> tuple[Array, Array] | None:
        """A Conv's (ConvTranspose's) weights and bias (zeros when it has none)."""
        weight = self.constant(conv.input[1]) if len(conv.input) > 1 else None
        if weight is None:
            return None
        channels = weight.shape[1] if conv.op_type == "ConvTranspose" else weight.shape[0]
        bias = self.constant(conv.input[2]) if len(conv.input) > 2 else np.zeros(channels)
        return None if bias is None else (weight, bias.astype(np.float32))

    def set_weights(self, conv: onnx.NodeProto, weight: Array, bias: Array) -> None:
        conv.input[:] = [
            conv.input[0],
            self.add_constant(conv.input[1], weight),
            self.add_constant(f"{conv.input[1]}_bias", bias),
        ]

    def remove_unused_constants(self) -> None:
        used = {name for node in self.graph.node for name in node.input}
        kept = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)


def folded(model: bytes) -> bytes:
    """``model`` with its constant scale and shift steps folded into its convolutions."""
    proto = onnx.load_from_string(model)
    graph = _Graph(proto)
    # Divisions first: hard-swish's "/ 6" meets the learned scale after it before that scale
    # can be folded into the next convolution, which would leave the division alone.
    _fold_divisions(graph)
    while _fold_before_conv(graph):
        pass
    _fold_into_transposed(graph)
    graph.remove_unused_constants()
    return bytes(proto.SerializeToString())


def _fold_before_conv(graph: _Graph) -> bool:
    """One Mul by a number -> Conv, into the weights; an Add of a number -> Conv, into the
    bias, only where the Conv pads nothing (its zero border never had the number added)."""
    for conv in graph.graph.node:
        if conv.op_type != "Conv" or not graph.feeds_only(conv.input[0], conv):
            continue
        step = graph.producer(conv.input[0])
        if step is None or step.op_type not in ("Mul", "Add"):
            continue
        source = [name for name in step.input if name not in graph.constants]
        params = graph.weights(conv)
        value = graph.scalar(step, source[0]) if len(source) == 1 else None
        if value is None or params is None:
            continue
        weight, bias = params
        if step.op_type == "Mul":
            weight = weight * value
        elif _pads(conv):
            continue
        else:
            bias = bias + value * weight.sum(axis=(1, 2, 3))
        graph.set_weights(conv, weight, bias)
        conv.input[0] = source[0]
        graph.graph.node.remove(step)
        return True
    return False


def _fold_divisions(graph: _Graph) -> None:
    """Div by a number -> Mul by a number (hard-swish's "/ 6" before the learned scale): one
    Mul by their quotient."""
    for div in [n for n in graph.graph.node if n.op_type == "Div"]:
        divisor = graph.constant(div.input[1])
        step = graph.only_consumer(div.output[0])
        if divisor is None or divisor.size != 1 or step is None or step.op_type != "Mul":
            continue
        value = graph.scalar(step, div.output[0])
        if value is None:
            continue
        quotient = graph.add_constant("quotient", np.array(value / float(divisor.reshape(()))))
        step.input[:] = [div.input[0], quotient]
        graph.graph.node.remove(div)


def _fold_into_transposed(graph: _Graph) -> None:
    """ConvTranspose -> Add of its bias [-> BatchNormalization], as the ConvTranspose alone."""
    for conv in [n for n in graph.graph.node if n.op_type == "ConvTranspose"]:
        add = graph.only_consumer(conv.output[0])
        params = graph.weights(conv)
        grouped = any(a.name == "group" and a.i != 1 for a in conv.attribute)
        if add is None or add.op_type != "Add" or params is None or grouped:
            continue
        weight, bias = params
        shift = graph.constant(next(n for n in add.input if n != conv.output[0]))
        if shift is None or shift.size not in (1, len(bias)):
            continue
        bias = bias + shift.reshape(-1)
        out = add.output[0]
        graph.graph.node.remove(add)
        norm = graph.only_consumer(out)
        if norm is not None and norm.op_type == "BatchNormalization":
            scale, beta, mean, var = (graph.constant(name) for name in norm.input[1:5])
            if scale is not None and beta is not None and mean is not None and var is not None:
                eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
                k = (scale / np.sqrt(var + eps)).astype(np.float32)
                weight = weight * k.reshape(1, -1, 1, 1)
                bias = ((bias - mean) * k + beta).astype(np.float32)
                out = norm.output[0]
                graph.graph.node.remove(norm)
        graph.set_weights(conv, weight, bias)
        conv.output[0] = out


def _pads(conv: onnx.NodeProto) -> bool:
    """Whether ``conv`` pads its input (explicitly or by ``auto_pad``)."""
    explicit = any(any(a.ints) for a in conv.attribute if a.name == "pads")
    auto = any(
        a.s not in (b"", b"NOTSET", b"VALID") for a in conv.attribute if a.name == "auto_pad"
    )
    return explicit or auto
