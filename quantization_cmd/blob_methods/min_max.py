"""MIN_MAX (-b 0): the threshold is the largest |x| seen, per channel or per tensor.

TNN expresses it through its histogram (threshold bin 2047 of 2048 over [0, absmax]), which
makes the scale (2047 + 0.5) / (2048 / absmax) / 127, a hair below absmax / 127; we keep that.
Asymmetric, it is the [min, max] range of `asy_min_max` (without that method's TNN quirk).
"""
from __future__ import annotations

import numpy as np

from ..config import qmax
from ..statistics import BINS
from . import BlobMethod, BlobStats, Scales
from .asy_min_max import asymmetric


def scale_from_threshold(threshold_bin: np.ndarray, interval: np.ndarray, bits: int) -> np.ndarray:
    """Scale of a threshold bin: the bin's centre over the bins-per-unit interval, over the
    grid's largest code (computed in double and stored as float, as in TNN)."""
    return ((threshold_bin.astype(np.float64) + 0.5) / interval.astype(np.float64) / float(qmax(bits))
            ).astype(np.float32)


def scales(stats: BlobStats) -> Scales:
    bits = stats.config.bits
    if not stats.symmetric:
        return asymmetric(stats.range.min, stats.range.max, bits)
    interval = (np.float32(BINS) / np.maximum(stats.range.absmax, np.float32(1e-30))).astype(np.float32)
    threshold = np.full(interval.size, BINS - 1)
    return scale_from_threshold(threshold, interval, bits), np.zeros(interval.size, np.int8)


METHOD = BlobMethod("MIN_MAX", scales, "symmetric, threshold = the largest |x| seen",
                    symmetry=(True, False))
