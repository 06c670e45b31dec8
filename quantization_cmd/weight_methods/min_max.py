"""MIN_MAX weights (-w 0): scale = max |w| / qmax per row (127 at 8 bits), values rounded and
kept in [-qmax, qmax]."""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away

from ..config import qmax
from . import WeightMethod


def quantize(weights: np.ndarray, bits: int = 8):
    top = qmax(bits)
    absmax = np.max(np.abs(weights), axis=1).astype(np.float32)
    scale = (absmax / np.float32(top)).astype(np.float32)
    inverse = np.where(absmax != 0, np.float32(1) / np.where(scale != 0, scale, 1), np.float32(1))
    q = np.clip(round_half_away(weights * inverse.astype(np.float32)[:, None]), -top, top)
    return q.astype(np.int8), scale, np.zeros(scale.size, np.int8)


METHOD = WeightMethod("MIN_MAX", quantize, "symmetric, scale = max |w| / 127")
