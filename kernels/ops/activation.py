"""Element-wise activations and other one-input element-wise layers; ReLU also on int8."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from ..registry import Kernel, float_buffer, register


def relu(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """max(x, 0), NaN kept, as np.clip: numpy's clip loop runs a third faster than its maximum
    (the values are the same; only -0.0 stays -0.0)."""
    return np.clip(x, np.float32(0), np.float32(np.inf), out=out)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-x))).astype(np.float32)


UNARY: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ReLU": relu,
    "ReLU6": lambda x: np.clip(x, 0, 6),
    "Sigmoid": _sigmoid,
    "Swish": lambda x: x * _sigmoid(x),
    "Tanh": np.tanh,
    "Abs": np.abs,
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Rsqrt": lambda x: 1 / np.sqrt(x),
    "Square": np.square,
    "Neg": np.negative,
    "Reciprocal": lambda x: 1 / x,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Softplus": lambda x: np.logaddexp(0, x),
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Sin": np.sin, "Cos": np.cos, "Tan": np.tan,
    "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Dropout": lambda x: x,
    "Identity": lambda x: x,
}
UNARY["Relu"], UNARY["Relu6"] = UNARY["ReLU"], UNARY["ReLU6"]


class Unary(Kernel):
    per_sample = True

    def run(self, layer, state, inputs):
        with np.errstate(all="ignore"):
            return [np.asarray(UNARY[layer.type](inputs[0]), dtype=np.float32)]


register(*(name for name in UNARY if name != "ReLU"))(Unary)


@register("ReLU")
class ReLU(Unary):
    """Int8: max(q, 0) on the int8 values, the zero point ignored (as in TNN)."""

    def run_int8(self, layer, state, inputs, outputs):
        return [np.maximum(inputs[0].values, 0).astype(np.int8)]

    def run_into(self, layer, state, inputs, out: np.ndarray) -> None:
        """`run` written into `out` (the slice of a concatenation, see the interpreter)."""
        relu(inputs[0], out=out)


@register("Clip")
class Clip(Kernel):
    per_sample = True

    def run(self, layer, state, inputs):
        return [np.clip(inputs[0], layer.params["min"], layer.params["max"]).astype(np.float32)]


@register("Elu")
class Elu(Kernel):
    per_sample = True

    def run(self, layer, state, inputs):
        x = inputs[0]
        return [np.where(x > 0, x, layer.params["alpha"] * np.expm1(np.minimum(x, 0))).astype(np.float32)]


@register("Power")
class Power(Kernel):
    """TNN's Power layer: (x * scale + shift) ** exponent."""
    per_sample = True

    def run(self, layer, state, inputs):
        p = layer.params
        base = inputs[0] * np.float32(p["scale"]) + np.float32(p["shift"])
        return [np.power(base, np.float32(p["exponent"])).astype(np.float32)]


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(x * np.float32(alpha) + np.float32(beta), 0, 1).astype(np.float32)


@register("HardSigmoid")
class HardSigmoid(Kernel):
    """clip(alpha * x + beta, 0, 1)."""
    per_sample = True


    def run(self, layer, state, inputs):
        return [_hard_sigmoid(inputs[0], layer.params["alpha"], layer.params["beta"])]


@register("HardSwish")
class HardSwish(Kernel):
    """x0 * clip(alpha * x1 + beta, 0, 1); with one input x1 is x0. Two inputs broadcast."""
    per_sample = True


    def shapes(self, layer, inputs, resource):
        return [tuple(np.broadcast_shapes(*[tuple(s) for s in inputs]))]

    def run(self, layer, state, inputs):
        x0, x1 = inputs[0], inputs[-1]
        return [(x0 * _hard_sigmoid(x1, layer.params["alpha"], layer.params["beta"])).astype(np.float32)]


@register("PReLU")
class PReLU(Kernel):
    """max(x, 0) + slope * min(x, 0), the slope per channel or shared."""
    per_sample = True


    def prepare(self, layer, resource):
        return float_buffer(resource, "slope", layer).reshape(-1)

    def run(self, layer, slope, inputs):
        x = inputs[0]
        if slope.size == 1 or layer.params["channel_shared"]:
            s = slope[:1].reshape((1,) * x.ndim)
        else:
            s = slope.reshape((1, -1) + (1,) * (x.ndim - 2))
        return [np.where(x > 0, x, x * s).astype(np.float32)]
