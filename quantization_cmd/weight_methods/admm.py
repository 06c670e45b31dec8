"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (qmax * 1.25); then repeat q = clip(round(w / scale), +-qmax)
and scale = <w, q> / <q, q>, 1000 times (once a row's q stops changing, its scale stops too,
so each row leaves the loop at its own fixed point with the same result). The dot products
are accumulated in float32 in order, as TNN's loop does: the scale is then TNN's to the bit.
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
    active = np.arange(len(weights))  # rows not yet at their fixed point: once a row's q stops
    for iteration in range(MAX_ITERATIONS):  # changing its scale stops too, so it leaves the loop
        w, rows = weights[active], q[active]
        scale[active] = (_float32_dot(w, rows) / (_float32_dot(rows, rows) + EPS)).astype(np.float32)
        if iteration == MAX_ITERATIONS - 1:
            break
        new_q = _round_clip(w, scale[active], top)
        moved = np.any(new_q != rows, axis=1)
        q[active[moved]] = new_q[moved]
        active = active[moved]
        if active.size == 0:
            break
    return q.astype(np.int8), scale, np.zeros(scale.size, np.int8)


METHOD = WeightMethod("ADMM", quantize, "symmetric, scale refined by alternating rounding and least squares")
