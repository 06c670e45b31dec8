"""InnerProduct (fully connected over everything from `axis` on) and MatMul."""
from __future__ import annotations

import numpy as np

from ..errors import KernelError
from ..registry import Kernel, float_buffer, register


@register("InnerProduct")
class InnerProduct(Kernel):
    def shapes(self, layer, inputs, resource):
        axis = layer.params["axis"]
        return [tuple(inputs[0][:axis]) + (layer.params["num_output"],)]

    def prepare(self, layer, resource):
        out = layer.params["num_output"]
        weight = float_buffer(resource, "weight", layer)
        if weight.size % out:
            raise KernelError(f"layer '{layer.name}': {weight.size} weights do not fit {out} outputs")
        bias = float_buffer(resource, "bias", layer).reshape(-1) if layer.params["has_bias"] else None
        return np.ascontiguousarray(weight.reshape(out, -1).T), bias

    def run(self, layer, state, inputs):
        weight_t, bias = state
        x = inputs[0]
        axis = layer.params["axis"]
        rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
        if rows.shape[1] != weight_t.shape[0]:
            raise KernelError(f"layer '{layer.name}': input {list(x.shape)} gives {rows.shape[1]} "
                              f"features from axis {axis}, the weights take {weight_t.shape[0]}")
        y = rows @ weight_t
        if bias is not None:
            y += bias
        return [y.reshape(tuple(x.shape[:axis]) + (weight_t.shape[1],)).astype(np.float32, copy=False)]

    def samples_apart(self, layer, inputs):
        return layer.params["axis"] >= 1


@register("MatMul")
class MatMul(Kernel):
    """numpy matmul semantics; with one blob input the other matrix is the resource `weight`,
    placed first when `weight_position` is 0."""

    def _operands(self, layer, inputs, weight):
        if len(inputs) == 2:
            return inputs
        return (weight, inputs[0]) if layer.params["weight_position"] == 0 else (inputs[0], weight)

    def shapes(self, layer, inputs, resource):
        weight = () if len(inputs) == 2 else resource["weight"].dims
        a, b = self._operands(layer, inputs, weight)
        zero = np.float32(0)
        return [np.matmul(np.broadcast_to(zero, a), np.broadcast_to(zero, b)).shape]

    def prepare(self, layer, resource):
        return None if len(layer.inputs) == 2 else resource["weight"].numpy(np.float32)

    def run(self, layer, weight, inputs):
        a, b = self._operands(layer, inputs, weight)
        return [np.matmul(a, b).astype(np.float32, copy=False)]
