"""PERCENTILE: the threshold is the given percentile of |x| (99.99 unless `param` says), as
onnxruntime's Percentile calibrator does, zeros included, from the 2048-bin histogram (the
upper edge of the bin where the percentile falls). Symmetric."""
from __future__ import annotations

import numpy as np

from ..config import qmax
from ..statistics import HISTOGRAM
from . import BlobMethod, BlobStats, Scales


def thresholds(stats: BlobStats, percent: float) -> np.ndarray:
    h = stats.histogram
    counts = h.counts.astype(np.float64)
    counts[:, 0] += h.zeros
    cumulative = np.cumsum(counts, axis=1)
    total = np.maximum(cumulative[:, -1:], 1)
    index = np.argmax(cumulative >= total * (percent / 100.0), axis=1)
    return ((index + 1) / h.interval.astype(np.float64)).astype(np.float32)


def scales(stats: BlobStats) -> Scales:
    top = thresholds(stats, METHOD.param(stats.config))
    return (top / np.float32(qmax(stats.config.bits))).astype(np.float32), np.zeros(top.size, np.int8)


METHOD = BlobMethod("PERCENTILE", scales, "symmetric, threshold = a percentile of |x| (param, default 99.99)",
                    needs=(HISTOGRAM,), small_blob_fallback=False, default_param=99.99, param_range=(50.0, 100.0))
