"""Blob (activation) calibration methods: statistics of one blob -> int8 scale and zero point.

One module per method; each exposes `scales(stats) -> (scale, zero_point)` per channel (or
one value when per-tensor). The numbers are TNN's `-b` values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..observers import HistogramObserver, RangeObserver
from . import aciq, asy_min_max, kl_divergence, min_max


@dataclass
class BlobStats:
    """What calibration learned about one blob (`shape` is one sample's shape, C first)."""

    name: str
    shape: Tuple[int, ...]
    method: int
    range: RangeObserver
    histogram: Optional[HistogramObserver] = None

    @property
    def channels(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def elements_per_channel(self) -> int:
        return int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1


@dataclass(frozen=True)
class BlobMethod:
    name: str
    scales: Callable[[BlobStats], Tuple[np.ndarray, np.ndarray]]
    needs_histogram: bool
    needs_mean_abs: bool
    help: str


MIN_MAX, KL_DIVERGENCE, ASY_MIN_MAX, ACIQ_GAUS, ACIQ_LAPLACE = 0, 2, 3, 4, 5

BLOB_METHODS: Dict[int, BlobMethod] = {
    MIN_MAX: BlobMethod("MIN_MAX", min_max.scales, False, False,
                        "symmetric, threshold = the largest |x| seen"),
    KL_DIVERGENCE: BlobMethod("KL_DIVERGENCE", kl_divergence.scales, True, False,
                              "symmetric, threshold of least KL divergence (2048-bin histogram)"),
    ASY_MIN_MAX: BlobMethod("ASY_MIN_MAX", asy_min_max.scales, False, False,
                            "asymmetric [min, max] with a zero point"),
    ACIQ_GAUS: BlobMethod("ACIQ_GAUS", aciq.gauss_scales, False, False,
                          "symmetric, analytical clip assuming a Gaussian"),
    ACIQ_LAPLACE: BlobMethod("ACIQ_LAPLACE", aciq.laplace_scales, False, True,
                             "symmetric, analytical clip assuming a Laplace distribution"),
}
