"""Rounding as TNN's C++ does it: std::round rounds halves away from zero (numpy's round
rounds them to even, which would flip int8 values at every tie)."""
from __future__ import annotations

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round elementwise, as int64; exact for float32 input (the sum is done in float64)."""
    wide = np.asarray(x, dtype=np.float64)
    return (np.sign(wide) * np.floor(np.abs(wide) + 0.5)).astype(np.int64)


def float2int8(value: np.ndarray, nonnegative: bool = False, finite: bool = False) -> np.ndarray:
    """TNN's float2int8: add +-0.5 in float32, clamp to [-128, 127], truncate toward zero.

    The addition is float32 on purpose: 0.49999997 + 0.5 rounds to 1.0 in float32, so TNN
    maps it to 1, and so must we to compute what TNN computes. NaN becomes 0. Callers that
    know their values are >= 0 (or -0.0: the same code) or finite say so, and the sign and
    NaN passes are skipped (an int8 kernel's ReLU output, exact sums times finite scales).
    """
    v = np.asarray(value, dtype=np.float32)
    if nonnegative:
        shifted = np.add(v, np.float32(0.5))
        shifted = np.minimum(shifted, np.float32(127), out=shifted if shifted.ndim else None)
    else:
        shifted = np.copysign(np.float32(0.5), v)  # -0.0 - 0.5 truncates to 0 as +0.0 + 0.5 does
        shifted += v
        shifted = np.clip(shifted, -128, 127, out=shifted if shifted.ndim else None)
    if not finite and np.isnan(shifted.sum()):  # the clipped sum is finite unless a value is NaN
        shifted = np.where(np.isnan(shifted), np.float32(0), shifted)
    return shifted.astype(np.int8)
