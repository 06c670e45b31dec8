"""Streaming statistics of blobs, keyed by what they measure, knowing nothing of methods.

A pass asks for statistics by `StatKey` (blob, kind, per tensor or per channel); one data pass
fills every statistic a step asked for, reducing each batch to a few numbers per channel as
it passes (nothing keeps activations). Every statistic has `merge`: the statistics of two
shards of the data merge into those of the whole (exactly for ranges and fixed-range
histograms), which is what sharded or distributed calibration stands on. A statistic whose
merge is exact in any grouping and any order is a `Summed`: it splits `observe` into
`summary(x)`, which reads no state, and `add(summary)`, so that threads can share one copy
and take turns only to add, and `totals()` gives its own state as a summary, to merge in
place. The others (float sums, per-sample lists in sample order) start afresh in every
shard, and the data pass merges them in shard order wherever it runs (shards.py). Turning
statistics into scales is the job of `blob_methods`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple, Union

import numpy as np

BINS = 2048
#: A channel whose |x| never exceeds this is treated as empty (TNN's threshold).
EMPTY_CHANNEL = 1e-5
#: TNN counts in float32 starting from 1e-7: a bin stops growing at 2**24.
FLOAT32_COUNT_LIMIT = float(2 ** 24)

RANGE, MEAN_ABS, HISTOGRAM, SAMPLE_QUANTILES = "range", "mean_abs", "histogram", "sample_quantiles"


@dataclass(frozen=True)
class StatKey:
    blob: str
    kind: str  # RANGE, MEAN_ABS, HISTOGRAM or SAMPLE_QUANTILES
    per_tensor: bool
    param: Union[float, str, None] = None  # what it depends on beyond that (a quantile's p, a layer)


def by_channel(x: np.ndarray, per_tensor: bool) -> np.ndarray:
    """(n, C, ...) -> (C, n * rest), or (1, everything) per tensor: what statistics reduce over."""
    if x.ndim < 2 or per_tensor:
        return x.reshape(1, -1)
    return np.moveaxis(x.reshape(x.shape[0], x.shape[1], -1), 1, 0).reshape(x.shape[1], -1)


class Summed:
    """A statistic exact in any order (see the module's docstring): it defines `summary(x)`,
    `add(summary)`, `totals()` and `empty()`, a copy that has seen nothing."""

    def observe(self, x: np.ndarray) -> None:
        self.add(self.summary(x))

    def merge(self, other):
        out = self.empty()
        out.add(self.totals())
        out.add(other.totals())
        return out


class Range(Summed):
    """Min and max per channel (one channel when per tensor)."""

    kind = RANGE

    def __init__(self, channels: int, per_tensor: bool):
        self.per_tensor = per_tensor
        size = 1 if per_tensor else channels
        self.min = np.full(size, np.inf, np.float32)
        self.max = np.full(size, -np.inf, np.float32)

    def summary(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The range of `x` alone (no state read or written: threads may share the statistic)."""
        flat = by_channel(x, self.per_tensor)
        return flat.min(axis=1), flat.max(axis=1)

    def add(self, summary: Tuple[np.ndarray, np.ndarray]) -> None:
        np.minimum(self.min, summary[0], out=self.min)
        np.maximum(self.max, summary[1], out=self.max)

    def totals(self) -> Tuple[np.ndarray, np.ndarray]:
        """What has been seen so far, as a summary: `a.add(b.totals())` merges b into a."""
        return self.min, self.max

    def empty(self) -> "Range":
        return Range(self.min.size, self.per_tensor)

    @property
    def absmax(self) -> np.ndarray:
        return np.maximum(np.abs(self.min), np.abs(self.max))

    @property
    def valid(self) -> np.ndarray:
        """Channels that saw any value larger than EMPTY_CHANNEL in magnitude."""
        return self.absmax > EMPTY_CHANNEL


class MeanAbs:
    """Mean |x| of each sample's channel, averaged over samples (TNN's ACIQ statistic); per
    tensor, the mean over channels of those means."""

    kind = MEAN_ABS

    def __init__(self, channels: int, per_tensor: bool):
        self.per_tensor = per_tensor
        self.abs_sum = np.zeros(1 if per_tensor else channels, np.float64)
        self.samples = 0

    def observe(self, x: np.ndarray) -> None:
        per_sample = np.abs(x.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, -1))
        means = per_sample.mean(axis=2, dtype=np.float64)
        self.abs_sum += means.mean(axis=1).sum() if self.per_tensor else means.sum(axis=0)
        self.samples += x.shape[0]

    def merge(self, other: "MeanAbs") -> "MeanAbs":
        out = MeanAbs(self.abs_sum.size, self.per_tensor)
        out.abs_sum, out.samples = self.abs_sum + other.abs_sum, self.samples + other.samples
        return out

    @property
    def value(self) -> np.ndarray:
        return (self.abs_sum / max(self.samples, 1)).astype(np.float32)


class Histogram(Summed):
    """Histogram of |x| per channel over the fixed range [0, absmax] in BINS bins, zeros not
    counted; channels outside `valid` stay empty. The bin of a value is
    int(|x| * (BINS / absmax)) in float32, as TNN computes it."""

    kind = HISTOGRAM

    def __init__(self, absmax: np.ndarray, valid: np.ndarray, per_tensor: bool):
        self.per_tensor = per_tensor
        self.absmax, self.valid = absmax.astype(np.float32), valid
        safe = np.where(valid, absmax, 1.0).astype(np.float32)
        self.interval = (np.float32(BINS) / safe).astype(np.float32)
        self._counts = np.zeros((absmax.size, BINS), np.int64)
        self.zeros = np.zeros(absmax.size, np.int64)  # exact zeros, kept apart (TNN's bins skip them)

    @classmethod
    def over(cls, value_range: Range) -> "Histogram":
        """A histogram over the range a first pass found."""
        return cls(value_range.absmax, value_range.valid, value_range.per_tensor)

    def summary(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The counts and zeros of `x` alone (no state read or written: threads may share the
        statistic). Bins are numbered channel by channel, so one bincount counts them all, in
        whatever order the values lie (no channel-major copy)."""
        planes = x.reshape(1, 1, -1) if x.ndim < 2 or self.per_tensor or self.interval.size == 1 else \
            x.reshape(x.shape[0], x.shape[1], -1)
        channels = planes.shape[1]
        index = np.abs(planes)
        index *= self.interval[None, :, None]
        np.minimum(index, np.float32(BINS - 1), out=index)  # before the cast: a truncation, so the same bins
        bins = index.astype(np.intp)
        bins += (np.arange(channels, dtype=np.intp) * BINS)[None, :, None]
        counts = np.bincount(bins.reshape(-1), minlength=channels * BINS).reshape(channels, BINS)
        zeros = np.count_nonzero(planes == 0, axis=(0, 2))
        counts[:, 0] -= zeros  # zeros are not counted
        counts[~self.valid] = 0
        return counts, np.where(self.valid, zeros, 0)

    def add(self, summary: Tuple[np.ndarray, np.ndarray]) -> None:
        self.counts += summary[0]
        self.zeros += summary[1]

    @property
    def counts(self) -> np.ndarray:
        """(channels, BINS) int64 counts."""
        if self._counts.dtype != np.int64:  # as it came from another process, narrow
            self._counts = self._counts.astype(np.int64)
        return self._counts

    @counts.setter
    def counts(self, value: np.ndarray) -> None:
        self._counts = value

    def __getstate__(self) -> dict:
        """Counts travel (to worker processes and back, per shard) in the narrowest unsigned
        type that holds them, and not at all while empty: per-channel histograms of SqueezeNet
        are 106 MB as int64, a shard's fit in 2 bytes a bin. They stay narrow until read as
        `counts` (a shard's are only added to the total's)."""
        state = dict(self.__dict__)
        top = int(self._counts.max(initial=0))
        state["_counts"] = (self._counts.shape, self._counts.astype(np.min_scalar_type(top)) if top else None)
        return state

    def __setstate__(self, state: dict) -> None:
        shape, counts = state.pop("_counts")
        self.__dict__.update(state)
        self._counts = np.zeros(shape, np.int64) if counts is None else counts

    def merge(self, other: "Histogram") -> "Histogram":
        if not np.array_equal(self.interval, other.interval):
            raise ValueError("histograms over different ranges do not merge")
        return super().merge(other)

    def empty(self) -> "Histogram":
        return Histogram(self.absmax, self.valid, self.per_tensor)

    def totals(self) -> Tuple[np.ndarray, np.ndarray]:
        """What has been counted so far, as a summary (the counts read-only, maybe narrow):
        `a.add(b.totals())` merges b into a."""
        return self._counts, self.zeros

    def distribution(self) -> np.ndarray:
        """The normalized histogram per channel as TNN holds it (float32 counts from 1e-7)."""
        counts = np.minimum(self.counts, FLOAT32_COUNT_LIMIT).astype(np.float64) + 1e-7
        return counts / counts.sum(axis=1, keepdims=True)


class SampleQuantiles:
    """Each sample's low and high quantile per channel (per tensor: of the whole sample), kept
    per sample so that estimators can aggregate them (OpenVINO POT's mean or median of
    per-sample minima and maxima with an outlier probability). Per sample, not per batch,
    so the result does not depend on how the data is batched."""

    kind = SAMPLE_QUANTILES

    def __init__(self, channels: int, per_tensor: bool, outlier: float):
        self.per_tensor, self.outlier = per_tensor, outlier
        self.channels = 1 if per_tensor else channels
        self.low: list = []
        self.high: list = []

    def observe(self, x: np.ndarray) -> None:
        rows = x.reshape(x.shape[0], 1 if self.per_tensor or x.ndim < 2 else x.shape[1], -1)
        low, high = np.quantile(rows, [self.outlier, 1 - self.outlier], axis=2)
        self.low.append(low.astype(np.float32))
        self.high.append(high.astype(np.float32))

    def merge(self, other: "SampleQuantiles") -> "SampleQuantiles":
        out = SampleQuantiles(self.channels, self.per_tensor, self.outlier)
        out.low, out.high = self.low + other.low, self.high + other.high
        return out

    def values(self):
        """(samples, channels) low and high quantiles."""
        return np.concatenate(self.low), np.concatenate(self.high)


Statistic = Union[Range, MeanAbs, Histogram, SampleQuantiles]
Statistics = Dict[StatKey, Statistic]


def merge(*shards: Mapping[StatKey, Statistic]) -> Statistics:
    """The statistics of the whole data from those of its shards (same keys in each)."""
    out: Statistics = dict(shards[0])
    for shard in shards[1:]:
        if set(shard) != set(out):
            missing = sorted({k.blob for k in set(out) ^ set(shard)})
            raise ValueError(f"shards hold different statistics (e.g. for blob '{missing[0]}')")
        out = {key: out[key].merge(stat) for key, stat in shard.items()}
    return out
