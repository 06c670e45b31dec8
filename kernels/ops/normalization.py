"""Per-channel affine layers, Softmax, LRN and Normalize."""
from __future__ import annotations

import numpy as np

from ..registry import Kernel, float_buffer, register


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    flat = values.reshape(-1)
    return flat.reshape((1, -1) + (1,) * (ndim - 2)) if flat.size > 1 else flat.reshape((1,) * ndim)


@register("BatchNormCxx", "BatchNormalization", "Scale")
class ChannelAffine(Kernel):
    """x * scale[c] + bias[c] (inference batch norm is folded into scale and bias)."""
    per_sample = True


    def prepare(self, layer, resource):
        scale = float_buffer(resource, "scale", layer)
        has_bias = layer.params.get("bias_term", 1) and "bias" in resource and resource["bias"].data.size
        return scale, (float_buffer(resource, "bias", layer) if has_bias else None)

    def run(self, layer, state, inputs):
        scale, bias = state
        x = inputs[0]
        y = x * _per_channel(scale, x.ndim)
        if bias is not None:
            y = y + _per_channel(bias, x.ndim)
        return [y.astype(np.float32, copy=False)]


@register("Softmax", "SoftmaxCaffe")
class Softmax(Kernel):
    def shapes(self, layer, inputs, resource):
        axis, rank = layer.params["axis"], len(inputs[0])
        if not -rank <= axis < rank:
            raise ValueError(f"axis {axis} is outside the input's {rank} dimensions")
        return [tuple(inputs[0])]

    def run(self, layer, state, inputs):
        x = inputs[0]
        axis = layer.params["axis"]
        shifted = np.exp(x - x.max(axis=axis, keepdims=True))
        return [(shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)]

    def samples_apart(self, layer, inputs):
        return layer.params["axis"] % len(inputs[0]) != 0


@register("LRN")
class LRN(Kernel):
    """Across channels: x / (bias + alpha / size * sum of x^2 over the window) ^ beta, the
    window reaching (size - 1) // 2 channels to each side, as TNN counts it."""
    per_sample = True


    def run(self, layer, state, inputs):
        p = layer.params
        x = inputs[0]
        half = (p["size"] - 1) // 2
        squares = np.square(x.astype(np.float64))
        padded = np.pad(squares, ((0, 0), (half, half)) + ((0, 0),) * (x.ndim - 2))
        summed = np.cumsum(padded, axis=1)
        summed = np.concatenate([np.zeros_like(summed[:, :1]), summed], axis=1)
        window = summed[:, 2 * half + 1:] - summed[:, :-2 * half - 1]
        y = x / np.power(p["bias"] + p["alpha"] / p["size"] * window, p["beta"])
        return [y.astype(np.float32)]


@register("Normalize")
class Normalize(Kernel):
    """Lp normalization over channels at each position: x / max(||x||_2, eps) for p = 2,
    x / sum |x| for p = 1."""
    per_sample = True


    def run(self, layer, state, inputs):
        p = layer.params
        x = inputs[0]
        if p["across_spatial"] or p["axis"] != 1 or p["p"] not in (1, 2):
            raise ValueError(f"Normalize with across_spatial={p['across_spatial']}, axis={p['axis']}, "
                             f"p={p['p']} is not supported (TNN supports axis 1, p 1 or 2)")
        if p["p"] == 2:
            norm = np.maximum(np.sqrt(np.sum(np.square(x), axis=1, keepdims=True)), np.float32(p["epsilon"]))
        else:
            norm = np.sum(np.abs(x), axis=1, keepdims=True)
        return [(x / norm).astype(np.float32)]
