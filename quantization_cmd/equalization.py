"""Cross-layer equalization (AIMET's CLE; Nagel et al., "Data-Free Quantization Through
Weight Equalization and Bias Correction", 2019): rescale channels between convolutions so that
per-channel weight ranges meet, leaving the float model's outputs unchanged.

Channel i of a convolution's weights and bias is divided by s_i > 0 and input channel i of every
convolution its output reaches multiplied by s_i, with s_i = sqrt(r1_i / r2_i): r1_i the range
of the first's output channel i, r2_i that of input channel i over all those consumers. Both
ranges become sqrt(r1_i r2_i). The output may reach the consumers through any layers that carry
a channel scale unchanged, f(x / s) = f(x) / s channel by channel: a fused or standalone ReLU,
max or average pooling, and a Mul whose other operand does not carry the scale. That admits a
squeeze-excitation block (global pooling -> convolution ... -> Mul of the gate with the
block's input): its first convolution is a consumer, so the gate is unchanged. A depthwise
convolution may be either end: as a consumer its input channel i is its filter i. ReLU6,
HardSwish, Add, Concat and the model's outputs stop a pair (not scale-invariant or shared).
Pairs are equalized in layer order, round after round until no scale moves by more than
SETTLED (chains such as 1x1 -> depthwise -> 1x1 take a few dozen), as the paper iterates.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import numpy as np

from kernels.tnn_optimizer import RELU
from tnnformat import Layer, Net, RawBuffer

from .events import Notice
from .pipeline import FLOAT_MODEL, Pass, QuantState

#: At most this many rounds over the pairs; a round whose scales all lie within 1 +- SETTLED ends it.
ROUNDS = 100
SETTLED = 1e-4
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


def _carries_scale(layer: Layer, net: Net) -> bool:
    """Whether `layer` maps an input scaled by 1/s per channel to its output scaled the same way
    (a Mul only if its other operand is not scaled, checked by the caller)."""
    if layer.type == "ReLU" or layer.type == "Pooling" and layer.params.get("pool_type") in (0, 1):
        return len(layer.inputs) == 1
    return layer.type == "Mul" and len(layer.inputs) + (layer.name in net.resources) == 2


def _consumers(net: Net, readers: Dict[str, List[Layer]], blob: str) -> List[Layer]:
    """The convolutions whose input channels carry `blob`'s channel scale, through layers that
    keep it (see the module docstring); [] if the scale would reach anything else."""
    consumers: List[Layer] = []
    muls: List[Layer] = []
    scaled, frontier = {blob}, [blob]
    while frontier:
        current = frontier.pop()
        if current in net.outputs:
            return []
        for reader in readers.get(current, []):
            if reader.type == "Convolution" and reader.inputs[0] == current and len(reader.inputs) == 1 \
                    and reader.name in net.resources and (reader.params["group"] == 1 or _depthwise(reader, net)):
                if reader not in consumers:
                    consumers.append(reader)
            elif _carries_scale(reader, net):
                if reader.type == "Mul":
                    muls.append(reader)
                if reader.outputs[0] not in scaled:
                    scaled.add(reader.outputs[0])
                    frontier.append(reader.outputs[0])
            else:
                return []
    if any(sum(b in scaled for b in mul.inputs) > 1 for mul in muls):
        return []  # both operands scaled: the product carries s squared
    return consumers


def pairs(net: Net) -> List[Tuple[Layer, List[Layer]]]:
    """(first convolution, the convolutions its output reaches) that can be equalized, in layer
    order. `net` is the runtime graph, where a following ReLU is the convolution's
    activation_type."""
    readers = _readers(net)
    found = []
    for layer in net.layers:
        if layer.type != "Convolution" or layer.params.get("activation_type", 0) not in (0, RELU):
            continue
        if layer.name not in net.resources or (layer.params["group"] != 1 and not _depthwise(layer, net)):
            continue
        consumers = _consumers(net, readers, layer.outputs[0])
        if consumers:
            found.append((layer, consumers))
    return found


def _filter(resources, layer: Layer) -> np.ndarray:
    p = layer.params
    w = resources[layer.name]["filter"].numpy(np.float32)
    return w.reshape(p["output_channel"], -1, p["kernel_h"], p["kernel_w"])


def _by_input_channel(w: np.ndarray, depthwise: bool) -> np.ndarray:
    """A consumer's filter as (input channel, ...): a depthwise filter's channel i is its input i."""
    return w if depthwise else w.transpose(1, 0, 2, 3)


def equalize(net: Net, rounds: int = ROUNDS) -> Tuple[Net, int]:
    """A copy of `net` (new resources; the input is untouched) with every pair equalized, and
    the number of pairs."""
    out = copy.copy(net)
    out.resources = dict(net.resources)
    found = pairs(net)
    for _ in range(rounds):
        moved = 0.0
        for first, consumers in found:
            w1 = _filter(out.resources, first)
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            w2s = [_filter(out.resources, c) for c in consumers]
            depthwise = [c.params["group"] != 1 for c in consumers]
            r2 = np.max([np.abs(_by_input_channel(w, d)).reshape(w1.shape[0], -1).max(axis=1)
                         for w, d in zip(w2s, depthwise)], axis=0)
            usable = (r1 > TINY) & (r2 > TINY)
            s = np.where(usable, np.sqrt(np.where(usable, r1 / np.where(r2 > 0, r2, 1), 1)), 1).astype(np.float32)
            moved = max(moved, float(np.abs(s - 1).max(initial=0)))
            resource = dict(out.resources[first.name])
            resource["filter"] = RawBuffer.from_array((w1 / s[:, None, None, None]).reshape(
                resource["filter"].numpy().shape).astype(np.float32), dims=resource["filter"].dims)
            if first.params.get("bias") and "bias" in resource:
                resource["bias"] = RawBuffer.from_array((resource["bias"].numpy(np.float32).reshape(-1) / s).astype(
                    np.float32), dims=resource["bias"].dims)
            out.resources[first.name] = resource
            for consumer, w2, d in zip(consumers, w2s, depthwise):
                r = dict(out.resources[consumer.name])
                r["filter"] = RawBuffer.from_array((w2 * (s[:, None, None, None] if d else s[None, :, None, None])).reshape(
                    r["filter"].numpy().shape).astype(np.float32), dims=r["filter"].dims)
                out.resources[consumer.name] = r
        if moved <= SETTLED:
            break
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
