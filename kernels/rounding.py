"""Rounding as TNN's C++ does it: std::round rounds halves away from zero (numpy's round
rounds them to even, which would flip int8 values at every tie)."""
from __future__ import annotations

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round elementwise, as int64; exact for float32 input (the sum is done in float64)."""
    wide = np.asarray(x, dtype=np.float64)
    return (np.sign(wide) * np.floor(np.abs(wide) + 0.5)).astype(np.int64)
