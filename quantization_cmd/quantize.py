"""Build the int8 model: quantized layers, int8 weights with their scales, BlobScale resources.

As TNN's tool does (tools/quantization/calibration.cc): a convolution's weights are first
multiplied by its input blob's per-channel scale (not for depthwise convolutions, whose
weight scale is multiplied by the input scale afterwards), then quantized per output channel
or per tensor; the bias becomes int32 in units of the weight scale. Unlike TNN we round the
bias instead of truncating it, and give all-zero weight rows a scale that keeps their bias.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import numpy as np

from kernels.rounding import round_half_away
from tnnformat import BLOB_SCALE_SUFFIX, BlobScale, Layer, Net, RawBuffer, Resource, TnnFormatError

from .config import LayerConfig
from .events import Listener, Notice, Progress, TaskDone, ignore
from .pipeline import QUANTIZE, Pass, QuantState
from .plan import Plan
from .weight_methods import LayerProgress, weight_method

#: An all-zero weight row gets scale |bias| / 2**20, so its int32 bias is exactly +-2**20.
ZERO_ROW_BIAS_STEPS = float(2 ** 20)
#: A weight row whose largest |w| is below this share of the layer's is a dead channel (real
#: models have rows of 1e-30 beside rows of 0.1): it is quantized to zeros, its bias kept.
NEGLIGIBLE_ROW = 1e-6
INT32_MAX = np.iinfo(np.int32).max


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
    stand_in = np.maximum(stand_in, np.finfo(np.float32).tiny)  # a denormal bias must not give scale 0
    return np.where(scale == 0, stand_in, scale).astype(np.float32)


def _channels(mask: np.ndarray) -> str:
    index = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in index[:8])
    return shown + (f" and {index.size - 8} more" if index.size > 8 else "")


def _without_dead_rows(layer: Layer, weights: np.ndarray, original: np.ndarray, emit: Listener) -> np.ndarray:
    """`weights` with the rows that are negligible in the layer's `original` float weights (dead
    channels; judged before the input scales multiply them) set to zero, and a warning naming them."""
    absmax = np.abs(original).max(axis=1)
    dead = (absmax > 0) & (absmax <= NEGLIGIBLE_ROW * absmax.max())
    if not dead.any():
        return weights
    emit(Notice(f"layer '{layer.name}': weight rows (output channels) {_channels(dead)} are negligible "
                f"(largest |w| {absmax[dead].max():.3g} against {absmax.max():.3g} in the layer): "
                "quantized to zeros, their bias kept"))
    return np.where(dead[:, None], np.float32(0), weights)


def _quantize_weights(layer: Layer, weights: np.ndarray, original: np.ndarray, bias, config: LayerConfig,
                      post_scale: np.ndarray, emit: Listener, progress: Optional[LayerProgress]):
    """int8 weights, scale, zero point and int32 bias of a layer whose weights are (out, ...)
    and already multiplied by the input scale; `post_scale` multiplies the weight scale after
    quantization (depthwise convolutions). A bias that does not fit int32 at its weight scale
    saturates at +-(2**31 - 1), with a warning naming the layer and channels."""
    method = weight_method(config.weight_method)
    if not config.per_tensor:
        weights = _without_dead_rows(layer, weights, original.reshape(weights.shape[0], -1), emit)
    rows = _weight_rows(weights, config.per_tensor)
    q, scale, zero_point = (method.quantize(rows, config.bits, progress) if progress and method.reports_progress
                            else method.quantize(rows, config.bits))
    scale = (scale * post_scale).astype(np.float32)
    zeros = np.zeros(weights.shape[0], np.float32)
    scale = _zero_rows_kept(scale, zeros if bias is None else bias)
    resource = {"zero_point": _flat(zero_point.astype(np.int8)), "scale": _flat(scale)}
    if bias is not None:
        steps = round_half_away(bias.astype(np.float64) / np.broadcast_to(scale, bias.shape))
        over = np.abs(steps) > INT32_MAX
        if over.any():
            emit(Notice(f"layer '{layer.name}': the bias of output channels {_channels(over)} does not fit "
                        "int32 at its weight scale; saturated at +-(2**31 - 1)"))
            steps = np.clip(steps, -INT32_MAX, INT32_MAX)
        resource["bias"] = _flat(steps.astype(np.int32))
    return resource, q.reshape(-1)


def _conv(layer: Layer, res: Resource, input_scale: np.ndarray, config: LayerConfig,
          emit: Listener = ignore, progress: Optional[LayerProgress] = None) -> Resource:
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
    resource, q = _quantize_weights(layer, w.reshape(out, -1), weights, bias, config, post, emit, progress)
    resource["filter"] = _flat(q)
    return resource


def _inner_product(layer: Layer, res: Resource, input_scale: np.ndarray, config: LayerConfig,
                   emit: Listener = ignore, progress: Optional[LayerProgress] = None) -> Resource:
    out = layer.params["num_output"]
    original = res["weight"].numpy(np.float32).reshape(out, -1)
    weights = original * input_scale.astype(np.float32).max()
    bias = res["bias"].numpy(np.float32).reshape(-1) if layer.params.get("has_bias") else None
    resource, q = _quantize_weights(layer, weights, original, bias, config, np.float32(1), emit, progress)
    resource["weight"] = _flat(q)
    if bias is None:  # InnerProduct always stores a bias buffer
        resource["bias"] = res["bias"]
    return resource


def _weight_values(resource: Resource) -> int:
    return next((resource[key].data.size for key in ("filter", "weight") if key in resource), 0)


def quantize_layer(layer: Layer, resource: Resource, input_scale: np.ndarray, config: LayerConfig,
                   emit: Listener = ignore, progress: Optional[LayerProgress] = None) -> Resource:
    """The int8 resource of a Convolution or InnerProduct whose input has `input_scale`;
    `progress` hears the share of the weights done, where the weight method tells it."""
    make = _conv if layer.type == "Convolution" else _inner_product
    return make(layer, resource, input_scale, config, emit, progress)


def column_input_scale(layer: Layer, input_scale: np.ndarray, out: int, row: int) -> np.ndarray:
    """(out, row): the input scale that each weight of a filter row stands in front of in TNN's
    int8 layout (the weights, or for depthwise convolutions the weight scale, carry it); one
    value, the largest, for an InnerProduct."""
    s = input_scale.astype(np.float64).reshape(-1)
    if layer.type == "InnerProduct":
        return np.full((out, row), s.max())
    group = max(layer.params["group"], 1)
    kernel = layer.params["kernel_h"] * layer.params["kernel_w"]
    in_per_group = row // kernel
    channel = np.broadcast_to(s, (group * in_per_group,)).reshape(group, 1, in_per_group, 1)
    return np.broadcast_to(channel, (group, out // group, in_per_group, kernel)).reshape(out, row)


def dequantized(layer: Layer, int8: Resource, input_scale: np.ndarray) -> Resource:
    """The float weights and bias that an int8 resource (`quantize_layer`'s) stands for: what
    the layer computes on float inputs, up to the rounding of its output. The weight scale
    holds the input scale (multiplied into the weights, or into the scale for depthwise
    convolutions), so it is divided out per input channel."""
    weight = "filter" if layer.type == "Convolution" else "weight"
    out = layer.params["output_channel" if layer.type == "Convolution" else "num_output"]
    scale = np.broadcast_to(int8["scale"].numpy(np.float32).reshape(-1), (out,)).astype(np.float64)
    zero = np.broadcast_to(int8["zero_point"].numpy().reshape(-1), (out,)).astype(np.float64)
    codes = int8[weight].numpy().reshape(out, -1).astype(np.float64) - zero[:, None]
    per_input = column_input_scale(layer, input_scale, out, codes.shape[1])
    weights = codes * scale[:, None] / np.where(per_input > 0, per_input, 1)
    result = {weight: RawBuffer.from_array(weights.astype(np.float32).reshape(-1), dims=())}
    if "bias" in int8:
        result["bias"] = RawBuffer.from_array((int8["bias"].numpy().reshape(-1) * scale).astype(np.float32), dims=())
    return result


def quantize_net(float_net: Net, plan: Plan, scales: Dict[str, BlobScale], state: QuantState) -> Net:
    """The int8 Net: quantized layers with integer weights, a BlobScale for every blob a
    quantized layer reads or writes; progress in weight values, after each layer and inside
    those whose weight method reports it (ADMM on AlexNet's 38M-value layer takes 19 s)."""
    layers = []
    resources: Dict[str, Resource] = {name: res for name, res in float_net.resources.items()}
    task = "quantizing weights"
    sizes = {name: _weight_values(float_net.resources.get(name, {})) for name in plan.weighted}
    total, done = max(sum(sizes.values()), 1), 0
    for layer in plan.net.layers:
        layer = copy.copy(layer)
        layer.quantized = layer.name in plan.quantized
        layers.append(layer)
        if layer.name not in plan.layers:
            continue
        input_scale = scales[plan.scale_source[layer.inputs[0]]].scale
        if layer.name not in float_net.resources:
            raise TnnFormatError("the model has no weights for this layer", layer=layer.name)
        size = sizes.get(layer.name, 0)
        resources[layer.name] = quantize_layer(
            layer, float_net.resources[layer.name], input_scale, plan.layers[layer.name], state.emit,
            lambda share, before=done, size=size: state.emit(Progress(task, before + int(share * size), total)))
        done += size
        state.emit(Progress(task, done, total))
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
