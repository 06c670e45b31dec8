"""Int8 execution of quantized layers, with TNN's integer arithmetic (CPU reference device).

A blob produced by a quantized layer is int8 with its BlobScale (scale and zero point per
channel or per tensor). Where a float blob enters a quantized layer TNN inserts a reformat
that quantizes it with that blob's scale, float2int8(x / scale + zero_point); where an int8
blob enters a float layer it is dequantized, scale * (q - zero_point). Facts from TNN's
source/tnn/device/cpu/acc/ (conv, inner product, add, concat, pool, relu, reformat) and
utils/naive_compute.cc.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from tnnformat import BLOB_SCALE_SUFFIX, Layer, Net, Resource

from .errors import KernelError
from .ops.conv import arrange_filter, convolve
from .ops.pooling import pool_geometry
from .rounding import float2int8
from .tnn_optimizer import CONV_ACTIVATION_ADD, CONV_ADD_ACTIVATION, RELU, RELU6

FLT_MIN = np.float32(np.finfo(np.float32).tiny)


@dataclass
class BlobScale:
    scale: np.ndarray  # float32, one value or one per channel
    zero_point: np.ndarray  # int8, same length

    def per_channel(self, ndim: int) -> Tuple[np.ndarray, np.ndarray]:
        """Scale and zero point shaped to broadcast over an (n, C, ...) tensor."""
        shape = (1, -1) + (1,) * (ndim - 2) if self.scale.size > 1 else (1,) * ndim
        return self.scale.reshape(shape), self.zero_point.reshape(shape)


@dataclass
class Int8Blob:
    values: np.ndarray  # int8
    scale: BlobScale

    def dequantize(self) -> np.ndarray:
        scale, zero = self.scale.per_channel(self.values.ndim)
        return (scale * (self.values.astype(np.float32) - zero.astype(np.float32))).astype(np.float32)


def quantize(x: np.ndarray, scale: BlobScale) -> Int8Blob:
    """TNN's reformat float -> int8; a zero scale gives 0, as in TNN."""
    s, zp = scale.per_channel(x.ndim)
    safe = np.where(s != 0, s, np.float32(1))
    q = float2int8(x.astype(np.float32) / safe + zp.astype(np.float32))
    return Int8Blob(np.where(s != 0, q, 0).astype(np.int8), scale)


def blob_scale(net: Net, layer: Layer, blob: str) -> BlobScale:
    resource = net.resources.get(blob + BLOB_SCALE_SUFFIX)
    if resource is None or "scale" not in resource:
        raise KernelError(f"layer '{layer.name}' is {layer.type_str} but blob '{blob}' has no "
                          f"blob scale ('{blob}{BLOB_SCALE_SUFFIX}') in the model")
    scale = resource["scale"].numpy(np.float32).reshape(-1)
    zero = resource["zero_point"].numpy().reshape(-1).astype(np.int8) if "zero_point" in resource \
        else np.zeros(scale.size, np.int8)
    return BlobScale(scale, zero)


def _requant_multiplier(weight_scale: np.ndarray, output: BlobScale, channels: int) -> np.ndarray:
    """weight scale / output scale per output channel in float32; 0 where the output scale is
    below FLT_MIN (TNN's guard)."""
    w = np.broadcast_to(weight_scale.astype(np.float32), (channels,)) if weight_scale.size == 1 else weight_scale
    o = np.broadcast_to(output.scale, (channels,)) if output.scale.size == 1 else output.scale
    return np.where(o >= FLT_MIN, w / np.where(o >= FLT_MIN, o, 1), np.float32(0)).astype(np.float32)


def _per_channel(values: np.ndarray, channels: int) -> np.ndarray:
    return np.broadcast_to(values, (channels,)) if values.size == 1 else values


class Int8Kernel:
    def prepare(self, layer: Layer, resource: Resource, inputs: List[BlobScale], outputs: List[BlobScale]):
        return None

    def run(self, layer: Layer, state, inputs: Sequence[Int8Blob], outputs: List[BlobScale]) -> List[np.ndarray]:
        raise NotImplementedError


INT8_KERNELS: Dict[str, Int8Kernel] = {}


def register_int8(*names: str):
    def add(cls):
        for name in names:
            INT8_KERNELS[name] = cls()
        return cls
    return add


def _finish_int8(val: np.ndarray, layer: Layer, out: BlobScale, added) -> np.ndarray:
    """The fused Add (before or after the activation), the fused activation and the final
    rounding of an int8 convolution, in TNN's order."""
    channels, kind, fusion = val.shape[1], layer.params["activation_type"], layer.params.get("fusion_type", 0)
    shape = (1, -1, 1, 1)
    if fusion == CONV_ADD_ACTIVATION:
        val = val + added
    if kind == RELU:
        val = np.maximum(val, np.float32(0))
    elif kind == RELU6:  # clipped at the int8 code of 6; TNN adds no zero point and no later Add
        top = float2int8(np.float32(6.0) / _per_channel(out.scale, channels)).reshape(shape)
        return np.maximum(np.minimum(float2int8(val), top), 0).astype(np.int8)
    elif kind != 0:
        raise KernelError(f"layer '{layer.name}': activation_type {kind} is not supported in int8")
    if fusion == CONV_ACTIVATION_ADD:
        val = val + added
    return float2int8(val + _per_channel(out.zero_point, channels).astype(np.float32).reshape(shape))


@register_int8("Convolution")
class Int8Convolution(Int8Kernel):
    """acc = sum (x - zp_x)(w - zp_w) + bias in exact integers (padding contributes 0);
    out = float2int8(float(acc) * (w_scale / out_scale) + zp_out), activation in between."""

    def prepare(self, layer, resource, inputs, outputs):
        p = layer.params
        filt = resource["filter"].numpy().reshape(-1).astype(np.float64)
        out = p["output_channel"]
        zero_w = _per_channel(resource["zero_point"].numpy().reshape(-1).astype(np.float64), out)
        centered = filt.reshape(out, -1) - zero_w[:, None]
        bias = resource["bias"].numpy().reshape(-1).astype(np.int64) if p["bias"] and "bias" in resource else None
        multiplier = _requant_multiplier(resource["scale"].numpy(np.float32).reshape(-1), outputs[0], out)
        add_scale = _requant_multiplier(inputs[1].scale, outputs[0], out) if len(inputs) > 1 else None
        return arrange_filter(centered, layer), bias, multiplier, add_scale

    def run(self, layer, state, inputs, outputs):
        weights, bias, multiplier, add_scale = state
        x = inputs[0]
        _, zero = x.scale.per_channel(x.values.ndim)
        acc = convolve(x.values.astype(np.float64) - zero.astype(np.float64), weights, layer)
        acc = np.rint(acc).astype(np.int64)
        if bias is not None:
            acc += bias[None, :, None, None]
        val = acc.astype(np.int32).astype(np.float32) * multiplier[None, :, None, None]
        added = None
        if add_scale is not None:  # TNN's conv+add fusion: the Add's other operand, rescaled
            other, s = inputs[1], add_scale[None, :, None, None]
            zero_out = _per_channel(other.scale.zero_point, val.shape[1]).astype(np.float32)[None, :, None, None]
            added = other.values.astype(np.float32) * s - zero_out * s
        return [_finish_int8(val, layer, outputs[0], added)]


@register_int8("InnerProduct")
class Int8InnerProduct(Int8Kernel):
    def prepare(self, layer, resource, inputs, outputs):
        out = layer.params["num_output"]
        weight = resource["weight"].numpy().reshape(out, -1).astype(np.float64)
        zero_w = _per_channel(resource["zero_point"].numpy().reshape(-1).astype(np.float64), out)
        bias = resource["bias"].numpy().reshape(-1).astype(np.int64) if layer.params["has_bias"] else None
        multiplier = _requant_multiplier(resource["scale"].numpy(np.float32).reshape(-1), outputs[0], out)
        return np.ascontiguousarray((weight - zero_w[:, None]).T), bias, multiplier

    def run(self, layer, state, inputs, outputs):
        weight_t, bias, multiplier = state
        x = inputs[0]
        _, zero = x.scale.per_channel(x.values.ndim)
        rows = (x.values.astype(np.float64) - zero).reshape(x.values.shape[0], -1)
        acc = np.rint(rows @ weight_t).astype(np.int64)
        if bias is not None:
            acc += bias
        channels = acc.shape[1]
        zero_out = _per_channel(outputs[0].zero_point, channels).astype(np.float32)
        return [float2int8(acc.astype(np.int32).astype(np.float32) * multiplier + zero_out)]


@register_int8("Add")
class Int8Add(Int8Kernel):
    """Each input dequantized in float32, summed in order, requantized to the output scale."""

    def run(self, layer, state, inputs, outputs):
        total = None
        for blob in inputs:
            scale, zero = blob.scale.per_channel(blob.values.ndim)
            term = scale * (blob.values.astype(np.float32) - zero.astype(np.float32))
            total = term if total is None else total + term
        scale, zero = outputs[0].per_channel(total.ndim)
        return [float2int8(total / scale + zero.astype(np.float32))]


@register_int8("Concat")
class Int8Concat(Int8Kernel):
    """All per-tensor: each input requantized to the output scale. Otherwise TNN copies the
    int8 values as they are (per-channel scales then line up channel for channel)."""

    def run(self, layer, state, inputs, outputs):
        axis = layer.params["axis"] % inputs[0].values.ndim
        out = outputs[0]
        if all(b.scale.scale.size == 1 for b in inputs) and out.scale.size == 1:
            parts = [float2int8((b.values.astype(np.int32) - int(b.scale.zero_point[0])).astype(np.float32)
                                * b.scale.scale[0] / out.scale[0] + np.float32(out.zero_point[0]))
                     for b in inputs]
        else:
            parts = [b.values for b in inputs]
        return [np.concatenate(parts, axis=axis)]


@register_int8("Pooling")
class Int8Pooling(Int8Kernel):
    """Max pooling (never below -127, TNN's starting value) or average with integer division
    truncating toward zero, over int32 sums; padding is not part of any window."""

    def run(self, layer, state, inputs, outputs):
        q = inputs[0].values
        p = layer.params
        n, c, h, w = q.shape
        if p["is_adaptive"]:
            raise KernelError(f"layer '{layer.name}': adaptive pooling is not supported in int8")
        kh, kw, sh, sw, out_h, out_w, top, left = pool_geometry(p, h, w)
        average = p["pool_type"] == 1
        frame = np.full((n, c, max((out_h - 1) * sh + kh, top + h), max((out_w - 1) * sw + kw, left + w)),
                        0 if average else -127, np.int32)
        frame[:, :, top:top + h, left:left + w] = q
        result = None
        for i in range(kh):
            for j in range(kw):
                patch = frame[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]
                result = patch.copy() if result is None else (result + patch if average else np.maximum(result, patch))
        if average:
            rows = np.minimum(np.arange(out_h) * sh - top + kh, h) - np.maximum(np.arange(out_h) * sh - top, 0)
            cols = np.minimum(np.arange(out_w) * sw - left + kw, w) - np.maximum(np.arange(out_w) * sw - left, 0)
            count = np.outer(rows, cols)
            result = np.sign(result) * (np.abs(result) // count)  # C division truncates toward zero
        return [np.clip(result, -128, 127).astype(np.int8)]


@register_int8("ReLU")
class Int8ReLU(Int8Kernel):
    """max(q, 0) on the int8 values, the zero point ignored (as in TNN)."""

    def run(self, layer, state, inputs, outputs):
        return [np.maximum(inputs[0].values, 0).astype(np.int8)]


