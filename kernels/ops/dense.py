"""InnerProduct (fully connected over everything from `axis` on) and MatMul."""
from __future__ import annotations

import numpy as np

from ..errors import KernelError
from ..int8 import accumulator_dtype, centered_input, channel_values, requant_multiplier, requantized
from ..registry import Kernel, float_buffer, register
from ..rounding import float2int8


@register("InnerProduct")
class InnerProduct(Kernel):
    """One matrix-vector product per row: BLAS's matrix product sums in an order that depends
    on how many rows it is given, so a batch would not give each sample's batch-1 result (and
    a calibration at batch 8 not the scales of batch 1)."""

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
        y = np.stack([row @ weight_t for row in rows]) if len(rows) else rows @ weight_t
        if bias is not None:
            y += bias
        return [y.reshape(tuple(x.shape[:axis]) + (weight_t.shape[1],)).astype(np.float32, copy=False)]

    def samples_apart(self, layer, inputs):
        return layer.params["axis"] >= 1

    def prepare_int8(self, layer, resource, inputs, outputs):
        out = layer.params["num_output"]
        weight = resource["weight"].numpy().reshape(out, -1).astype(np.float32)  # int8 differences: exact
        zero_w = channel_values(resource["zero_point"].numpy().reshape(-1).astype(np.float32), out)
        bias = resource["bias"].numpy().reshape(-1).astype(np.int32) if layer.params["has_bias"] else None
        multiplier = requant_multiplier(resource["scale"].numpy(np.float32).reshape(-1), outputs[0], out)
        centered = weight - zero_w[:, None]
        # exact integer sums: any order gives the same, so BLAS reads the rows as stored (a
        # transposed copy of AlexNet's 4096 x 9216 weights took a second)
        return centered.astype(accumulator_dtype(centered, inputs[0], bias), copy=False), bias, multiplier

    def run_int8(self, layer, state, inputs, outputs):
        weight, bias, multiplier = state
        rows = centered_input(inputs[0], weight.dtype).reshape(inputs[0].values.shape[0], -1)
        val = requantized(rows @ weight.T, bias, multiplier)
        zero_out = channel_values(outputs[0].zero_point, val.shape[1]).astype(np.float32)
        return [float2int8(val + zero_out)]


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
