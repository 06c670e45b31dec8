"""Build the int8 model: quantized layers, int8 weights with their scales, BlobScale resources.

As TNN's tool does (tools/quantization/calibration.cc): a convolution's weights are first
multiplied by its input blob's per-channel scale (not for depthwise convolutions, whose
weight scale is multiplied by the input scale afterwards), then quantized per output channel
or per tensor; the bias becomes int32 in units of the weight scale. Unlike TNN we round the
bias instead of truncating it, and give all-zero weight rows a scale that keeps their bias.
"""
from __future__ import annotations

import copy
from typing import Dict

import numpy as np

from kernels.rounding import round_half_away
from tnnformat import BLOB_SCALE_SUFFIX, BlobScale, Layer, Net, RawBuffer, Resource, TnnFormatError

from .config import LayerConfig
from .events import Progress, TaskDone
from .pipeline import QUANTIZE, Pass, QuantState
from .plan import Plan
from .weight_methods import weight_method

#: An all-zero weight row gets scale |bias| / 2**20, so its int32 bias is exactly +-2**20.
ZERO_ROW_BIAS_STEPS = float(2 ** 20)


def _flat(values: np.ndarray) -> RawBuffer:
    """A buffer without dims, as TNN's tool writes its int8 data."""
    return RawBuffer.from_array(np.ascontiguousarray(values).reshape(-1), dims=())


def _weight_rows(weights: np.ndarray, per_tensor: bool) -> np.ndarray:
    return weights.reshape(1 if per_tensor else weights.shape[0], -1)


def _zero_rows_kept(scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Replace zero weight scales (all-zero weights) by ones at which the bias survives."""
    if not np.any(scale == 0):
        return scale
    magnitude = np.abs(bias) if scale.size > 1 else np.abs(bias).max(keepdims=True)
    stand_in = np.where(magnitude > 0, magnitude / ZERO_ROW_BIAS_STEPS, 1.0).astype(np.float32)
    return np.where(scale == 0, stand_in, scale).astype(np.float32)


def _quantize_weights(layer: Layer, weights: np.ndarray, bias, config: LayerConfig,
                      post_scale: np.ndarray):
    """int8 weights, scale, zero point and int32 bias of a layer whose weights are (out, ...)
    and already multiplied by the input scale; `post_scale` multiplies the weight scale after
    quantization (depthwise convolutions)."""
    method = weight_method(config.weight_method)
    q, scale, zero_point = method.quantize(_weight_rows(weights, config.per_tensor), config.bits)
    scale = (scale * post_scale).astype(np.float32)
    zeros = np.zeros(weights.shape[0], np.float32)
    scale = _zero_rows_kept(scale, zeros if bias is None else bias)
    resource = {"zero_point": _flat(zero_point.astype(np.int8)), "scale": _flat(scale)}
    if bias is not None:
        steps = round_half_away(bias.astype(np.float64) / np.broadcast_to(scale, bias.shape))
        if np.any(np.abs(steps) > np.iinfo(np.int32).max):
            raise TnnFormatError("the bias does not fit int32 at this weight scale", layer=layer.name)
        resource["bias"] = _flat(steps.astype(np.int32))
    return resource, q.reshape(-1)


def _conv(layer: Layer, res: Resource, input_scale: np.ndarray, config: LayerConfig) -> Resource:
    p = layer.params
    weights = res["filter"].numpy(np.float32)
    out, group = p["output_channel"], max(p["group"], 1)
    kernel = p["kernel_h"] * p["kernel_w"]
    if weights.size % (out * kernel) or out % group:
        raise TnnFormatError(f"filter of {weights.size} values does not fit {out} outputs, "
                             f"{group} groups and a {p['kernel_h']}x{p['kernel_w']} kernel", layer=layer.name)
    in_per_group = weights.size // out // kernel
    out_per_group = out // group
    depthwise = in_per_group == 1 and out_per_group == 1
    if input_scale.size not in (1, group * in_per_group):
        raise TnnFormatError(f"input scale has {input_scale.size} channels, the filter "
                             f"{group * in_per_group}", layer=layer.name)
    w = weights.reshape(group, out_per_group, in_per_group, kernel)
    s = input_scale.astype(np.float32)
    if depthwise:
        post = s if s.size == 1 or not config.per_tensor else s[:1]
    else:
        w = w * (s.reshape(1, 1, 1, 1) if s.size == 1 else s.reshape(group, 1, in_per_group, 1))
        post = np.float32(1)
    bias = res["bias"].numpy(np.float32).reshape(-1) if p.get("bias") else None
    resource, q = _quantize_weights(layer, w.reshape(out, -1), bias, config, post)
    resource["filter"] = _flat(q)
    return resource


def _inner_product(layer: Layer, res: Resource, input_scale: np.ndarray, config: LayerConfig) -> Resource:
    out = layer.params["num_output"]
    weights = res["weight"].numpy(np.float32).reshape(out, -1)
    weights = weights * input_scale.astype(np.float32).max()
    bias = res["bias"].numpy(np.float32).reshape(-1) if layer.params.get("has_bias") else None
    resource, q = _quantize_weights(layer, weights, bias, config, np.float32(1))
    resource["weight"] = _flat(q)
    if bias is None:  # InnerProduct always stores a bias buffer
        resource["bias"] = res["bias"]
    return resource


def quantize_net(float_net: Net, plan: Plan, scales: Dict[str, BlobScale], state: QuantState) -> Net:
    """The int8 Net: quantized layers with integer weights, a BlobScale for every blob a
    quantized layer reads or writes; progress after each layer's weights."""
    layers = []
    resources: Dict[str, Resource] = {name: res for name, res in float_net.resources.items()}
    task, weighted = "quantizing weights", plan.weighted
    done = 0
    for layer in plan.net.layers:
        layer = copy.copy(layer)
        layer.quantized = layer.name in plan.quantized
        layers.append(layer)
        if layer.name not in plan.layers:
            continue
        input_scale = scales[plan.scale_source[layer.inputs[0]]].scale
        if layer.name not in float_net.resources:
            raise TnnFormatError("the model has no weights for this layer", layer=layer.name)
        make = _conv if layer.type == "Convolution" else _inner_product
        resources[layer.name] = make(layer, float_net.resources[layer.name], input_scale, plan.layers[layer.name])
        done += 1
        state.emit(Progress(task, done, len(weighted)))
    state.emit(TaskDone(task))
    for blob, source in plan.scale_source.items():
        resources[blob + BLOB_SCALE_SUFFIX] = scales[source].to_resource()
    return Net(inputs=dict(float_net.inputs), outputs=list(float_net.outputs), layers=layers,
               input_types=dict(float_net.input_types), blobs=float_net.all_blobs(),
               resources=resources, constants=dict(float_net.constants))


class WriteInt8(Pass):
    """The int8 model from the float one and the scales (TNN's layout)."""

    name = "int8 model"
    stage = QUANTIZE

    def apply(self, state: QuantState) -> None:
        state.net = quantize_net(state.float_net, state.plan, state.scales, state)
