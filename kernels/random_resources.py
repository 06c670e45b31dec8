"""Seeded random resources for a proto that comes without a model.

TNN fills missing weights with random data for benchmarks (interpreter/layer_resource_generator.cc);
we do the same so any proto can be run and tested. Unlike TNN's uniform [-1, 1] weights, ours
are scaled by the fan-in so that deep networks keep finite, non-degenerate activations.
Shapes that depend on the input (InnerProduct weights, per-channel scales) come from shape
inference, which is why this lives in kernels and not in tnnformat.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, Tuple

import numpy as np

from tnnformat import BlobScale, Layer, Net, RawBuffer, Resource
from tnnformat.layer_types import spec

from .shapes import infer_shapes

Shape = Tuple[int, ...]


def _float(rng: np.random.Generator, shape: Shape, scale: float = 1.0) -> RawBuffer:
    return RawBuffer.from_array(rng.uniform(-scale, scale, shape).astype(np.float32))


def _int8_weights(float_weights: np.ndarray, out_axis_len: int) -> Resource:
    """Per-output-channel symmetric int8 version of `float_weights` (first axis = output)."""
    flat = float_weights.reshape(out_axis_len, -1)
    scale = np.maximum(np.abs(flat).max(axis=1), 1e-8) / 127.0
    q = np.clip(np.round(flat / scale[:, None]), -127, 127).astype(np.int8)
    return {
        "weights": RawBuffer.from_array(q.reshape(float_weights.shape)),
        "zero_point": RawBuffer.from_array(np.zeros(out_axis_len, np.int8), dims=()),
        "scale": RawBuffer.from_array(scale.astype(np.float32), dims=()),
    }


def _weighted(layer: Layer, rng: np.random.Generator, weight_key: str, weight_shape: Shape,
              fan_in: int, bias_key_on: bool, out_len: int) -> Resource:
    weights = rng.uniform(-1, 1, weight_shape).astype(np.float32) * np.float32(np.sqrt(3.0 / max(fan_in, 1)))
    bias = rng.uniform(-0.1, 0.1, out_len).astype(np.float32)
    if not layer.quantized:
        resource = {weight_key: RawBuffer.from_array(weights)}
        if bias_key_on:
            resource["bias"] = RawBuffer.from_array(bias)
        return resource
    quantized = _int8_weights(weights, out_len)
    resource = {weight_key: quantized.pop("weights"), **quantized}
    if bias_key_on:  # in steps of the weight scale, as a calibrated model stores it
        steps = bias / np.broadcast_to(quantized["scale"].data, bias.shape)
        resource["bias"] = RawBuffer.from_array(np.round(steps).astype(np.int32), dims=())
    return resource


def _conv(layer: Layer, rng, shapes) -> Resource:
    p = layer.params
    in_c = shapes[layer.inputs[0]][1]
    group = max(p["group"], 1)
    if layer.type == "Deconvolution":
        shape = (in_c, p["output_channel"] // group, p["kernel_h"], p["kernel_w"])
        fan_in = in_c // group * p["kernel_h"] * p["kernel_w"]
    else:
        shape = (p["output_channel"], in_c // group, p["kernel_h"], p["kernel_w"])
        fan_in = int(np.prod(shape[1:]))
    return _weighted(layer, rng, "filter", shape, fan_in, bool(p["bias"]), p["output_channel"])


def _inner_product(layer: Layer, rng, shapes) -> Resource:
    p = layer.params
    in_shape = shapes[layer.inputs[0]]
    fan_in = int(np.prod(in_shape[max(p["axis"], 1):]))
    return _weighted(layer, rng, "weight", (p["num_output"], fan_in), fan_in, True, p["num_output"])


def _channels(layer: Layer, shapes) -> int:
    shape = shapes[layer.inputs[0]]
    return shape[1] if len(shape) > 1 else 1


def _scale_bias(layer: Layer, rng, shapes) -> Resource:
    c = _channels(layer, shapes)
    return {"scale": RawBuffer.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32)),
            "bias": _float(rng, (c,), 0.1)}


def _prelu(layer: Layer, rng, shapes) -> Resource:
    c = 1 if layer.params.get("channel_shared") else _channels(layer, shapes)
    return {"slope": RawBuffer.from_array(rng.uniform(0.0, 0.5, c).astype(np.float32))}


def _element(layer: Layer, rng, shapes) -> Resource:
    c = _channels(layer, shapes)
    if layer.type in ("Mul", "Div"):
        values = rng.uniform(0.5, 1.5, c)
    else:
        values = rng.uniform(-0.1, 0.1, c)
    return {"element": RawBuffer.from_array(values.astype(np.float32).reshape(1, c, 1, 1))}


def _const(layer: Layer, rng, shapes) -> Resource:
    return {"weight": _float(rng, tuple(layer.params["dims"]))}


_MAKERS: Dict[str, Callable[[Layer, np.random.Generator, Dict[str, Shape]], Resource]] = {
    "Convolution": _conv, "Deconvolution": _conv, "InnerProduct": _inner_product,
    "BatchNormCxx": _scale_bias, "BatchNormalization": _scale_bias, "Scale": _scale_bias,
    "PReLU": _prelu, "Const": _const,
    **{name: _element for name in ("Add", "Sub", "Mul", "Div", "Maximum", "Minimum")},
}


def _blob_scale(rng: np.random.Generator, channels: int) -> BlobScale:
    return BlobScale(rng.uniform(0.01, 0.05, channels).astype(np.float32), np.zeros(channels, np.int8))


def with_random_resources(net: Net, seed: int = 0) -> Net:
    """A copy of `net` whose layers without resources get seeded random ones of the right
    shapes (int8 weights and blob scales for quantized layers); existing resources stay."""
    rng = np.random.default_rng(seed)
    out = copy.copy(net)
    out.resources = dict(net.resources)
    shapes = infer_shapes(net)
    for layer in net.layers:
        layer_spec = spec(layer.type)
        needs_resource = layer_spec is not None and layer_spec.resource is not None
        if needs_resource and layer.name not in out.resources:
            if layer.type in ("Add", "Sub", "Mul", "Div", "Maximum", "Minimum") and len(layer.inputs) > 1:
                pass  # both operands are blobs: no constant
            elif layer.type in _MAKERS:
                out.resources[layer.name] = _MAKERS[layer.type](layer, rng, shapes)
            else:
                raise NotImplementedError(f"no random resource for layer type {layer.type}")
        if layer.quantized:
            for blob in layer.inputs + layer.outputs:
                if out.blob_scale(blob) is None:
                    shape = shapes[blob]
                    out.set_scale(blob, _blob_scale(rng, shape[1] if len(shape) > 1 else 1))
    return out
