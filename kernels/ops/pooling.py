"""Pooling: max and average, global, adaptive, ceil mode (TNN's pooling layer and NaivePooling).

Padding never enters a window: max pooling ignores it and average pooling divides by the
number of real input values in the window, as TNN's CPU reference does, in float and in int8.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ..errors import KernelError
from ..registry import Kernel, register


#: (kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, pad_top, pad_left)
Geometry = Tuple[int, int, int, int, int, int, int, int]


def pool_geometry(p: dict, height: int, width: int) -> Geometry:
    """(kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, pad_top, pad_left), by TNN's
    shape rule (pooling_layer.cc): a kernel of 0 is the input's size, and then the padding
    rule applies as for any kernel, so a "global" pooling with SAME padding and stride 1 keeps
    the input's size (TNN's converters write pad_type -1 for a real global pooling)."""
    kh, kw = p["kernel_h"] or height, p["kernel_w"] or width
    sh, sw = p["stride_h"], p["stride_w"]
    if p["pad_type"] == -1:
        top, left = p["pad_h"], p["pad_w"]
        rounding = math.ceil if p["ceil_mode"] == 1 else math.floor
        out_h = int(rounding((height + 2 * top - kh) / sh + 1))
        out_w = int(rounding((width + 2 * left - kw) / sw + 1))
        return kh, kw, sh, sw, out_h, out_w, top, left
    if p["pad_type"] == 0:  # SAME
        out_h, out_w = math.ceil(height / sh), math.ceil(width / sw)
    elif p["pad_type"] == 1:  # VALID
        out_h, out_w = math.ceil((height - kh + 1) / sh), math.ceil((width - kw + 1) / sw)
    else:
        raise ValueError(f"pad_type {p['pad_type']} is not supported by pooling")
    along_h, along_w = (out_h - 1) * sh + kh - height, (out_w - 1) * sw + kw - width
    return kh, kw, sh, sw, out_h, out_w, int(along_h / 2), int(along_w / 2)


def _window_counts(out: int, stride: int, pad: int, kernel: int, size: int) -> np.ndarray:
    """How many real input positions each output window covers along one axis."""
    start = np.arange(out) * stride - pad
    return np.minimum(start + kernel, size) - np.maximum(start, 0)


def _window_sizes(g: Geometry, height: int, width: int) -> np.ndarray:
    """How many real input values each (out_h, out_w) window holds, padding not counted."""
    kh, kw, sh, sw, out_h, out_w, top, left = g
    return np.outer(_window_counts(out_h, sh, top, kh, height), _window_counts(out_w, sw, left, kw, width))


def _reduce_windows(x: np.ndarray, axis: int, kernel: int, stride: int, out: int, average: bool) -> np.ndarray:
    """Max or sum over windows along one axis: pooling is separable, so two 1-D passes
    (kh + kw steps) replace one 2-D pass (kh * kw steps)."""
    result = None
    for i in range(kernel):
        index = [slice(None)] * x.ndim
        index[axis] = slice(i, i + stride * (out - 1) + 1, stride)
        patch = x[tuple(index)]
        if result is None:
            result = patch.copy()
        elif average:
            result += patch
        else:
            np.maximum(result, patch, out=result)
    return result


def _window_reduce(x: np.ndarray, g: Geometry, average: bool, fill: np.generic) -> np.ndarray:
    """Sum or max of every window: the input placed in a frame of `fill` (the neutral value,
    whose dtype the frame takes), reduced along W then H."""
    kh, kw, sh, sw, out_h, out_w, top, left = g
    n, c, h, w = x.shape
    frame_h, frame_w = max((out_h - 1) * sh + kh, top + h), max((out_w - 1) * sw + kw, left + w)
    if (frame_h, frame_w, top, left) == (h, w, 0, 0):
        frame = x
    else:
        frame = np.full((n, c, frame_h, frame_w), fill, fill.dtype)
        frame[:, :, top:top + h, left:left + w] = x
    return _reduce_windows(_reduce_windows(frame, 3, kw, sw, out_w, average), 2, kh, sh, out_h, average)


def _pool(x: np.ndarray, g: Geometry, average: bool) -> np.ndarray:
    """Float pooling: padding is 0 for average (then divided away) and -inf for max."""
    result = _window_reduce(x, g, average, np.float32(0.0 if average else -np.inf))
    if average:
        result /= _window_sizes(g, *x.shape[2:]).astype(np.float32)
    return result


def _adaptive(x: np.ndarray, out_h: int, out_w: int, average: bool) -> np.ndarray:
    """Adaptive pooling: window i spans [floor(i * size / out), ceil((i + 1) * size / out))."""
    h, w = x.shape[2:]
    rows = [(i * h // out_h, -(-(i + 1) * h // out_h)) for i in range(out_h)]
    cols = [(j * w // out_w, -(-(j + 1) * w // out_w)) for j in range(out_w)]
    reduce = np.mean if average else np.max
    return np.stack([np.stack([reduce(x[:, :, r0:r1, c0:c1], axis=(2, 3)) for c0, c1 in cols], axis=-1)
                     for r0, r1 in rows], axis=-2).astype(np.float32)


@register("Pooling")
class Pooling(Kernel):
    """Int8: max pooling (never below -127, TNN's starting value) or average with integer
    division truncating toward zero, over int32 sums; padding is not part of any window."""
    per_sample = True

    def shapes(self, layer, inputs, resource):
        n, c, h, w = inputs[0]
        p = layer.params
        if p["is_adaptive"]:
            return [(n, c, p["output_h"], p["output_w"])]
        out_h, out_w = pool_geometry(p, h, w)[4:6]
        return [(n, c, out_h, out_w)]

    def run(self, layer, state, inputs):
        x = inputs[0]
        p = layer.params
        average = p["pool_type"] == 1
        h, w = x.shape[2:]
        if p["is_adaptive"]:
            return [_adaptive(x, p["output_h"], p["output_w"], average)]
        g = pool_geometry(p, h, w)
        if g[:2] == (h, w) and g[4:] == (1, 1, 0, 0):  # one window over the whole map
            reduce = np.mean if average else np.max
            return [reduce(x, axis=(2, 3), keepdims=True).astype(np.float32)]
        return [_pool(x, g, average)]

    def run_int8(self, layer, state, inputs, outputs):
        q = inputs[0].values.astype(np.int32)
        p = layer.params
        if p["is_adaptive"]:
            raise KernelError(f"layer '{layer.name}': adaptive pooling is not supported in int8")
        g = pool_geometry(p, *q.shape[2:])
        average = p["pool_type"] == 1
        result = _window_reduce(q, g, average, np.int32(0 if average else -127))
        if average:
            count = _window_sizes(g, *q.shape[2:])
            result = np.sign(result) * (np.abs(result) // count)  # C division truncates toward zero
        else:  # every window starts at -127, padded or not
            result = np.maximum(result, -127)
        return [np.clip(result, -128, 127).astype(np.int8)]
