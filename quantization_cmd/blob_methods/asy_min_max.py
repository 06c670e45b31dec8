"""ASY_MIN_MAX (-b 3): an asymmetric range [min(0, min), max(0, max)] mapped onto 255 levels.

scale = (max - min) / 254 and zero point = 127 - round(max / scale), so max lands on 127
and min near -127 (tools/quantization/scale_calculator.cc); at b bits, 254 and 127 become
2 qmax and qmax. TNN applies it to small blobs too (no MIN_MAX fallback).
"""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away

from ..config import qmax
from . import BlobMethod, BlobStats, Scales


def asymmetric(low: np.ndarray, high: np.ndarray, bits: int = 8) -> Scales:
    """Scale and zero point of the range [min(0, low), max(0, high)], elementwise."""
    top = qmax(bits)
    low = np.minimum(np.float32(0), low.astype(np.float32))
    high = np.maximum(np.float32(0), high.astype(np.float32))
    scale = ((high - low) / np.float32(2 * top)).astype(np.float32)
    inverse = np.where(scale > 0, np.float32(1) / np.where(scale > 0, scale, 1), np.float32(1))
    zero_point = top - round_half_away(high * inverse.astype(np.float32))
    return scale, zero_point.astype(np.int8)


def scales(stats: BlobStats) -> Scales:
    return asymmetric(stats.range.min, stats.range.max, stats.config.bits)


METHOD = BlobMethod("ASY_MIN_MAX", scales, "asymmetric [min, max] with a zero point",
                    symmetry=(False,), small_blob_fallback=False)
