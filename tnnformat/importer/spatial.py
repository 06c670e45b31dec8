"""Padding and output size of sliding windows, as ONNX defines them and as TNN computes them.

TNN describes padding with a pad type (-1 explicit and symmetric, 0 SAME, 1 VALID, 3 deconv
SAME with output padding) and recomputes the real pads when it loads a model
(source/tnn/layer/{conv,pooling,deconv}_layer.cc). Rather than trust that a param choice means
what the ONNX node means, we simulate TNN's rule for each candidate and keep the first that
gives, on every spatial axis, the same output size and the same leading pad as ONNX: then
every window sits on the same inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Axis:
    """One spatial axis of an ONNX window op at static shapes."""

    size: int     # input extent
    kernel: int   # kernel extent, dilation applied
    stride: int
    begin: int    # leading pad ONNX applies
    end: int      # trailing pad ONNX applies
    out: int      # output extent


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero), as TNN's pad arithmetic does."""
    return int(a / b)


def onnx_pads(auto_pad: str, pads: Sequence[int], sizes: Sequence[int], kernels: Sequence[int],
              strides: Sequence[int], outs: Sequence[int]) -> List[Tuple[int, int]]:
    """(begin, end) per spatial axis of a Conv or pooling node, auto_pad resolved."""
    rank = len(sizes)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        result = []
        for size, kernel, stride, out in zip(sizes, kernels, strides, outs):
            total = max((out - 1) * stride + kernel - size, 0)
            small = total // 2
            result.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
        return result
    if auto_pad == "VALID" or not pads:
        return [(0, 0)] * rank
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def onnx_pool_out(size: int, kernel: int, stride: int, begin: int, end: int, ceil_mode: int) -> int:
    """ONNX's pooling output size: with ceil_mode, a last window that would start in the
    trailing padding is dropped (onnxruntime does so; onnx's shape inference does not)."""
    span = size + begin + end - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + begin else out


def tnn_conv(axis: Axis, pad_type: int, pad: int) -> Tuple[int, int]:
    """(output size, leading pad) of TNN's Convolution on one axis."""
    if pad_type == -1:
        return (axis.size + 2 * pad - axis.kernel) // axis.stride + 1, pad
    if pad_type == 0:
        out = math.ceil(axis.size / axis.stride)
    else:  # 1, VALID
        out = math.ceil((axis.size - axis.kernel + 1) / axis.stride)
    return out, _trunc_div((out - 1) * axis.stride + axis.kernel - axis.size, 2)


def tnn_pool(axis: Axis, pad_type: int, pad: int, ceil_mode: int) -> Tuple[int, int]:
    """(output size, leading pad) of TNN's Pooling on one axis."""
    if pad_type == -1:
        rounding = math.ceil if ceil_mode else math.floor
        return rounding((axis.size + 2 * pad - axis.kernel) / axis.stride + 1), pad
    return tnn_conv(axis, pad_type, pad)


def tnn_deconv(axis: Axis, pad_type: int, pad: int) -> Tuple[int, int]:
    """(output size, leading crop) of TNN's Deconvolution on one axis."""
    if pad_type == -1:
        return axis.stride * (axis.size - 1) + axis.kernel - 2 * pad, pad
    if pad_type == 1:
        out = axis.size * axis.stride + max(axis.kernel - axis.stride, 0)
    else:  # 0 SAME, 3 SAME with output padding
        out = axis.size * axis.stride
    along = (axis.size - 1) * axis.stride + axis.kernel - out
    if pad_type == 3:
        along = max(along, 0)
        return out, along - _trunc_div(along, 2)  # TNN swaps the pads for output padding
    return out, _trunc_div(along, 2)


def first_match(axes: Sequence[Axis], candidates: Iterable[Tuple[int, ...]],
                rule) -> Optional[Tuple[int, ...]]:
    """The first candidate (pad_type, pad_h, pad_w, *extra) whose TNN result equals ONNX's."""
    for candidate in candidates:
        pad_type, pads, extra = candidate[0], candidate[1:1 + len(axes)], candidate[1 + len(axes):]
        if all(rule(axis, pad_type, pad, *extra) == (axis.out, axis.begin)
               for axis, pad in zip(axes, pads)):
            return candidate
    return None
