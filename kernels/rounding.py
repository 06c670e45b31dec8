"""Rounding as TNN's C++ does it: std::round rounds halves away from zero (numpy's round
rounds them to even, which would flip int8 values at every tie)."""
from __future__ import annotations

import numpy as np


def rounded(x: np.ndarray) -> np.ndarray:
    """std::round elementwise, as floats in the input's own float type (float64 for
    integers): exact, since trunc(x) and x - trunc(x) are, so float32 needs no float64 copy."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    whole = np.trunc(x)
    return whole + np.copysign(np.abs(x - whole) >= 0.5, x, dtype=x.dtype)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round elementwise, as int64."""
    return rounded(x).astype(np.int64)


def float2int8(value: np.ndarray, finite: bool = False) -> np.ndarray:
    """TNN's float2int8: add +-0.5 in float32, clamp to [-128, 127], truncate toward zero.

    The addition is float32 on purpose: 0.49999997 + 0.5 rounds to 1.0 in float32, so TNN
    maps it to 1, and so must we to compute what TNN computes. NaN becomes 0. Callers that
    know their values are finite say so, and the NaN pass is skipped (exact sums times finite
    scales); an int8 ReLU's output goes through relu_float2int8.
    """
    v = np.asarray(value, dtype=np.float32)
    shifted = np.copysign(np.float32(0.5), v)  # -0.0 - 0.5 truncates to 0 as +0.0 + 0.5 does
    shifted += v
    shifted = np.clip(shifted, -128, 127, out=shifted if shifted.ndim else None)
    if not finite and np.isnan(shifted.sum()):  # the clipped sum is finite unless a value is NaN
        shifted = np.where(np.isnan(shifted), np.float32(0), shifted)
    return shifted.astype(np.int8)


def relu_float2int8(value: np.ndarray, finite: bool = False) -> np.ndarray:
    """float2int8(max(value, 0)) with `value` changed in place: clipping to [0, 127] is both
    the ReLU and float2int8's clamp (v + 0.5 truncates to 127 alike whether v stopped at 127 or
    went on), then +0.5 in place and truncation; NaN becomes 0 unless `finite`."""
    v = np.clip(value, np.float32(0), np.float32(127), out=value)
    v += np.float32(0.5)
    if not finite and np.isnan(v.sum()):
        v = np.where(np.isnan(v), np.float32(0), v)
    return v.astype(np.int8)
