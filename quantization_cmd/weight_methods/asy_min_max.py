"""ASY_MIN_MAX weights (-w 3): the range [min(0, min), max(0, max)] per row onto 255 levels,
with the zero point added to every value and the result kept in [-127, 127]."""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away
from ..blob_methods.asy_min_max import asymmetric


def quantize(weights: np.ndarray):
    scale, zero_point = asymmetric(weights.min(axis=1), weights.max(axis=1))
    inverse = np.where(scale > 0, np.float32(1) / np.where(scale > 0, scale, 1), np.float32(1))
    q = round_half_away(weights * inverse.astype(np.float32)[:, None]) + zero_point[:, None]
    return np.clip(q, -127, 127).astype(np.int8), scale, zero_point
