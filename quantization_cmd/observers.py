"""Streaming statistics of one blob over the calibration set (TNN's ScaleCalculator, split).

The observers only collect: per-channel (or per-tensor) range, mean |x| and a 2048-bin
histogram of |x|. Turning statistics into scales is the job of `blob_methods`. Nothing keeps
activations: each batch is reduced to a few numbers per channel as it passes.
"""
from __future__ import annotations

import numpy as np

BINS = 2048
#: A channel whose |x| never exceeds this is treated as empty (TNN's threshold).
EMPTY_CHANNEL = 1e-5
#: TNN counts in float32 starting from 1e-7: a bin stops growing at 2**24.
FLOAT32_COUNT_LIMIT = float(2 ** 24)


def _by_channel(x: np.ndarray) -> np.ndarray:
    """(n, C, ...) -> (C, n * rest) view-or-copy, the layout every statistic reduces over."""
    if x.ndim < 2:
        return x.reshape(1, -1)
    return np.moveaxis(x.reshape(x.shape[0], x.shape[1], -1), 1, 0).reshape(x.shape[1], -1)


class RangeObserver:
    """Min and max per channel (one channel when per-tensor) and, if asked, mean |x|."""

    def __init__(self, channels: int, per_tensor: bool, track_mean_abs: bool = False):
        self.per_tensor = per_tensor
        size = 1 if per_tensor else channels
        self.min = np.full(size, np.inf, np.float32)
        self.max = np.full(size, -np.inf, np.float32)
        self.track_mean_abs = track_mean_abs
        self.abs_sum = np.zeros(size, np.float64)
        self.samples = 0

    def observe(self, x: np.ndarray) -> None:
        flat = _by_channel(x)
        if self.per_tensor:
            flat = flat.reshape(1, -1)
        np.minimum(self.min, flat.min(axis=1), out=self.min)
        np.maximum(self.max, flat.max(axis=1), out=self.max)
        if self.track_mean_abs:
            # mean |x| of each sample's channel, averaged over samples (TNN's ACIQ statistic)
            per_sample = np.abs(x.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, -1))
            means = per_sample.mean(axis=2, dtype=np.float64)
            self.abs_sum += means.mean(axis=1).sum() if self.per_tensor else means.sum(axis=0)
        self.samples += x.shape[0]

    @property
    def absmax(self) -> np.ndarray:
        return np.maximum(np.abs(self.min), np.abs(self.max))

    @property
    def mean_abs(self) -> np.ndarray:
        return (self.abs_sum / max(self.samples, 1)).astype(np.float32)

    @property
    def valid(self) -> np.ndarray:
        """Channels that saw any value larger than EMPTY_CHANNEL in magnitude."""
        return self.absmax > EMPTY_CHANNEL


class HistogramObserver:
    """Histogram of |x| per channel over [0, absmax] in BINS bins, zeros not counted.

    The bin of a value is int(|x| * (BINS / absmax)) in float32, as TNN computes it.
    """

    def __init__(self, absmax: np.ndarray, valid: np.ndarray):
        self.valid = valid
        safe = np.where(valid, absmax, 1.0).astype(np.float32)
        self.interval = (np.float32(BINS) / safe).astype(np.float32)
        self.counts = np.zeros((absmax.size, BINS), np.int64)

    def observe(self, x: np.ndarray) -> None:
        flat = _by_channel(x)
        if self.interval.size == 1:
            flat = flat.reshape(1, -1)
        channels = flat.shape[0]
        index = np.abs(flat) * self.interval[:, None]
        bins = np.minimum(index.astype(np.int32), BINS - 1)
        bins += (np.arange(channels, dtype=np.int32) * BINS)[:, None]
        counts = np.bincount(bins.ravel(), minlength=channels * BINS).reshape(channels, BINS)
        counts[:, 0] -= np.count_nonzero(flat == 0, axis=1)  # zeros are not counted
        counts[~self.valid] = 0
        self.counts += counts

    def distribution(self) -> np.ndarray:
        """The normalized histogram per channel as TNN holds it (float32 counts from 1e-7)."""
        counts = np.minimum(self.counts, FLOAT32_COUNT_LIMIT).astype(np.float64) + 1e-7
        return counts / counts.sum(axis=1, keepdims=True)
