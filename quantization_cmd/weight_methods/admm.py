"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (qmax * 1.25); then repeat q = clip(round(w / scale), +-qmax)
and scale = <w, q> / <q, q>, 1000 times (once q stops changing, the scale stops too, so we
stop there with the same result). All rows at once. The dot products are accumulated in
float32 in order, as TNN's loop does: at a fixed point the scale is then TNN's to the bit.
"""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away

from ..config import qmax
from . import WeightMethod

MAX_ITERATIONS = 1000
EPS = np.float32(1e-9)


def _round_clip(weights: np.ndarray, scale: np.ndarray, top: int) -> np.ndarray:
    return np.clip(round_half_away(weights / (scale + EPS)[:, None]), -top, top).astype(np.float32)


def _float32_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise sum of a * b accumulated left to right in float32 (cumsum is sequential)."""
    return np.cumsum(a * b, axis=1, dtype=np.float32)[:, -1]


def quantize(weights: np.ndarray, bits: int = 8):
    top = qmax(bits)
    weights = weights.astype(np.float32)
    scale = (np.max(np.abs(weights), axis=1).astype(np.float64) / (top * 1.25)).astype(np.float32)
    q = _round_clip(weights, scale, top)
    for iteration in range(MAX_ITERATIONS):
        scale = (_float32_dot(weights, q) / (_float32_dot(q, q) + EPS)).astype(np.float32)
        if iteration == MAX_ITERATIONS - 1:
            break
        new_q = _round_clip(weights, scale, top)
        if np.array_equal(new_q, q):
            break
        q = new_q
    return q.astype(np.int8), scale, np.zeros(scale.size, np.int8)


METHOD = WeightMethod("ADMM", quantize, "symmetric, scale refined by alternating rounding and least squares")
