"""MIN_MAX (-b 0): the threshold is the largest |x| seen, per channel or per tensor.

TNN expresses it through its histogram (threshold bin 2047 of 2048 over [0, absmax]), which
makes the scale (2047 + 0.5) / (2048 / absmax) / 127, a hair below absmax / 127; we keep that.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..observers import BINS


def scale_from_threshold(threshold_bin: np.ndarray, interval: np.ndarray) -> np.ndarray:
    """Scale of a threshold bin: the bin's centre over the bins-per-unit interval, over 127
    (computed in double and stored as float, as in TNN)."""
    return ((threshold_bin.astype(np.float64) + 0.5) / interval.astype(np.float64) / 127.0).astype(np.float32)


def scales(stats) -> Tuple[np.ndarray, np.ndarray]:
    interval = (np.float32(BINS) / np.maximum(stats.range.absmax, np.float32(1e-30))).astype(np.float32)
    threshold = np.full(interval.size, BINS - 1)
    return scale_from_threshold(threshold, interval), np.zeros(interval.size, np.int8)
