"""Binary element-wise layers with numpy broadcasting, and Concat.

A layer with one blob input takes its other operand from the model (resource `element`);
`weight_input_index` says on which side it goes. A constant stored without dims is placed
as TNN places it (layer/multidir_broadcast_layer.cc): one value, one per channel, one per
element of a sample, one per column, or one per spatial position. Add and Concat also run on
int8 blobs, as TNN's int8 kernels do.
"""
from __future__ import annotations

from functools import lru_cache, reduce
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from tnnformat import BlobScale

from ..errors import KernelError
from ..int8 import Int8Blob
from ..registry import Kernel, float_buffer, register
from ..rounding import float2int8

BINARY: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
    "Maximum": np.maximum, "Minimum": np.minimum, "SquaredDifference": lambda a, b: (a - b) ** 2,
}


def constant_shape(count: int, dims: Tuple[int, ...], input_shape: Sequence[int]) -> Tuple[int, ...]:
    """Where a constant operand goes, relative to the blob operand's shape."""
    if dims:
        return tuple(dims)
    rank = len(input_shape)
    shape = [1] * rank
    per_sample = int(np.prod(input_shape[1:])) if rank > 1 else 1
    if count == 1:
        return tuple(shape)
    if rank > 1 and count == input_shape[1]:
        shape[1] = count
    elif count == per_sample:
        shape[1:] = input_shape[1:]
    elif rank >= 4 and count == input_shape[3]:
        shape[3] = count
    elif rank > 2 and count == int(np.prod(input_shape[2:])):
        shape[2:] = input_shape[2:]
    else:
        raise ValueError(f"a constant of {count} values does not broadcast to {list(input_shape)}")
    return tuple(shape)


def _operand_shapes(layer, inputs, resource) -> list:
    if len(layer.inputs) > 1 or "element" not in resource:
        return [tuple(s) for s in inputs]
    const = resource["element"]
    shape = constant_shape(const.data.size, const.dims, inputs[0])
    return [shape, tuple(inputs[0])] if layer.params["weight_input_index"] == 0 else [tuple(inputs[0]), shape]


class Binary(Kernel):
    per_sample = True

    def shapes(self, layer, inputs, resource):
        return [tuple(np.broadcast_shapes(*_operand_shapes(layer, inputs, resource)))]

    def prepare(self, layer, resource):
        if len(layer.inputs) > 1:
            return None
        return float_buffer(resource, "element", layer), resource["element"].dims

    def run(self, layer, state, inputs):
        op = BINARY[layer.type]
        operands = list(inputs)
        if state is not None:
            values, dims = state
            const = values.reshape(constant_shape(values.size, dims, inputs[0].shape))
            operands = [const, inputs[0]] if layer.params["weight_input_index"] == 0 else [inputs[0], const]
        with np.errstate(divide="ignore", invalid="ignore"):
            return [np.asarray(reduce(op, operands), dtype=np.float32)]


register(*(name for name in BINARY if name != "Add"))(Binary)


@register("Add")
class Add(Binary):
    """Int8: each input dequantized in float32, summed in order, requantized to the output scale."""

    def run_int8(self, layer, state, inputs, outputs):
        total = reduce(np.add, [blob.dequantize() for blob in inputs])
        scale, zero = outputs[0].per_channel(total.ndim)
        return [float2int8(total / scale + zero.astype(np.float32))]


def _axis(axis: int, rank: int, layer) -> int:
    if not -rank <= axis < rank:
        raise KernelError(f"layer '{layer.name}': axis {axis} out of range for rank {rank}")
    return axis % rank


@register("Concat")
class Concat(Kernel):
    """Int8, all per-tensor: each input requantized to the output scale. Otherwise TNN copies
    the int8 values as they are (per-channel scales then line up channel for channel)."""

    def shapes(self, layer, inputs, resource):
        axis = _axis(layer.params["axis"], len(inputs[0]), layer)
        out = list(inputs[0])
        for shape in inputs[1:]:
            if len(shape) != len(out) or any(a != b for i, (a, b) in enumerate(zip(shape, out)) if i != axis):
                raise ValueError(f"cannot concatenate {[list(s) for s in inputs]} on axis {axis}")
            out[axis] += shape[axis]
        return [tuple(out)]

    def run(self, layer, state, inputs):
        return [np.concatenate(inputs, axis=_axis(layer.params["axis"], inputs[0].ndim, layer))]

    def samples_apart(self, layer, inputs):
        return layer.params["axis"] % len(inputs[0]) != 0

    def run_int8(self, layer, state, inputs, outputs):
        axis = layer.params["axis"] % inputs[0].values.ndim
        out = outputs[0]
        if all(b.scale.scale.size == 1 for b in inputs) and out.scale.size == 1:
            parts = [_requantized_codes(b, out) for b in inputs]
        else:
            parts = [b.values for b in inputs]
        return [np.concatenate(parts, axis=axis)]


def _requantized_codes(blob: Int8Blob, out: BlobScale) -> np.ndarray:
    """TNN's per-tensor requantization of an int8 input of Concat to the output's scale. It
    maps each code to a code, so the codes go through a table of what _requantize gives for
    all 256 (the same codes bit for bit), two codes at a time where they pair up: one
    lookup per two values instead of six passes in float32."""
    scales = (float(blob.scale.scale[0]), int(blob.scale.zero_point[0]), float(out.scale[0]), int(out.zero_point[0]))
    codes = blob.values
    if codes.size % 2 == 0 and codes.flags.c_contiguous:
        return np.take(_pair_table(*scales), codes.reshape(-1).view(np.uint16)).view(np.int8).reshape(codes.shape)
    return np.take(_code_table(*scales), codes.view(np.uint8))


def _requantize(codes: np.ndarray, scale: float, zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """float2int8((q - zp_in) * s_in / s_out + zp_out) in float32, each step in place on one
    copy (the differences are small integers, exact in float32; adding a zero point of 0 is
    left out, it changes no code)."""
    values = codes.astype(np.float32)
    if zero:
        values -= np.float32(zero)
    values *= np.float32(scale)
    values /= np.float32(out_scale)
    if out_zero:
        values += np.float32(out_zero)
    return float2int8(values)


@lru_cache(maxsize=64)
def _code_table(scale: float, zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """The requantized code of every code, indexed by the code's byte (uint8 view)."""
    return _requantize(np.arange(256, dtype=np.uint8).view(np.int8), scale, zero, out_scale, out_zero)


@lru_cache(maxsize=64)
def _pair_table(scale: float, zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """The requantized codes of every pair of codes, indexed by the pair's two bytes read as
    one uint16 (in the machine's byte order, as the lookup reads them): 128 KB."""
    pairs = np.arange(65536, dtype=np.uint16).view(np.uint8)
    return _code_table(scale, zero, out_scale, out_zero)[pairs].view(np.uint16)
