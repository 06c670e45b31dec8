"""The graph rewrites TNN applies when it loads a model on its CPU reference device.

TNN's quantization tool calibrates, and its runtime executes, the graph *after* these
rewrites (source/tnn/optimizer/net_optimizer_fuse_conv_post.cc), so to compute what TNN
computes we apply them too. Only the rewrite that is active on the NAIVE device for float
models is here: an activation that directly follows a convolution in the layer list is fused
into it; and, for quantized models, the fusion of an Add into the 1x1 convolution before it.
"""
from __future__ import annotations

import copy
from typing import Dict, List

from tnnformat import Layer, Net
from tnnformat.layer_types import RELU, RELU6, SIGMOID_MUL

#: TNN's ActivationType for each fusable activation layer.
ACTIVATION_TYPES: Dict[str, int] = {"ReLU": RELU, "Relu": RELU, "ReLU6": RELU6, "Relu6": RELU6,
                                     "Sigmoid": SIGMOID_MUL, "Swish": SIGMOID_MUL}
CONV_TYPES = ("Convolution", "Deconvolution")


def _used_after(layers: List[Layer], start: int, blob: str) -> bool:
    return any(blob in layer.inputs for layer in layers[start:])


def fuse_conv_activation(net: Net) -> Net:
    """A copy of `net` where each activation that immediately follows a convolution (in layer
    order) and is the only user of its output becomes the convolution's `activation_type`.

    As in TNN: Sigmoid fuses only as `x * sigmoid(x)` (Sigmoid then Mul of the conv output and
    the sigmoid output); a quantized convolution takes only ReLU and ReLU6; a convolution
    that already has an activation is left alone. The convolution takes over the activation's
    output blob, so later layers and scales see the same names. Also as in TNN (a bug there):
    a Sigmoid+Mul pair that matches but does not fuse (a quantized convolution, or a conv
    output with other readers) keeps only its Mul, so the Sigmoid's output is never made.
    Writers avoid the pattern (quantization_cmd.plan swaps the Mul's operands).
    """
    layers = net.layers
    fused: List[Layer] = [layers[0]] if layers else []
    index = 1
    while index < len(layers):
        current, previous = layers[index], layers[index - 1]
        kind = ACTIVATION_TYPES.get(current.type)
        if previous.type not in CONV_TYPES or kind is None or len(previous.outputs) != 1:
            fused.append(current)
            index += 1
            continue
        conv_out = previous.outputs[0]
        absorbed = [current]
        if current.type == "Sigmoid":
            after = layers[index + 1] if index + 1 < len(layers) else None
            if not (after is not None and after.type == "Mul"
                    and after.inputs == [conv_out, current.outputs[0]]):
                fused.append(current)
                index += 1
                continue
            absorbed.append(after)
        end = index + len(absorbed)
        allowed = not previous.quantized or kind in (RELU, RELU6)
        if (current.inputs == [conv_out] and previous.params.get("activation_type", 0) == 0
                and allowed and not _used_after(layers, end, conv_out)):
            conv = copy.copy(fused[-1])
            conv.params = dict(conv.params, activation_type=kind)
            conv.outputs = list(absorbed[-1].outputs)
            fused[-1] = conv
        elif current.type == "Sigmoid":
            fused.append(absorbed[-1])  # TNN drops the Sigmoid it stepped over
        else:
            fused.extend(absorbed)
        index = end
    out = copy.copy(net)
    out.layers = fused
    return out


#: TNN's FusionType: where an Add fused into a quantized convolution sits relative to its activation.
CONV_ADD_ACTIVATION, CONV_ACTIVATION_ADD = 1, 2


def _fusable_pointwise(conv: Layer) -> bool:
    p = conv.params
    return (conv.type == "Convolution" and conv.quantized and p["group"] == 1 and p["kernel_h"] == 1
            and p["kernel_w"] == 1 and p["stride_h"] == 1 and p["stride_w"] == 1 and p["pad_h"] == 0
            and p["pad_w"] == 0)


def fuse_conv_add(net: Net) -> Net:
    """TNN's runtime rewrite for quantized models (net_optimizer_fuse_conv_add.cc): a quantized
    1x1 convolution directly followed by a quantized Add of its output (which nothing else
    reads) absorbs the Add: the other operand becomes the convolution's second input and is
    added before requantizing to the Add's output scale. Activations are fused before and after,
    as TNN does. A runtime-only graph: the fusion is in `params["fusion_type"]`."""
    if not any(layer.quantized for layer in net.layers):
        return net
    net = fuse_conv_activation(net)
    layers = net.layers
    fused: List[Layer] = [layers[0]] if layers else []
    for index in range(1, len(layers)):
        current, previous = layers[index], layers[index - 1]
        conv_out = previous.outputs[0] if previous.outputs else None
        if (_fusable_pointwise(previous) and current.type == "Add" and current.quantized
                and conv_out in current.inputs and len(current.inputs) == 2
                and not _used_after(layers, index + 1, conv_out) and fused[-1] is previous):
            conv = copy.copy(previous)
            other = [b for b in current.inputs if b != conv_out]
            conv.inputs = previous.inputs + other
            conv.outputs = list(current.outputs)
            kind = CONV_ADD_ACTIVATION if previous.params["activation_type"] == 0 else CONV_ACTIVATION_ADD
            conv.params = dict(previous.params, fusion_type=kind)
            fused[-1] = conv
        else:
            fused.append(current)
    out = copy.copy(net)
    out.layers = fused
    return fuse_conv_activation(out)


def runtime_graph(net: Net) -> Net:
    """The graph TNN's runtime executes (and its quantization tool calibrates): `net` after all
    the load-time fusions above. For a float net that is the activation fusion alone."""
    return fuse_conv_add(fuse_conv_activation(net))
