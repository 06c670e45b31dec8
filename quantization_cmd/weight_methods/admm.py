"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (127 * 1.25); then repeat q = clip(round(w / scale), +-127)
and scale = <w, q> / <q, q>, at most 1000 times (TNN always runs 1000; once q stops changing
the scale stops too, so we stop there with the same result). All rows at once.
"""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away

MAX_ITERATIONS = 1000
EPS = np.float32(1e-9)


def _round_clip(weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(round_half_away(weights / (scale + EPS)[:, None].astype(np.float32)), -127, 127)


def quantize(weights: np.ndarray):
    weights = weights.astype(np.float32)
    scale = (np.max(np.abs(weights), axis=1) / np.float32(127 * 1.25)).astype(np.float32)
    q = _round_clip(weights, scale)
    for _ in range(MAX_ITERATIONS):
        qf = q.astype(np.float64)
        scale = (np.einsum("ij,ij->i", weights, qf) / (np.einsum("ij,ij->i", qf, qf) + EPS)).astype(np.float32)
        new_q = _round_clip(weights, scale)
        if np.array_equal(new_q, q):
            break
        q = new_q
    return q.astype(np.int8), scale, np.zeros(scale.size, np.int8)
