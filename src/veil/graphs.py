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

Not done in fp32: the scale and shift right after a convolution folded into it. Exact too,
but the int8 copy calibrated on that graph lost plates when pictures were not run at the
calibration photos' size (on the dev plates at 384 and 416 px, 104 and 102 of 108 against 107
and 108; why is not known). The int8 copy drops those steps instead (`constants_read_in`:
its output is the same bytes read with another step or zero point), keeping its calibration;
and `byte_input` lets it read a picture's bytes as they are. Together: 24 against 32 ms on a
640x480 picture, one core.

The fp32 rewrites work on a graph whose weights are initializers with batch norms folded
(`veil.int8.prepared`).
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

    def add_constant(
        self, base: str, value: npt.NDArray[np.generic], dtype: type = np.float32
    ) -> str:
        name = f"{base}_folded{len(self.constants)}"
        self.graph.initializer.append(numpy_helper.from_array(value.astype(dtype), name))
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


def constants_read_in(model: bytes) -> bytes:
    """int8 (QDQ) ``model`` without its multiplies and adds of a constant where the result
    is quantized again: ``s * (q - z)`` times ``c > 0`` is the bytes ``q`` read in steps of
    ``c * s``, and plus ``b`` is ``q`` read from zero point ``z - b / s``, so the readers of
    the result read the bytes it was made from that way instead. A multiply's result loses
    nothing (it was rounded to a step of its own before); an add's ``b / s`` is rounded to a
    whole step, moving its result by at most half of one. An add whose result was clipped by
    its quantizing (hard-swish's ``x + 3``, clipped to 0-6) is kept. In the text detector 39
    multiplies and 37 adds go, the learned scales and shifts after its convolutions: a fifth
    of its time. Its map thresholds the same on 40 dev photos but for 0.01% of pixels."""
    proto = onnx.load_from_string(model)
    graph = _Graph(proto)
    nodes = list(graph.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    gone: set[str] = set()
    for node in nodes:
        found = _read_in(graph, node, producer, readers)
        if found is None:
            continue
        quantize, source, step, zero_point = found
        step_name = graph.add_constant(f"{node.name}_step", np.array(step, np.float32))
        point_name = graph.add_constant(f"{node.name}_zero_point", np.array(zero_point), np.uint8)
        for reader in readers[quantize.output[0]]:
            reader.input[:3] = [source, step_name, point_name]
        gone |= {node.name, quantize.name}
    _keep(graph, [node for node in nodes if node.name not in gone])
    return bytes(proto.SerializeToString())


def _read_in(
    graph: _Graph,
    node: onnx.NodeProto,
    producer: dict[str, onnx.NodeProto],
    readers: dict[str, list[onnx.NodeProto]],
) -> tuple[onnx.NodeProto, str, float, int] | None:
    """For a Mul or Add of a dequantized tensor and a dequantized constant whose result is
    quantized (and that only dequantized again): (that QuantizeLinear, the tensor's bytes,
    and the step and zero point to read them with to get the result); else None."""
    if node.op_type not in ("Mul", "Add") or len(node.input) != 2:
        return None
    steps = [producer.get(name) for name in node.input]
    if any(s is None or s.op_type != "DequantizeLinear" or len(s.input) != 3 for s in steps):
        return None
    values = [[graph.constant(name) for name in s.input] for s in steps if s is not None]
    single = [all(x is not None and x.size == 1 for x in v) for v in values]
    if sorted(single) != [False, True]:
        return None
    tensor = single.index(False)
    source = steps[tensor]
    _, step_of, point_of = values[tensor]
    if source is None or values[tensor][0] is not None or step_of is None or step_of.size != 1:
        return None
    q, s, z = (float(np.asarray(x).reshape(())) for x in values[1 - tensor])
    constant, step, point = (
        (q - z) * s,
        float(step_of.reshape(())),
        float(np.asarray(point_of).reshape(())),
    )
    after = readers.get(node.output[0], [])
    quantize = after[0] if len(after) == 1 else None
    if (
        quantize is None
        or quantize.op_type != "QuantizeLinear"
        or quantize.output[0] in graph.outputs
        or not all(r.op_type == "DequantizeLinear" for r in readers.get(quantize.output[0], []))
    ):
        return None
    if node.op_type == "Mul":
        return (quantize, source.input[0], constant * step, int(point)) if constant > 0 else None
    moved = int(point - round(constant / step))
    out_step, out_point = (graph.constant(name) for name in quantize.input[1:3])
    if not 0 <= moved <= 255 or out_step is None or out_point is None:
        return None
    out_s, out_z = float(out_step.reshape(())), float(out_point.reshape(()))
    # Kept when its quantizing clipped it: what the bytes can say must fit (within a step)
    # into what its output could.
    if step * (0 - moved) < out_s * (-1 - out_z) or step * (255 - moved) > out_s * (256 - out_z):
        return None
    return quantize, source.input[0], step, moved


def byte_input(model: bytes, name: str, step: float, zero: float) -> bytes:
    """int8 (QDQ) ``model`` reading its picture as an image's bytes: uint8, (N, H, W, C), in
    place of float input ``name`` (N, C, H, W), whose values were ``step * (byte - zero)``
    and which the model quantizes in that ``step``. The bytes become its quantized input as
    they are: no float copy of the picture is made, scaled, turned channels-first and
    quantized back (1.5 of the int8 text detector's 32 ms on a 640x480 picture). Where
    ``zero`` is not the model's own zero point (127.5 against 128), the convolutions that read
    the input take the difference into their biases, so that they see what they saw in float
    but at the picture's edge (its padding, half a step off). That is for exactness, not for a
    measured gain: at 288 px the smallest half-size dev plates come and go with half a step
    either way (fast found 96 of 108 from the float input, 93 from 128 unshifted, 91 exact)."""
    proto = onnx.load_from_string(model)
    graph = _Graph(proto)
    quantize = next(
        node
        for node in graph.graph.node
        if node.op_type == "QuantizeLinear" and node.input[0] == name
    )
    given, own = (graph.constant(n) for n in quantize.input[1:3])
    if given is None or own is None or not np.isclose(float(given.reshape(())), step, rtol=1e-6):
        raise ValueError(f"{name} is not quantized in steps of {step}")
    for reader in graph.consumers(quantize.output[0]):
        for conv in graph.consumers(reader.output[0]):
            _shift_bias(graph, conv, step * (float(own.reshape(())) - zero))
    bytes_name = f"{name}_bytes"
    transpose = onnx.helper.make_node(
        "Transpose", [bytes_name], [quantize.output[0]], perm=[0, 3, 1, 2], name=f"{name}_nchw"
    )
    _keep(graph, [transpose, *(n for n in graph.graph.node if n is not quantize)])
    old = next(value for value in graph.graph.input if value.name == name)
    graph.graph.input.remove(old)
    shape = ["n", "height", "width", "channels"]
    value = onnx.helper.make_tensor_value_info(bytes_name, onnx.TensorProto.UINT8, shape)
    graph.graph.input.insert(0, value)
    return bytes(proto.SerializeToString())


def _shift_bias(graph: _Graph, conv: onnx.NodeProto, shift: float) -> None:
    """Add to QDQ ``conv``'s quantized bias what adding ``shift`` to each of its inputs adds
    to its outputs: each output channel's sum of weights times ``shift``."""
    found = [graph.producer(n) for n in conv.input[1:]]
    if (
        conv.op_type != "Conv"
        or len(found) != 2
        or any(node is None or node.op_type != "DequantizeLinear" for node in found)
    ):
        raise ValueError(f"{conv.name} is not a quantized convolution with a bias")
    weight_node, bias_node = found
    assert weight_node is not None and bias_node is not None
    weights, weight_step, weight_zero = (graph.constant(n) for n in weight_node.input)
    bias_step = graph.constant(bias_node.input[1])
    bias = graph.constants.get(bias_node.input[0])
    if weights is None or weight_step is None or weight_zero is None or bias_step is None:
        raise ValueError(f"{conv.name}'s weights are not constants")
    if bias is None:
        raise ValueError(f"{conv.name}'s bias is not a constant")
    per_channel = (-1,) + (1,) * (weights.ndim - 1)
    real = (weights - weight_zero.reshape(per_channel)) * weight_step.reshape(per_channel)
    sums = real.reshape(len(real), -1).sum(axis=1)
    exact = numpy_helper.to_array(bias).astype(np.float64)  # int32: beyond float32's 24 bits
    moved = np.round(exact + sums * shift / bias_step).astype(np.int32)
    bias.CopyFrom(numpy_helper.from_array(moved, bias_node.input[0]))


def _keep(graph: _Graph, nodes: list[onnx.NodeProto]) -> None:
    """``nodes`` as the graph's, less those whose outputs nothing reads any more, and less
    the constants nothing reads."""
    while True:
        read = {name for node in nodes for name in node.input} | graph.outputs
        alive = [node for node in nodes if any(out in read for out in node.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    graph.remove_unused_constants()
