"""Pooling: max and average, global, adaptive, ceil mode (TNN's pooling layer and NaivePooling).

Padding never enters a window: max pooling ignores it and average pooling divides by the
number of real input values in the window, as TNN's CPU reference does.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ..registry import Kernel, register


def pool_geometry(p: dict, height: int, width: int) -> Tuple[int, int, int, int, int, int, int, int]:
    """(kernel_h, kernel_w, stride_h, stride_w, out_h, out_w, pad_top, pad_left)."""
    kh, kw = p["kernel_h"] or height, p["kernel_w"] or width  # 0 0: global
    if p["kernel_h"] == 0 and p["kernel_w"] == 0:
        return kh, kw, 1, 1, 1, 1, 0, 0
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


def _pool(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, out_h: int, out_w: int,
          top: int, left: int, average: bool) -> np.ndarray:
    """Windows over the input placed in a frame of the neutral value (0 for average, -inf for
    max), reduced along W then H."""
    n, c, h, w = x.shape
    frame_h, frame_w = max((out_h - 1) * sh + kh, top + h), max((out_w - 1) * sw + kw, left + w)
    if (frame_h, frame_w, top, left) == (h, w, 0, 0):
        frame = x
    else:
        frame = np.full((n, c, frame_h, frame_w), 0.0 if average else -np.inf, np.float32)
        frame[:, :, top:top + h, left:left + w] = x
    result = _reduce_windows(_reduce_windows(frame, 3, kw, sw, out_w, average), 2, kh, sh, out_h, average)
    if average:
        counts = np.outer(_window_counts(out_h, sh, top, kh, h), _window_counts(out_w, sw, left, kw, w))
        result /= counts.astype(np.float32)
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
        if p["kernel_h"] == 0 and p["kernel_w"] == 0:
            reduce = np.mean if average else np.max
            return [reduce(x, axis=(2, 3), keepdims=True).astype(np.float32)]
        return [_pool(x, *pool_geometry(p, h, w), average)]
