"""Range estimation as pipeline passes: statistics of the observed blobs, then their scales.

Two data passes, as in TNN: the first collects each observed blob's range (and what else a
method needs, such as mean |x|), the second, only when a method needs it, a 2048-bin
histogram over [0, absmax] from the first.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from tnnformat import BlobScale

from .blob_methods import BlobStats, blob_method
from .events import Notice, Progress, TaskDone
from .pipeline import RANGES, Pass, QuantState
from .plan import Plan
from .statistics import (HISTOGRAM, MEAN_ABS, RANGE, SAMPLE_QUANTILES, Histogram, MeanAbs, Range, SampleQuantiles,
                         StatKey, Statistic, Statistics)


def blob_stats(plan: Plan, statistics: Statistics, blob: str) -> BlobStats:
    """The statistics held for `blob`, with its config, as methods read them."""
    config = plan.blobs[blob]
    shape = plan.sample_shape(blob)

    def get(kind: str, param=None):
        return statistics.get(StatKey(blob, kind, config.per_tensor, param))

    method = blob_method(config.method)
    quantiles = get(SAMPLE_QUANTILES, method.param(config)) if SAMPLE_QUANTILES in method.needs else None
    return BlobStats(blob, shape, config, get(RANGE), get(MEAN_ABS), get(HISTOGRAM), quantiles)


class RangeStatistics(Pass):
    """First data pass: the range of every observed blob, and mean |x| or per-sample quantiles
    where a method needs them."""

    name = "range"
    stage = RANGES

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        wanted: Dict[StatKey, Statistic] = {}
        for blob, config in state.plan.blobs.items():
            shape = state.plan.sample_shape(blob)
            channels = shape[0] if shape else 1
            wanted[StatKey(blob, RANGE, config.per_tensor)] = Range(channels, config.per_tensor)
            method = blob_method(config.method)
            if MEAN_ABS in method.needs:
                wanted[StatKey(blob, MEAN_ABS, config.per_tensor)] = MeanAbs(channels, config.per_tensor)
            if SAMPLE_QUANTILES in method.needs:
                outlier = method.param(config)
                wanted[StatKey(blob, SAMPLE_QUANTILES, config.per_tensor, outlier)] = \
                    SampleQuantiles(channels, config.per_tensor, outlier)
        return wanted

    def apply(self, state: QuantState) -> None:
        pass


class HistogramStatistics(Pass):
    """Second data pass: fixed-range histograms of the blobs whose method needs one (of every
    observed blob with `all_blobs`, for the HTML report)."""

    name = "histogram"
    stage = RANGES

    def __init__(self, all_blobs: bool = False):
        self.all_blobs = all_blobs

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        wanted: Dict[StatKey, Statistic] = {}
        for blob, config in state.plan.blobs.items():
            if self.all_blobs or HISTOGRAM in blob_method(config.method).needs:
                value_range = state.statistics[StatKey(blob, RANGE, config.per_tensor)]
                wanted[StatKey(blob, HISTOGRAM, config.per_tensor)] = Histogram.over(value_range)
        return wanted

    def apply(self, state: QuantState) -> None:
        pass


def _stand_in(scale: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scales for channels that never saw data: the smallest real scale of the blob (it keeps
    weights multiplied by it small), or 1 when the whole blob was zero. TNN writes 0 here,
    which its int8 kernels then divide by."""
    usable = scale[valid & (scale > 0)]
    fill = np.float32(usable.min()) if usable.size else np.float32(1.0)
    return np.where(valid & (scale > 0), scale, fill).astype(np.float32)


def scale_of(stats: BlobStats) -> Tuple[BlobScale, int]:
    """The blob's scale by its method, with stand-ins for channels that never saw data, and
    the number of such channels."""
    scale, zero_point = blob_method(stats.config.method).scales(stats)
    valid = stats.range.valid
    empty = int(np.count_nonzero(~(valid & (scale > 0))))
    return BlobScale(_stand_in(scale, valid), np.where(valid, zero_point, 0).astype(np.int8)), empty


class ComputeScales(Pass):
    """Every observed blob's scale from its statistics by its method; a warning for blobs that
    were zero on every input (the calibration inputs never reach them). Single channels that
    stay zero (dead ReLU channels, as in the demo's pool1) get a stand-in scale silently."""

    name = "scales"
    stage = RANGES

    def apply(self, state: QuantState) -> None:
        task = "computing scales"
        total = len(state.plan.blobs)
        for done, blob in enumerate(state.plan.blobs, 1):
            state.scales[blob], empty = scale_of(blob_stats(state.plan, state.statistics, blob))
            if empty and empty == state.scales[blob].scale.size:  # a few dead channels are common
                state.emit(Notice(f"blob '{blob}' was zero on every input; it gets a stand-in scale"))
            state.emit(Progress(task, done, total))
        state.emit(TaskDone(task))
