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


#: Candidates per block. A block's geometry and working arrays, (levels + 1) x BLOCK float64
#: each, stay in cache while every row of a chunk is searched against it (whole-row arrays, 2 MB
#: each, ran at memory speed: 2x slower). Not smaller: numpy's reductions down short columns
#: scale badly on two threads (GIL hand-offs), and at 128 two threads searched no faster than one.
BLOCK = 384
#: Rows per task of the thread pool: enough to reuse a block's geometry, few enough to share out.
CHUNK = 16


@lru_cache(maxsize=7)
def _boundaries(levels: int):
    """Channel-independent geometry for `levels` target levels (128 at 8 bits) and the
    candidate thresholds [levels, BINS), in blocks of BLOCK candidates, each boundary-major
    (levels + 1, candidates) so that steps from one boundary to the next are contiguous rows:
    for each level boundary x_j = j * i / levels the bin holding it, the same bin where x_j
    is inside it and bin BINS (a zero) where x_j is on a bin edge, and x_j's fractional
    position in its bin (0 on an edge)."""
    candidates = np.arange(levels, BINS)
    x = np.arange(levels + 1)[:, None] * candidates[None, :] / levels  # exact dyadic values
    floor = np.floor(x).astype(np.intp)
    frac = x - floor
    inside = np.where(frac > 0, floor, BINS)
    blocks = [(slice(s, s + BLOCK), *(np.ascontiguousarray(a[:, s:s + BLOCK]) for a in (floor, inside, frac)))
              for s in range(0, candidates.size, BLOCK)]
    return candidates, blocks, np.log(candidates / levels)


def _thresholds_of(p: np.ndarray, levels: int) -> np.ndarray:
    """The least-KL threshold bins of normalized histograms (float64, rows of length BINS)."""
    candidates, blocks, log_width = _boundaries(levels)
    zero = np.zeros((len(p), 1))
    cum = np.concatenate([zero, np.cumsum(p, axis=1)], axis=1)  # cum[r, k] = sum p[r, :k]
    plogp = np.concatenate([zero, np.cumsum(p * np.log(p), axis=1)], axis=1)
    padded = np.concatenate([p, zero], axis=1)  # bin BINS: nothing (a boundary there is on an edge)
    last = candidates - 1
    tail = cum[:, -1:] - cum[:, candidates]
    folded = p[:, last] + tail  # bin i-1 takes the tail
    kl = plogp[:, last] + folded * np.log(folded)  # the entropy term; the cross terms are subtracted below
    width = min(BLOCK, candidates.size)
    buffers = [np.empty((levels + 1, width)) for _ in range(3)] + [np.empty((levels, width))]
    for at, floor, inside, frac in blocks:
        cut_mass, cum_at, edge, level_mass = (b[:, :floor.shape[1]] for b in buffers)
        whole, mixed, log_mass = edge[:levels], cum_at[:levels - 1], level_mass  # each written once the other is spent
        split = cut_mass[1:levels]  # boundaries 0 and levels sit on bin edges: nothing to split
        cum_below, tails, widths = cum[:, candidates[at]], tail[:, at], log_width[at]
        for r in range(len(p)):
            np.take(padded[r], inside, out=cut_mass, mode="clip")  # the mass of the bins a boundary splits
            np.take(cum[r], floor, out=cum_at, mode="clip")  # in range; "clip" is not buffered
            np.multiply(frac, cut_mass, out=edge)  # frac * p[floor]: frac is 0 where cut_mass is
            edge += cum_at  # the cumulative mass at each boundary
            np.subtract(edge[1:], edge[:-1], out=level_mass)  # Q_j, one row per level
            np.subtract(cum_at[1:], cum_at[:-1], out=whole)
            whole -= cut_mass[:-1]  # mass of the bins wholly inside level j
            np.subtract(level_mass[:-1], level_mass[1:], out=mixed)
            mixed *= frac[1:levels]
            mixed += level_mass[1:]
            np.log(level_mass, out=log_mass)
            split_mass = split.sum(axis=0)
            cross = np.einsum("ji,ji->i", whole, log_mass) + tails[r] * log_mass[-1]
            cross -= (cum_below[r] - split_mass + tails[r]) * widths
            np.log(mixed, out=mixed)
            cross += np.einsum("ji,ji->i", split, mixed) - split_mass * widths
            kl[r, at] -= cross
    return candidates[np.argmin(kl, axis=1)]


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
    size = min(CHUNK, -(-len(todo) // WORKERS)) or 1  # a small blob's rows still go to every core
    pending = np.array(list(todo.values()))
    chunks = [pending[at:at + size] for at in range(0, len(todo), size)]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(chunks)) or 1) as pool:
        found = [int(t) for chunk in pool.map(lambda chunk: _thresholds_of(chunk, levels), chunks) for t in chunk]
    searched = dict(zip(todo, found))
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
