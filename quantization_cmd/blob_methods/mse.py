"""MSE: the threshold that minimises the quantization error of the observed |x| histogram
(tpu-mlir's and PPQ's `mse`): for a clip t on a grid of step t / qmax, values below t cost the
rounding error step^2 / 12 each, values above cost (|x| - t)^2. Every bin edge is a candidate,
all at once from prefix sums over the 2048 bins (bin centres stand for their values; zeros
quantize exactly and cost nothing). Symmetric."""
from __future__ import annotations

import numpy as np

from ..config import qmax
from ..statistics import BINS, HISTOGRAM
from . import BlobMethod, BlobStats, Scales


def errors(counts: np.ndarray, interval: np.ndarray, bits: int) -> np.ndarray:
    """(channels, BINS) expected squared error for thresholds at the upper edge of each bin."""
    n = counts.astype(np.float64)
    centre = (np.arange(BINS) + 0.5)[None, :] / interval.astype(np.float64)[:, None]
    threshold = (np.arange(BINS) + 1)[None, :] / interval.astype(np.float64)[:, None]
    inside = np.cumsum(n, axis=1)
    # sums over the bins above each candidate: n, n c, n c^2
    above = [np.flip(np.cumsum(np.flip(v, axis=1), axis=1), axis=1) for v in (n, n * centre, n * centre ** 2)]
    above = [np.concatenate([a[:, 1:], np.zeros_like(a[:, :1])], axis=1) for a in above]
    clipped = above[2] - 2 * threshold * above[1] + threshold ** 2 * above[0]
    rounding = inside * (threshold / qmax(bits)) ** 2 / 12
    return clipped + rounding


def scales(stats: BlobStats) -> Scales:
    h = stats.histogram
    best = np.argmin(errors(h.counts, h.interval, stats.config.bits), axis=1)
    top = ((best + 1) / h.interval.astype(np.float64)).astype(np.float32)
    return (top / np.float32(qmax(stats.config.bits))).astype(np.float32), np.zeros(top.size, np.int8)


METHOD = BlobMethod("MSE", scales, "symmetric, the threshold of least quantization MSE on the histogram",
                    needs=(HISTOGRAM,), small_blob_fallback=False)
