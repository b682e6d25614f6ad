"""dlib's ResNet face recognizer, rebuilt as an ONNX graph from the weights dlib itself loads.

dlib-bin is built without BLAS, so its own forward pass takes about 100 ms per face on this
project's 2-core machine; verification embeds every face it checks twice. The same weights in
onnxruntime give the same 128 numbers (within 1e-4, tested) many times faster. The weights
come from ``face_recognition_models`` (public domain), read from the file dlib reads; nothing
is downloaded and the graph lives in memory only.

The network is ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``: a 7x7 convolution and
max-pool, then 14 residual blocks of two 3x3 convolutions (those that halve the size add an
average-pooled shortcut), a global average pool and a 128-wide linear layer. dlib stores each
layer after the layers it feeds on, so the file reads from input to output; this module walks
it once and checks every layer against that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import VeilError

CHIP = 150  # input_rgb_image_sized<150>


class ModelFormatError(VeilError):
    """The recognizer's weight file is not the network this module knows how to rebuild."""


@dataclass
class _Reader:
    """dlib's serialisation: integers packed as one byte (size, sign) plus little-endian bytes,
    floating point numbers as such an integer mantissa and exponent, tensors as five integers
    then raw little-endian float32."""

    data: bytes
    pos: int = 0

    def int(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.int()
        return float(mantissa) * 2.0 ** self.int()

    def name(self) -> str:
        size = self.int()
        text = self.data[self.pos : self.pos + size].decode("ascii", "replace")
        self.pos += size
        return text

    def tensor(self) -> npt.NDArray[np.float32]:
        if self.int() != 2:
            raise ModelFormatError("unknown tensor version")
        count = self.int() * self.int() * self.int() * self.int()
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values

    def seek(self, marker: str) -> None:
        """Move just past the next serialised layer name ``marker``."""
        found = self.data.find(marker.encode(), self.pos)
        if found < 0:
            raise ModelFormatError(f"layer {marker!r} not found")
        self.pos = found + len(marker)


@dataclass(frozen=True)
class Conv:
    weight: npt.NDArray[np.float32]  # out, in, kh, kw
    bias: npt.NDArray[np.float32]
    stride: int
    scale: npt.NDArray[np.float32]  # the affine layer after it: x * scale + shift
    shift: npt.NDArray[np.float32]


def _conv(reader: _Reader, inputs: int) -> Conv:
    reader.seek("con_4")
    params = reader.tensor()
    filters, rows, cols, stride, stride_x = (reader.int() for _ in range(5))
    if stride != stride_x or rows != cols or params.size != filters * (inputs * rows * cols + 1):
        raise ModelFormatError("unexpected convolution layout")
    weight = params[: filters * inputs * rows * cols].reshape(filters, inputs, rows, cols)
    reader.seek("affine_")
    affine = reader.tensor()
    if affine.size != 2 * filters:
        raise ModelFormatError("unexpected affine layout")
    bias = params[filters * inputs * rows * cols :]
    return Conv(weight, bias, stride, affine[:filters], affine[filters:])


@dataclass(frozen=True)
class Weights:
    """Every parameter of the network, in the order the forward pass uses them."""

    mean_rgb: tuple[float, float, float]
    stem: Conv
    blocks: list[tuple[Conv, Conv]]  # (first, second); first.stride 2 marks a down block
    fc: npt.NDArray[np.float32]  # 256 inputs x 128 outputs


# (filters, down) of each residual block from input to output: alevel4 .. alevel0.
_BLOCKS = [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)]
_BLOCKS += [(128, False)] * 2 + [(256, True)] + [(256, False)] * 2 + [(256, True)]


def read_weights(path: Path) -> Weights:
    reader = _Reader(path.read_bytes())
    if reader.data.find(b"loss_metric_2", 0, 64) < 0:
        raise ModelFormatError(f"{path.name} is not dlib's metric-learning network")
    reader.seek("input_rgb_image_sized")
    mean = (reader.real(), reader.real(), reader.real())
    stem = _conv(reader, 3)
    blocks: list[tuple[Conv, Conv]] = []
    channels = stem.weight.shape[0]
    for filters, down in _BLOCKS:
        first = _conv(reader, channels)
        second = _conv(reader, filters)
        if (first.stride == 2) != down or second.stride != 1:
            raise ModelFormatError("unexpected residual block")
        blocks.append((first, second))
        channels = filters
    reader.seek("fc_2")
    outputs, inputs = reader.int(), reader.int()
    fc = reader.tensor()
    if fc.size != inputs * outputs or inputs != channels:
        raise ModelFormatError("unexpected final layer")
    return Weights(mean, stem, blocks, fc.reshape(inputs, outputs))


def _folded(conv: Conv) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Convolution and the affine layer after it as one convolution (exact: both are linear)."""
    weight = conv.weight * conv.scale[:, None, None, None]
    return weight.astype(np.float32), (conv.bias * conv.scale + conv.shift).astype(np.float32)


def build_graph(weights: Weights) -> bytes:
    """The network as a serialised ONNX model: float (N, 3, 150, 150) RGB chips, already
    mean-subtracted and scaled (`chips_to_input`), to (N, 128) descriptors."""
    from onnx import NodeProto, TensorProto, helper, numpy_helper

    nodes: list[NodeProto] = []
    inits: list[TensorProto] = []
    counter = iter(range(10_000))

    def const(array: npt.NDArray[np.generic]) -> str:
        name = f"c{next(counter)}"
        inits.append(numpy_helper.from_array(array, name))
        return name

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(x: str, c: Conv, size: int, relu: bool) -> tuple[str, int]:
        weight, bias = _folded(c)
        kernel = weight.shape[2]
        # dlib pads by half the kernel at stride 1 and not at all at larger strides.
        pad = kernel // 2 if c.stride == 1 else 0
        out = node(
            "Conv",
            [x, const(weight), const(bias)],
            strides=[c.stride] * 2,
            pads=[pad] * 4,
            kernel_shape=[kernel] * 2,
        )
        size = (size + 2 * pad - kernel) // c.stride + 1
        return (node("Relu", [out]) if relu else out), size

    def pad_to(x: str, channels: int, size: int, to_channels: int, to_size: int) -> str:
        if (channels, size) == (to_channels, to_size):
            return x
        # dlib adds tensors of different shapes as if the smaller had zeros after its end.
        pads = np.array([0, 0, 0, 0, 0, to_channels - channels, to_size - size, to_size - size])
        return node("Pad", [x, const(pads.astype(np.int64))], mode="constant")

    x, size = conv("chips", weights.stem, CHIP, relu=True)
    x = node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = (size - 3) // 2 + 1
    channels = weights.stem.weight.shape[0]
    for first, second in weights.blocks:
        y, ysize = conv(x, first, size, relu=True)
        y, ysize = conv(y, second, ysize, relu=False)
        filters = second.weight.shape[0]
        if first.stride == 2:
            x = node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            size = (size - 2) // 2 + 1
        out_size = max(size, ysize)
        x = node(
            "Add",
            [
                pad_to(y, filters, ysize, filters, out_size),
                pad_to(x, channels, size, filters, out_size),
            ],
        )
        x = node("Relu", [x])
        channels, size = filters, out_size
    x = node("GlobalAveragePool", [x])
    x = node("Flatten", [x])
    nodes.append(helper.make_node("MatMul", [x, const(weights.fc)], ["descriptors"]))
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["n", 3, CHIP, CHIP])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["n", 128])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def chips_to_input(
    chips: npt.NDArray[np.uint8], mean_rgb: tuple[float, float, float]
) -> npt.NDArray[np.float32]:
    """(N, 150, 150, 3) RGB chips as the network's input: mean-subtracted, divided by 256."""
    x = (chips.astype(np.float32) - np.asarray(mean_rgb, np.float32)) / 256.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
