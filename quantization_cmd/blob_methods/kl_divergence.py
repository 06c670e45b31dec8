"""KL_DIVERGENCE (-b 2): the clipping threshold whose 128-level quantization loses least.

For each candidate threshold bin i in [128, 2048) TNN compares the histogram clipped at i
(the tail folded into bin i-1) with its quantization to 128 levels (2**(bits-1) at other
bit widths) re-expanded to i bins, and keeps the i of least KL divergence (tools/quantization/scale_calculator.cc). We compute
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

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from ..config import qmax
from ..statistics import BINS, HISTOGRAM
from . import BlobMethod, BlobStats, Scales
from .min_max import scale_from_threshold

WORKERS = os.cpu_count() or 1


@lru_cache(maxsize=7)
def _boundaries(levels: int):
    """Channel-independent geometry for `levels` target levels (128 at 8 bits) and the
    candidate thresholds [levels, BINS), boundary-major (levels + 1, candidates) so that steps
    from one boundary to the next are contiguous rows: for each level boundary
    x_j = j * i / levels the bin holding it and its fractional position in that bin."""
    candidates = np.arange(levels, BINS)
    x = np.arange(levels + 1)[:, None] * candidates[None, :] / levels  # exact dyadic values
    floor = np.floor(x).astype(np.intp)
    frac = x - floor
    return candidates, floor, frac, frac > 0, frac[1:levels], np.log(candidates / levels)


def _thresholds_of(p: np.ndarray, levels: int) -> int:
    """The least-KL threshold bin of one normalized histogram (float64, length BINS)."""
    candidates, floor, frac, cut, inner, log_width = _boundaries(levels)
    cum = np.concatenate([[0.0], np.cumsum(p)])  # cum[k] = sum p[:k]
    plogp = np.concatenate([[0.0], np.cumsum(p * np.log(p))])
    padded = np.append(p, 0.0)  # a boundary at bin 2048 is never inside a bin
    p_at = padded[floor]
    cum_at = cum[floor]
    edge = cum_at + frac * p_at  # the cumulative mass at each boundary
    level_mass = edge[1:] - edge[:-1]  # Q_j, one row per level
    cut_mass = np.where(cut, p_at, 0.0)  # mass of the bins a boundary splits
    whole = cum_at[1:] - cum_at[:-1] - cut_mass[:-1]  # mass of the bins wholly inside level j
    last = candidates - 1
    tail = cum[-1] - cum[candidates]
    folded = p[last] + tail  # bin i-1 takes the tail
    entropy = plogp[last] + folded * np.log(folded)
    log_mass = np.log(level_mass)
    split = cut_mass[1:levels]  # boundaries 0 and levels sit on bin edges: nothing to split
    split_mass = split.sum(axis=0)
    cross = np.einsum("ji,ji->i", whole, log_mass) + tail * log_mass[-1]
    cross -= (cum[candidates] - split_mass + tail) * log_width
    mixed = level_mass[1:] + inner * (level_mass[:-1] - level_mass[1:])
    cross += np.einsum("ji,ji->i", split, np.log(mixed)) - split_mass * log_width
    return int(candidates[np.argmin(entropy - cross)])


#: Thresholds found so far, by a digest of the histogram row and the level count. A
#: concatenation's channels have the histograms of its inputs' channels (a third of
#: SqueezeNet's rows), and a dead channel's histogram is the same everywhere.
_found: "OrderedDict[bytes, int]" = OrderedDict()
FOUND_KEPT = 1 << 16
_found_lock = threading.Lock()


def _digest(row: np.ndarray, levels: int) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16, salt=levels.to_bytes(16, "little")).digest()


def kl_thresholds(distribution: np.ndarray, bits: int = 8) -> np.ndarray:
    """The threshold bin of least KL divergence for each row of a normalized histogram.
    Rows are independent: those not searched before are spread over the machine's cores."""
    rows = distribution.astype(np.float64)
    levels = qmax(bits) + 1
    keys = [_digest(row, levels) for row in rows]
    with _found_lock:
        known = {key: _found[key] for key in keys if key in _found}
    todo = {key: row for key, row in zip(keys, rows) if key not in known}
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(todo)) or 1) as pool:
        searched = dict(zip(todo, pool.map(lambda row: _thresholds_of(row, levels), todo.values())))
    known.update(searched)
    with _found_lock:
        _found.update(searched)
        for key in keys:
            _found.move_to_end(key)
        while len(_found) > FOUND_KEPT:
            _found.popitem(last=False)
    return np.array([known[key] for key in keys], np.int64)


def scales(stats: BlobStats) -> Scales:
    bits = stats.config.bits
    thresholds = kl_thresholds(stats.histogram.distribution(), bits)
    return scale_from_threshold(thresholds, stats.histogram.interval, bits), np.zeros(thresholds.size, np.int8)


METHOD = BlobMethod("KL_DIVERGENCE", scales,
                    "symmetric, threshold of least KL divergence (2048-bin histogram)", needs=(HISTOGRAM,))
