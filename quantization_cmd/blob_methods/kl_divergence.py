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

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Tuple

import numpy as np

from ..observers import BINS
from .min_max import scale_from_threshold

LEVELS = 128
CANDIDATES = np.arange(LEVELS, BINS)
WORKERS = os.cpu_count() or 1


@lru_cache(maxsize=1)
def _boundaries():
    """Channel-independent geometry, boundary-major (129, candidates) so that steps from one
    boundary to the next are contiguous rows: for each level boundary x_j = j * i / 128 the
    bin holding it and its fractional position in that bin."""
    x = np.arange(LEVELS + 1)[:, None] * CANDIDATES[None, :] / LEVELS  # exact dyadic values
    floor = np.floor(x).astype(np.intp)
    frac = x - floor
    return floor, frac, frac > 0, frac[1:LEVELS], np.log(CANDIDATES / LEVELS)


def _thresholds_of(p: np.ndarray) -> int:
    """The least-KL threshold bin of one normalized histogram (float64, length BINS)."""
    floor, frac, cut, inner, log_width = _boundaries()
    cum = np.concatenate([[0.0], np.cumsum(p)])  # cum[k] = sum p[:k]
    plogp = np.concatenate([[0.0], np.cumsum(p * np.log(p))])
    padded = np.append(p, 0.0)  # a boundary at bin 2048 is never inside a bin
    p_at = padded[floor]
    cum_at = cum[floor]
    edge = cum_at + frac * p_at  # the cumulative mass at each boundary
    level_mass = edge[1:] - edge[:-1]  # Q_j, one row per level
    cut_mass = np.where(cut, p_at, 0.0)  # mass of the bins a boundary splits
    whole = cum_at[1:] - cum_at[:-1] - cut_mass[:-1]  # mass of the bins wholly inside level j
    last = CANDIDATES - 1
    tail = cum[-1] - cum[CANDIDATES]
    folded = p[last] + tail  # bin i-1 takes the tail
    entropy = plogp[last] + folded * np.log(folded)
    log_mass = np.log(level_mass)
    cross = np.einsum("ji,ji->i", whole, log_mass) + tail * log_mass[-1]
    cross -= (cum[CANDIDATES] - cut_mass.sum(axis=0) + tail) * log_width
    split = cut_mass[1:LEVELS]
    mixed = level_mass[1:] + inner * (level_mass[:-1] - level_mass[1:])
    cross += np.einsum("ji,ji->i", split, np.log(mixed)) - split.sum(axis=0) * log_width
    return int(CANDIDATES[np.argmin(entropy - cross)])


def kl_thresholds(distribution: np.ndarray) -> np.ndarray:
    """The threshold bin of least KL divergence for each row of a normalized histogram;
    rows are independent, so they are spread over the machine's cores."""
    rows = distribution.astype(np.float64)
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(rows)) or 1) as pool:
        return np.fromiter(pool.map(_thresholds_of, rows), np.int64, len(rows))


def scales(stats) -> Tuple[np.ndarray, np.ndarray]:
    thresholds = kl_thresholds(stats.histogram.distribution())
    return scale_from_threshold(thresholds, stats.histogram.interval), np.zeros(thresholds.size, np.int8)
