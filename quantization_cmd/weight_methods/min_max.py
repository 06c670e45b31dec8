"""MIN_MAX weights (-w 0): scale = max |w| / 127 per row, values rounded and kept in [-127, 127]."""
from __future__ import annotations

import numpy as np

from kernels.rounding import round_half_away


def quantize(weights: np.ndarray):
    absmax = np.max(np.abs(weights), axis=1).astype(np.float32)
    scale = (absmax / np.float32(127)).astype(np.float32)
    inverse = np.where(absmax != 0, np.float32(1) / np.where(scale != 0, scale, 1), np.float32(1))
    q = np.clip(round_half_away(weights * inverse.astype(np.float32)[:, None]), -127, 127)
    return q.astype(np.int8), scale, np.zeros(scale.size, np.int8)
