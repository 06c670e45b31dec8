"""Blob (activation) range methods: statistics of one blob -> scale and zero point.

One module per method, each defining a `BlobMethod`; one `register` line below makes it
known to the config, the CLI and the calibration table. A method declares the statistics it
needs beyond the range, which symmetries it offers, and its quirks; `scales(stats)` gets a
`BlobStats` (the statistics and the blob's config) and returns one scale and zero point per
channel (one value per tensor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..config import BlobConfig
from ..registry import Registry
from ..statistics import Histogram, MeanAbs, Range, SampleQuantiles

Scales = Tuple[np.ndarray, np.ndarray]


@dataclass
class BlobStats:
    """What calibration learned about one blob (`shape` is one sample's shape, C first)."""

    name: str
    shape: Tuple[int, ...]
    config: BlobConfig
    range: Range
    mean_abs: Optional[MeanAbs] = None
    histogram: Optional[Histogram] = None
    quantiles: Optional[SampleQuantiles] = None

    @property
    def channels(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def elements_per_channel(self) -> int:
        return int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1

    @property
    def symmetric(self) -> bool:
        return blob_method(self.config.method).is_symmetric(self.config)


@dataclass(frozen=True)
class BlobMethod:
    name: str
    scales: Callable[[BlobStats], Scales]
    help: str
    #: statistic kinds needed beyond the range (statistics.MEAN_ABS, statistics.HISTOGRAM)
    needs: Tuple[str, ...] = ()
    #: the symmetries offered, the default first
    symmetry: Tuple[bool, ...] = (True,)
    #: TNN estimates from data only blobs with at least 100 values per channel; smaller ones
    #: fall back to MIN_MAX, except for methods that say False here
    small_blob_fallback: bool = True
    #: the one tunable parameter (BlobConfig.param): its default and open range, if any
    default_param: Optional[float] = None
    param_range: Optional[Tuple[float, float]] = None

    def is_symmetric(self, config: BlobConfig) -> bool:
        return self.symmetry[0] if config.symmetric is None else config.symmetric

    def param(self, config: BlobConfig) -> Optional[float]:
        return self.default_param if config.param is None else config.param


BLOB_METHODS: Registry[BlobMethod] = Registry("blob method")
register = BLOB_METHODS.register


def blob_method(name: str, where: str = "activations") -> BlobMethod:
    return BLOB_METHODS.get(name, where)


from . import aciq, asy_min_max, kl_divergence, min_max, mse, percentile, quantile  # noqa: E402

register(min_max.METHOD)
register(kl_divergence.METHOD)
register(asy_min_max.METHOD)
register(aciq.GAUSS)
register(aciq.LAPLACE)
register(percentile.METHOD)
register(mse.METHOD)
register(quantile.MEAN)
register(quantile.MEDIAN)
