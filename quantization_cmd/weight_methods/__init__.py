"""Weight calibration methods: float weights -> int8 weights, scale and zero point.

One module per method; each exposes `quantize(weights) -> (int8 weights, scale, zero_point)`
where `weights` is (groups, n): one row per output channel, or a single row per tensor.
The numbers are TNN's `-w` values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from . import admm, asy_min_max, min_max

Quantized = Tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class WeightMethod:
    name: str
    quantize: Callable[[np.ndarray], Quantized]
    help: str


MIN_MAX, ADMM, ASY_MIN_MAX = 0, 1, 3

WEIGHT_METHODS: Dict[int, WeightMethod] = {
    MIN_MAX: WeightMethod("MIN_MAX", min_max.quantize, "symmetric, scale = max |w| / 127"),
    ADMM: WeightMethod("ADMM", admm.quantize,
                       "symmetric, scale refined by alternating rounding and least squares"),
    ASY_MIN_MAX: WeightMethod("ASY_MIN_MAX", asy_min_max.quantize,
                              "asymmetric [min, max] with a zero point"),
}
