"""KL_DIVERGENCE (-b 2): the clipping threshold whose 128-level quantization loses least.

For each candidate threshold bin i in [128, 2048) TNN compares the histogram clipped at i
(the tail folded into bin i-1) with its quantization to 128 levels re-expanded to i bins,
and keeps the i of least KL divergence (tools/quantization/scale_calculator.cc). We compute
the same quantities for every candidate at once, from prefix sums:

* target level j covers [x_j, x_j+1) with x_j = j * i / 128 (exact in float32, as in TNN);
  its mass Q_j = F(x_j+1) - F(x_j), F the piecewise-linear cumulative histogram;
* every bin has mass (TNN starts bins at 1e-7), so level j spreads Q_j evenly over its
  width i / 128: a whole bin inside level j gets v_j = Q_j * 128 / i, and a bin cut at x_j
  gets the weighted mix of v_j-1 and v_j;
* KL = sum p log p - sum p log q splits into per-level terms over prefix sums, so no loop
  over candidates and no re-summing of bins.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np

from ..observers import BINS
from .min_max import scale_from_threshold

LEVELS = 128
CANDIDATES = np.arange(LEVELS, BINS)
CHUNK = 8  # channels per vectorized step: bounds memory to a few tens of MB


@lru_cache(maxsize=1)
def _boundaries() -> Tuple[np.ndarray, np.ndarray]:
    """Floor and fractional part of every level boundary x_j (j = 0..128) of every candidate."""
    x = CANDIDATES[:, None] * np.arange(LEVELS + 1)[None, :] / LEVELS  # exact dyadic values
    floor = np.floor(x).astype(np.int64)
    return floor, x - floor


def kl_thresholds(distribution: np.ndarray) -> np.ndarray:
    """The threshold bin of least KL divergence for each row of a normalized histogram."""
    floor, frac = _boundaries()
    widths = CANDIDATES.astype(np.float64) / LEVELS
    last = CANDIDATES - 1
    result = np.empty(distribution.shape[0], np.int64)
    for start in range(0, distribution.shape[0], CHUNK):
        p = distribution[start:start + CHUNK].astype(np.float64)
        zero = np.zeros((p.shape[0], 1))
        cum = np.concatenate([zero, np.cumsum(p, axis=1)], axis=1)  # cum[k] = sum p[:k]
        plogp = np.concatenate([zero, np.cumsum(p * np.log(p), axis=1)], axis=1)
        padded = np.concatenate([p, zero], axis=1)  # p at a boundary equal to 2048 is unused

        p_at = padded[:, floor]  # (c, candidates, 129): bin holding each boundary
        cum_at = cum[:, floor]
        edge = cum_at + frac * p_at  # F at each boundary
        level_mass = np.diff(edge, axis=2)  # Q_j
        value = level_mass / widths[None, :, None]  # v_j
        cut = frac[:, 1:LEVELS] > 0  # boundaries inside a bin
        # mass of the whole bins of each level: from ceil(x_j) to floor(x_j+1)
        ceil_cum = cum_at + (frac > 0) * p_at
        whole = cum_at[:, :, 1:] - ceil_cum[:, :, :-1]
        tail = cum[:, -1:] - cum[:, CANDIDATES]  # mass at and beyond bin i
        folded = p[:, last] + tail  # bin i-1 takes the tail
        entropy = plogp[:, last] + folded * np.log(folded)  # sum ref log ref
        cross = np.sum(whole * np.log(value), axis=2) + tail * np.log(value[:, :, -1])
        mixed = value[:, :, :-1] * frac[None, :, 1:LEVELS] + value[:, :, 1:] * (1 - frac[None, :, 1:LEVELS])
        cut_mass = np.where(cut[None], p_at[:, :, 1:LEVELS], 0.0)
        cross += np.sum(cut_mass * np.log(np.where(cut[None], mixed, 1.0)), axis=2)
        result[start:start + CHUNK] = CANDIDATES[np.argmin(entropy - cross, axis=1)]
    return result


def scales(stats) -> Tuple[np.ndarray, np.ndarray]:
    thresholds = kl_thresholds(stats.histogram.distribution())
    return scale_from_threshold(thresholds, stats.histogram.interval), np.zeros(thresholds.size, np.int8)
