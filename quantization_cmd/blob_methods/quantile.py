"""QUANTILE_MEAN / QUANTILE_MEDIAN: OpenVINO POT's range estimators with an outlier
probability p (`param`, default 1e-4): each sample's p and 1 - p quantiles per channel (per
tensor: of the whole sample), then their mean or median over the samples. Symmetric
(threshold = the larger magnitude) or asymmetric ([low, high] with a zero point)."""
from __future__ import annotations

import numpy as np

from ..config import qmax
from ..statistics import SAMPLE_QUANTILES
from . import BlobMethod, BlobStats, Scales
from .asy_min_max import asymmetric


def _scales(stats: BlobStats, aggregate) -> Scales:
    low, high = (aggregate(v, axis=0).astype(np.float32) for v in stats.quantiles.values())
    if not stats.symmetric:
        return asymmetric(low, high, stats.config.bits)
    top = np.maximum(np.abs(low), np.abs(high))
    return (top / np.float32(qmax(stats.config.bits))).astype(np.float32), np.zeros(top.size, np.int8)


def _method(name: str, aggregate) -> BlobMethod:
    return BlobMethod(name, lambda stats: _scales(stats, aggregate),
                      f"per-sample quantiles (outlier probability param, default 1e-4), their {aggregate.__name__}",
                      needs=(SAMPLE_QUANTILES,), symmetry=(True, False), small_blob_fallback=False,
                      default_param=1e-4, param_range=(0.0, 0.5))


MEAN = _method("QUANTILE_MEAN", np.mean)
MEDIAN = _method("QUANTILE_MEDIAN", np.median)
