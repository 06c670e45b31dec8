"""Cross-layer equalization (AIMET's CLE; Nagel et al., "Data-Free Quantization Through
Weight Equalization and Bias Correction", 2019): rescale channels between two convolutions
so that per-channel weight ranges meet, leaving the float model's outputs unchanged.

For a convolution whose output reaches other convolutions only through a ReLU or nothing
(ReLU(s x) = s ReLU(x) for s > 0), channel i of the first's weights and bias is divided by s_i
and input channel i of every consumer multiplied by s_i, with s_i = sqrt(r1_i / r2_i): r1_i the
range of the first's output channel i, r2_i that of input channel i over all consumers. Both
ranges become sqrt(r1_i r2_i). A depthwise convolution may be the first of a pair (its channel
i is its output i); as a consumer it would need the next layer too, so it is left out, and so
are ReLU6 (not scale-invariant), groups, and blobs that other layers read. Pairs are
equalized in layer order, repeated a few rounds so that chains settle (the paper iterates).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import numpy as np

from kernels.tnn_optimizer import RELU
from tnnformat import Layer, Net, RawBuffer

from .events import Notice
from .pipeline import FLOAT_MODEL, Pass, QuantState

ROUNDS = 4
#: Channels whose ranges are below this are left alone (dead channels would blow up).
TINY = 1e-8


def _readers(net: Net) -> Dict[str, List[Layer]]:
    readers: Dict[str, List[Layer]] = {}
    for layer in net.layers:
        for blob in layer.inputs:
            readers.setdefault(blob, []).append(layer)
    return readers


def _depthwise(layer: Layer, net: Net) -> bool:
    p = layer.params
    filt = net.resources.get(layer.name, {}).get("filter")
    return (p["group"] > 1 and p["group"] == p["output_channel"] and filt is not None
            and filt.numpy().size == p["output_channel"] * p["kernel_h"] * p["kernel_w"])


def pairs(net: Net) -> List[Tuple[Layer, List[Layer]]]:
    """(first convolution, its consumer convolutions) that can be equalized, in layer order.
    `net` is the runtime graph, where a following ReLU is the convolution's activation_type."""
    readers = _readers(net)
    found = []
    for layer in net.layers:
        if layer.type != "Convolution" or layer.params.get("activation_type", 0) not in (0, RELU):
            continue
        if layer.name not in net.resources or (layer.params["group"] != 1 and not _depthwise(layer, net)):
            continue
        consumers = readers.get(layer.outputs[0], [])
        if consumers and layer.outputs[0] not in net.outputs and all(
                c.type == "Convolution" and c.params["group"] == 1 and c.inputs[0] == layer.outputs[0]
                for c in consumers):
            found.append((layer, consumers))
    return found


def _filter(resources, layer: Layer) -> np.ndarray:
    p = layer.params
    w = resources[layer.name]["filter"].numpy(np.float32)
    return w.reshape(p["output_channel"], -1, p["kernel_h"], p["kernel_w"])


def equalize(net: Net, rounds: int = ROUNDS) -> Tuple[Net, int]:
    """A copy of `net` (new resources; the input is untouched) with every pair equalized, and
    the number of pairs."""
    out = copy.copy(net)
    out.resources = dict(net.resources)
    found = pairs(net)
    for _ in range(rounds):
        for first, consumers in found:
            w1 = _filter(out.resources, first)
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            w2s = [_filter(out.resources, c) for c in consumers]
            r2 = np.max([np.abs(w).transpose(1, 0, 2, 3).reshape(w.shape[1], -1).max(axis=1) for w in w2s], axis=0)
            usable = (r1 > TINY) & (r2 > TINY)
            s = np.where(usable, np.sqrt(np.where(usable, r1 / np.where(r2 > 0, r2, 1), 1)), 1).astype(np.float32)
            resource = dict(out.resources[first.name])
            resource["filter"] = RawBuffer.from_array((w1 / s[:, None, None, None]).reshape(
                resource["filter"].numpy().shape).astype(np.float32), dims=resource["filter"].dims)
            if first.params.get("bias") and "bias" in resource:
                resource["bias"] = RawBuffer.from_array((resource["bias"].numpy(np.float32).reshape(-1) / s).astype(
                    np.float32), dims=resource["bias"].dims)
            out.resources[first.name] = resource
            for consumer, w2 in zip(consumers, w2s):
                r = dict(out.resources[consumer.name])
                r["filter"] = RawBuffer.from_array((w2 * s[None, :, None, None]).reshape(
                    r["filter"].numpy().shape).astype(np.float32), dims=r["filter"].dims)
                out.resources[consumer.name] = r
    return out, len(found)


class CrossLayerEqualization(Pass):
    """Before calibration: equalize the float model's convolution pairs (data-free)."""

    name = "cross-layer equalization"
    stage = FLOAT_MODEL

    def apply(self, state: QuantState) -> None:
        equalized, count = equalize(state.plan.net)
        state.plan.net = equalized
        state.float_net = copy.copy(state.float_net)
        state.float_net.resources = equalized.resources
        if count == 0:
            state.emit(Notice("cross-layer equalization found no convolution pairs to rescale"))
