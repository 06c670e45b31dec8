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


def _window_bounds(out: int, stride: int, pad: int, kernel: int, size: int):
    start = np.arange(out) * stride - pad
    return np.maximum(start, 0), np.minimum(start + kernel, size)


def _adaptive_bounds(out: int, size: int):
    index = np.arange(out)
    return (index * size) // out, -((-(index + 1) * size) // out)


def _pool(x: np.ndarray, rows, cols, average: bool) -> np.ndarray:
    """Pool over windows [row_start, row_end) x [col_start, col_end), vectorized per offset."""
    n, c, h, w = x.shape
    (r0, r1), (c0, c1) = rows, cols
    kh, kw = int((r1 - r0).max()), int((c1 - c0).max())
    fill = 0.0 if average else -np.inf
    padded = np.full((n, c, h + kh, w + kw), fill, np.float32)
    padded[:, :, :h, :w] = x
    result = None
    for i in range(kh):
        ri = np.where(r0 + i < r1, r0 + i, h)  # out-of-window rows read the fill value
        for j in range(kw):
            cj = np.where(c0 + j < c1, c0 + j, w)
            patch = padded[:, :, ri[:, None], cj[None, :]]
            if result is None:
                result = patch.copy()
            elif average:
                result += patch
            else:
                np.maximum(result, patch, out=result)
    if average:
        result /= ((r1 - r0)[:, None] * (c1 - c0)[None, :]).astype(np.float32)
    return result


@register("Pooling")
class Pooling(Kernel):
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
            rows, cols = _adaptive_bounds(p["output_h"], h), _adaptive_bounds(p["output_w"], w)
        elif p["kernel_h"] == 0 and p["kernel_w"] == 0:
            reduce = np.mean if average else np.max
            return [reduce(x, axis=(2, 3), keepdims=True).astype(np.float32)]
        else:
            kh, kw, sh, sw, out_h, out_w, top, left = pool_geometry(p, h, w)
            rows = _window_bounds(out_h, sh, top, kh, h)
            cols = _window_bounds(out_w, sw, left, kw, w)
        return [_pool(x, rows, cols, average)]
