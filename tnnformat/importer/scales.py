"""Scales a pre-quantized source carries (ONNX QDQ pairs, TFLite int8 tensors), per value.

The source's code q of a value x is real = (q - zero_point) * scale, q in [qmin, qmax]. TNN's
int8 blobs hold codes in [-127, 127] with a scale and a zero point (as TNN's ASY_MIN_MAX writes
them), or symmetric ones with zero point 0. `asymmetric` keeps an 8-bit source's own grid
(its step, its zero on a code): TNN's 255 codes hold all of the source's 256 but the top one,
which saturates one step below (onnxruntime's MinMax puts only the calibration maximum there),
so the two runtimes round every other value alike. Wider or per-channel sources have their
whole range put on TNN's 255 codes. `symmetric_scale` covers the range on +-127 around 0 (for
an asymmetric source a step up to twice the source's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np


@dataclass(frozen=True)
class FileScale:
    scale: np.ndarray       # one per tensor, or one per channel
    zero_point: np.ndarray  # as many as scale
    qmin: int
    qmax: int

    def value_range(self) -> Tuple[float, float]:
        """[lo, hi] the source's codes represent (every channel's), widened to hold 0."""
        scale = np.asarray(self.scale, np.float64).reshape(-1)
        zero = np.asarray(self.zero_point, np.float64).reshape(-1)
        low, high = ((self.qmin - zero) * scale).min(), ((self.qmax - zero) * scale).max()
        return min(float(low), 0.0), max(float(high), 0.0)

    def symmetric_scale(self) -> float:
        """TNN's per-tensor symmetric int8 scale covering the source's range."""
        low, high = self.value_range()
        return max(-low, high) / 127.0

    def asymmetric(self) -> Tuple[float, int]:
        """TNN's per-tensor (scale, zero point) for the source's codes. One 8-bit scale: the
        source's step, and its code q becomes TNN's q - qmin - 127 (the top code saturates at
        127), unless the zero point is the top code. Otherwise the range on codes -127..127:
        (hi - lo) / 254 and 127 - round(hi / scale), TNN's ASY_MIN_MAX rule."""
        scale = np.asarray(self.scale, np.float64).reshape(-1)
        zero = int(np.asarray(self.zero_point).reshape(-1)[0]) - self.qmin - 127
        if scale.size == 1 and self.qmax - self.qmin == 255 and scale[0] > 0 and zero <= 127:
            return float(scale[0]), zero
        low, high = self.value_range()
        step = (high - low) / 254.0
        return step, int(127 - round(high / step))


#: value name -> its scale in the source.
FileScales = Dict[str, FileScale]


@dataclass(frozen=True)
class Prequantized:
    """What a pre-quantized source carries: its blobs' scales (by TNN blob) and whether its
    weights were quantized per channel (else per tensor)."""

    scales: FileScales
    weights_per_channel: bool = True

INTEGER_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                  "uint16": (0, 65535)}


def file_scale(scale, zero_point, dtype) -> FileScale:
    """A FileScale from a source's scale, zero point and code type (numpy dtype or name)."""
    name = np.dtype(dtype).name
    if name not in INTEGER_RANGES:
        raise ValueError(f"codes of type {name} are not supported")
    scale = np.asarray(scale, np.float32).reshape(-1)
    zero = np.broadcast_to(np.asarray(zero_point, np.int64).reshape(-1), scale.shape)
    return FileScale(scale, zero.copy(), *INTEGER_RANGES[name])


def blob_scales(scales: FileScales, blobs: Dict[str, str]) -> FileScales:
    """`scales` keyed by TNN blob (`blobs`: source value -> blob) instead of source value."""
    return {blobs[name]: scale for name, scale in scales.items() if name in blobs}
