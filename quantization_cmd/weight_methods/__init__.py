"""Weight methods: float weights -> integer weights on a `bits` grid, scale and zero point.

One module per method, each defining a `WeightMethod`; one `register` line below makes it
known. `quantize(weights, bits)` takes (rows, n): one row per output channel, or a single
row per tensor, and returns int8 values (within +-qmax(bits)), a scale and a zero point per row.
A method that takes long on large layers says `reports_progress` and is then called with a third
argument, a function to call with the share of the rows done so far (0 to 1) as it goes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

from ..registry import Registry

Quantized = Tuple[np.ndarray, np.ndarray, np.ndarray]
LayerProgress = Callable[[float], None]  # hears the share of a layer's rows done, 0 to 1


@dataclass(frozen=True)
class WeightMethod:
    name: str
    quantize: Callable[..., Quantized]
    help: str
    reports_progress: bool = False


WEIGHT_METHODS: Registry[WeightMethod] = Registry("weight method")
register = WEIGHT_METHODS.register


def weight_method(name: str, where: str = "weights") -> WeightMethod:
    return WEIGHT_METHODS.get(name, where)


from . import admm, asy_min_max, min_max  # noqa: E402  (modules use the types above)

register(min_max.METHOD)
register(admm.METHOD)
register(asy_min_max.METHOD)
