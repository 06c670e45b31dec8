"""ASY_MIN_MAX weights (-w 3): the range [min(0, min), max(0, max)] per row onto 2 qmax + 1
levels (255 at 8 bits), with the zero point added to every value and the result kept in
[-qmax, qmax]."""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away

from ..blob_methods.asy_min_max import asymmetric
from ..config import qmax
from . import WeightMethod


def quantize(weights: np.ndarray, bits: int = 8):
    top = qmax(bits)
    scale, zero_point = asymmetric(weights.min(axis=1), weights.max(axis=1), bits)
    inverse = np.where(scale > 0, np.float32(1) / np.where(scale > 0, scale, 1), np.float32(1))
    q = round_half_away(weights * inverse.astype(np.float32)[:, None]) + zero_point[:, None]
    return np.clip(q, -top, top).astype(np.int8), scale, zero_point


METHOD = WeightMethod("ASY_MIN_MAX", quantize, "asymmetric [min, max] with a zero point")
