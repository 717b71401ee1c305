"""One converter per TFLite operator: a registry from the op name to a function that builds
the PyTorch step (an ``nn.Module``) computing it in NCHW.

A converter is ``convert(graph, op, constants) -> Step``: it reads the op's options and its
constant inputs (weights, biases, sizes, axes: :class:`Constants` resolves them, folding a
``DEQUANTIZE`` of a float16 constant into float32) and returns a :class:`Step` naming the
runtime tensors it reads and the tensor it writes. New ops are one decorated function:

    >>> @register("RELU")                                           # doctest: +SKIP
    ... def relu(graph, op, constants):
    ...     return unary(op, torch.nn.functional.relu)

An op without a converter is refused by :func:`convert_operator` with a :class:`ModelError`
naming the op and the model (exit 5).

Convention
----------
- Activations are NCHW inside the module (TFLite's NHWC tensors permuted ``(0, 3, 1, 2)``); a
  constant operand of an element-wise op is left-padded to 4-D in NHWC and permuted the same way.
- ``SAME`` padding is TFLite's: ``total = max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)``,
  ``total // 2`` before and the rest after (asymmetric when odd).
- ``RESIZE_BILINEAR`` with ``half_pixel_centers`` samples at ``(dst + 0.5) * in / out - 0.5``
  (clamped at 0), as ``interpolate(..., align_corners=False)``; ``align_corners`` maps to
  ``align_corners=True``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stabbench.errors import ModelError
from stabbench.models.tflite.reader import Operator, TfliteGraph

#: TFLite's fused activations (``ActivationFunctionType``) as functions; SIGN_BIT is refused.
FUSED_ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor] | None] = {
    0: None,
    1: F.relu,
    2: lambda x: torch.clamp(x, -1.0, 1.0),
    3: F.relu6,
    4: torch.tanh,
}
SAME, VALID = 0, 1  # the schema's Padding enum
#: ``TfLitePadding`` of custom ops' C structs (kTfLitePaddingSame = 1, kTfLitePaddingValid = 2).
C_PADDING = {1: SAME, 2: VALID}


@dataclass
class Step:
    """A converted operator: ``module(*[tensor[i] for i in inputs])`` gives tensor ``output``."""

    module: nn.Module
    inputs: tuple[int, ...]
    output: int


class Constants:
    """The constant tensors of a graph as float32 / int arrays; a ``DEQUANTIZE`` of a float16
    constant is folded (its output becomes a constant, the op is dropped)."""

    def __init__(self, graph: TfliteGraph):
        self.graph = graph
        self.values: dict[int, np.ndarray] = {t.index: t.data for t in graph.tensors if t.data is not None}
        for op in graph.operators:
            if op.op == "DEQUANTIZE" and op.inputs[0] in self.values:
                source = self.values[op.inputs[0]]
                if source.dtype != np.float16:
                    raise ModelError(f"{graph.source}: DEQUANTIZE of a {source.dtype} constant (operator {op.index}); "
                                     "only float16 weights are supported (integer-quantized models are not)")
                self.values[op.outputs[0]] = source.astype(np.float32)

    def is_constant(self, index: int) -> bool:
        return index in self.values

    def get(self, op: Operator, position: int, what: str) -> np.ndarray:
        index = op.inputs[position] if position < len(op.inputs) else -1
        if index not in self.values:
            raise ModelError(f"{self.graph.source}: {op.op} (operator {op.index}) needs a constant {what} "
                             f"(input {position}); a computed one is not supported")
        return self.values[index]

    def optional(self, op: Operator, position: int) -> np.ndarray | None:
        index = op.inputs[position] if position < len(op.inputs) else -1
        return None if index < 0 else self.get(op, position, "bias")


Converter = Callable[[TfliteGraph, Operator, Constants], "Step | None"]  # None: the op was folded
CONVERTERS: dict[str, Converter] = {}


def register(*names: str) -> Callable[[Converter], Converter]:
    def decorate(fn: Converter) -> Converter:
        for name in names:
            CONVERTERS[name] = fn
        return fn

    return decorate


def convert_operator(graph: TfliteGraph, op: Operator, constants: Constants) -> Step | None:
    """The :class:`Step` of ``op`` (``None`` for an op folded into constants); :class:`ModelError`
    naming the op and the model if unsupported."""
    if op.op not in CONVERTERS:
        raise ModelError(f"{graph.source}: operator {op.index} is {op.op}, which the TFLite importer does not support "
                         f"(supported: {', '.join(sorted(CONVERTERS))})")
    return CONVERTERS[op.op](graph, op, constants)


# ----------------------------------------------------------------------------- helpers


def parameter(array: np.ndarray) -> nn.Parameter:
    """A float32 parameter owning a copy of ``array`` (constants are read-only views of the file)."""
    return nn.Parameter(torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True)))


def nhwc_to_nchw(array: np.ndarray) -> np.ndarray:
    """A constant operand in NHWC (any rank <= 4, broadcast from the right) as a 4-D NCHW array."""
    if array.ndim > 4:
        raise ValueError(f"rank {array.ndim} > 4")
    return array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(0, 3, 1, 2)


def fused(graph: TfliteGraph, op: Operator):
    code = int(op.options.get("fusedActivationFunction", 0))
    if code not in FUSED_ACTIVATIONS:
        raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) has fused activation {code}; not supported")
    return FUSED_ACTIVATIONS[code]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding of one axis: ``(before, after)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def padding_of(graph: TfliteGraph, op: Operator) -> int:
    padding = int(op.options.get("padding", SAME))
    if padding not in (SAME, VALID):
        raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) has padding {padding}; not supported")
    return padding


def pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


def first_input(op: Operator) -> tuple[int, ...]:
    """The runtime input of a one-input op (its other inputs are constants)."""
    return (op.inputs[0],)


# ----------------------------------------------------------------------------- convolutions


class Conv2d(nn.Module):
    """TFLite ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` in NCHW (``groups`` = input channels for depthwise)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride, dilation, padding: int, groups: int, activation):
        super().__init__()
        self.weight = parameter(weight)
        self.bias = None if bias is None else parameter(bias)
        self.stride, self.dilation, self.padding, self.groups = tuple(stride), tuple(dilation), padding, groups
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == SAME:
            x = pad_same(x, tuple(self.weight.shape[2:]), self.stride, self.dilation)
        y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return y if self.activation is None else self.activation(y)


def _strides(op: Operator) -> tuple[tuple[int, int], tuple[int, int]]:
    o = op.options
    return (int(o["strideH"]), int(o["strideW"])), (int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1)))


@register("CONV_2D")
def conv_2d(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    weight = constants.get(op, 1, "filter")  # [O, kh, kw, I]
    stride, dilation = _strides(op)
    in_channels = graph.tensor(op.inputs[0]).shape[-1]
    groups = in_channels // weight.shape[3]
    module = Conv2d(weight.transpose(0, 3, 1, 2), constants.optional(op, 2), stride, dilation, padding_of(graph, op),
                    groups, fused(graph, op))
    return Step(module, first_input(op), op.outputs[0])


@register("DEPTHWISE_CONV_2D")
def depthwise_conv_2d(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    weight = constants.get(op, 1, "filter")  # [1, kh, kw, C * multiplier]
    stride, dilation = _strides(op)
    in_channels = graph.tensor(op.inputs[0]).shape[-1]
    module = Conv2d(weight.transpose(3, 0, 1, 2), constants.optional(op, 2), stride, dilation, padding_of(graph, op),
                    in_channels, fused(graph, op))
    return Step(module, first_input(op), op.outputs[0])


class TransposeConv2d(nn.Module):
    """A transposed convolution with TFLite's output size: ``n * s`` (SAME) or ``(n - 1) * s + k`` (VALID)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int], padding: int):
        super().__init__()
        self.weight = parameter(weight)  # [I, O, kh, kw]
        self.bias = None if bias is None else parameter(bias)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        if self.padding == VALID:
            return y
        h, w = x.shape[2] * self.stride[0], x.shape[3] * self.stride[1]
        # the padding of the forward convolution from the output size back to the input size
        top, _ = same_padding(h, self.weight.shape[2], self.stride[0])
        left, _ = same_padding(w, self.weight.shape[3], self.stride[1])
        return y[:, :, top : top + h, left : left + w]


@register("Convolution2DTransposeBias")
def convolution_2d_transpose_bias(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    """MediaPipe's custom op: inputs (x, filter ``[O, kh, kw, I]``, bias ``[O]``); its custom options
    are a ``TfLiteTransposeConvParams`` C struct ``{int32 padding, stride_width, stride_height}``."""
    if len(op.custom_options) < 12:
        raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) has {len(op.custom_options)} bytes of "
                         "options; expected 12 (padding, stride_width, stride_height)")
    padding, stride_w, stride_h = struct.unpack("<3i", op.custom_options[:12])
    if padding not in C_PADDING or stride_w < 1 or stride_h < 1:
        raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) has padding {padding}, strides "
                         f"{stride_w}x{stride_h}; not supported")
    weight = constants.get(op, 1, "filter")
    module = TransposeConv2d(weight.transpose(3, 0, 1, 2), constants.optional(op, 2), (stride_h, stride_w),
                             C_PADDING[padding])
    return Step(module, first_input(op), op.outputs[0])


# ----------------------------------------------------------------------------- pooling, resizing


class AvgPool2d(nn.Module):
    """TFLite ``AVERAGE_POOL_2D``: SAME padding averages only the pixels inside the image."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: int, activation):
        super().__init__()
        self.kernel, self.stride, self.padding, self.activation = kernel, stride, padding, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == VALID and tuple(x.shape[2:]) == self.kernel:
            y = x.mean(dim=(2, 3), keepdim=True)  # a global pool: mean's pairwise sum is ~10x more exact in float32
        elif self.padding == VALID:
            y = F.avg_pool2d(x, self.kernel, self.stride)
        else:
            ones = torch.ones_like(x[:, :1])
            sums = F.avg_pool2d(pad_same(x, self.kernel, self.stride, (1, 1)), self.kernel, self.stride, divisor_override=1)
            counts = F.avg_pool2d(pad_same(ones, self.kernel, self.stride, (1, 1)), self.kernel, self.stride, divisor_override=1)
            y = sums / counts
        return y if self.activation is None else self.activation(y)


@register("AVERAGE_POOL_2D")
def average_pool_2d(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    o = op.options
    module = AvgPool2d((int(o["filterHeight"]), int(o["filterWidth"])), (int(o["strideH"]), int(o["strideW"])),
                       padding_of(graph, op), fused(graph, op))
    return Step(module, first_input(op), op.outputs[0])


NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


class Mean(nn.Module):
    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims, keepdim=True)


@register("MEAN")
def mean(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    axes = [int(a) % 4 for a in np.atleast_1d(constants.get(op, 1, "axes"))]
    if not op.options.get("keepDims", False):
        raise ModelError(f"{graph.source}: MEAN (operator {op.index}) without keep_dims; only 4-D results are supported")
    return Step(Mean(tuple(sorted(NHWC_TO_NCHW_AXIS[a] for a in axes))), first_input(op), op.outputs[0])


class ResizeBilinear(nn.Module):
    def __init__(self, size: tuple[int, int], align_corners: bool):
        super().__init__()
        self.size, self.align_corners = size, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


@register("RESIZE_BILINEAR")
def resize_bilinear(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
    size = tuple(int(v) for v in constants.get(op, 1, "size"))
    align, half = bool(op.options.get("alignCorners")), bool(op.options.get("halfPixelCenters"))
    if align == half:
        raise ModelError(f"{graph.source}: RESIZE_BILINEAR (operator {op.index}) with align_corners={align}, "
                         f"half_pixel_centers={half}; only one of the two set is supported")
    return Step(ResizeBilinear(size, align), first_input(op), op.outputs[0])


# ----------------------------------------------------------------------------- element-wise


class Binary(nn.Module):
    """``ADD`` / ``MUL`` of two runtime tensors, or of one and a constant (a parameter)."""

    def __init__(self, fn, constant: np.ndarray | None, activation):
        super().__init__()
        self.fn, self.activation = fn, activation
        self.constant = None if constant is None else parameter(nhwc_to_nchw(constant))

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        y = self.fn(a, self.constant if b is None else b)
        return y if self.activation is None else self.activation(y)


def _binary(fn):
    def convert(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
        const = [p for p in (0, 1) if constants.is_constant(op.inputs[p])]
        if len(const) == 2:
            raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) of two constants; not supported")
        constant = constants.values[op.inputs[const[0]]].astype(np.float32) if const else None
        if constant is not None and constant.ndim > 4:
            raise ModelError(f"{graph.source}: {op.op} (operator {op.index}) has a {constant.ndim}-D constant operand; "
                             "at most 4-D is supported")
        runtime = tuple(op.inputs[p] for p in (0, 1) if p not in const)
        return Step(Binary(fn, constant, fused(graph, op)), runtime, op.outputs[0])

    return convert


register("ADD")(_binary(torch.add))
register("MUL")(_binary(torch.mul))


class Unary(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _unary(fn):
    def convert(graph: TfliteGraph, op: Operator, constants: Constants) -> Step:
        return Step(Unary(fn), first_input(op), op.outputs[0])

    return convert


register("RELU")(_unary(F.relu))
register("RELU6")(_unary(F.relu6))
register("HARD_SWISH")(_unary(F.hardswish))
register("LOGISTIC")(_unary(torch.sigmoid))


@register("DEQUANTIZE")
def dequantize(graph: TfliteGraph, op: Operator, constants: Constants) -> Step | None:
    """Folded by :class:`Constants` for a float16 constant; a computed float16 tensor is cast."""
    if constants.is_constant(op.inputs[0]):
        return None
    if graph.tensor(op.inputs[0]).dtype != "FLOAT16":
        raise ModelError(f"{graph.source}: DEQUANTIZE (operator {op.index}) of a {graph.tensor(op.inputs[0]).dtype} "
                         "tensor; only float16 is supported (integer-quantized models are not)")
    return Step(Unary(lambda x: x.float()), first_input(op), op.outputs[0])


def supported_ops() -> tuple[str, ...]:
    return tuple(sorted(CONVERTERS))


__all__ = ["CONVERTERS", "Constants", "Step", "convert_operator", "register", "same_padding", "supported_ops"]
