"""Graph rewrites before conversion, as TNN's converter makes them.

- Identity, Dropout (inference) and one-operand Sum/Max/Min disappear: readers read the input.
- A BatchNormalization right after a Conv or ConvTranspose is folded into its weights.
- `clip(x + 3, 0, 6) / 6` becomes HardSigmoid, and `x * hardsigmoid(x)` or
  `x * clip(x + 3, 0, 6) / 6` becomes HardSwish (MobileNetV3 exports before opset 14).
- Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4) -> Reshape(N, C, H, W) becomes
  TNN's ShuffleChannel (ShuffleNet's channel shuffle).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..layer_types import FLT_MAX
from .graph import TNN_DOMAIN, Graph, Node


def _close(value: Optional[float], expected: float) -> bool:
    return value is not None and abs(value - expected) <= 1e-6 * max(1.0, abs(expected))


def clip_bounds(node: Node, const: Callable[[str], Optional[np.ndarray]]) -> Optional[Tuple[float, float]]:
    """(min, max) of a Clip node, from attributes (opset < 11) or constant inputs; None if computed."""
    if "min" in node.attrs or "max" in node.attrs or len(node.inputs) == 1:
        return float(node.attr("min", -FLT_MAX)), float(node.attr("max", FLT_MAX))
    bounds = []
    for index, default in ((1, -FLT_MAX), (2, FLT_MAX)):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if not name:
            bounds.append(default)
            continue
        value = const(name)
        if value is None:
            return None
        bounds.append(float(np.asarray(value).reshape(-1)[0]))
    return bounds[0], bounds[1]


def bn_scale_bias(node: Node, const: Callable[[str], Optional[np.ndarray]]
                  ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The per-channel (scale, bias) of a BatchNormalization, None if a parameter is computed.

    Computed in float64 like TNN's converter: scale = gamma / sqrt(var + eps),
    bias = beta - mean * scale.
    """
    values = [const(name) for name in node.inputs[1:5]]
    if any(v is None for v in values):
        return None
    gamma, beta, mean, var = (np.asarray(v, np.float64).reshape(-1) for v in values)
    scale = gamma / np.sqrt(var + float(node.attr("epsilon", 1e-5)))
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def inference_only(node: Node) -> Optional[str]:
    """Why a BatchNormalization is not a fixed per-channel affine map, or None."""
    if node.attr("training_mode", 0):
        return "training_mode=1 is not supported"
    if not node.attr("spatial", 1):
        return "spatial=0 is not supported"
    if any(node.outputs[1:]):
        return "the running mean and variance outputs are not supported"
    return None



def _is_passthrough(graph: Graph, node: Node) -> bool:
    if node.domain:
        return False
    if node.op_type == "Identity":
        return True
    if node.op_type == "Dropout":  # inference: the data passes, the mask must be unused
        return all(not name or not graph.uses(name) for name in node.outputs[1:])
    return node.op_type in ("Sum", "Max", "Min") and len([i for i in node.inputs if i]) == 1


def remove_passthrough(graph: Graph) -> int:
    """Drop nodes that copy their input; returns how many."""
    removed = 0
    for node in list(graph.nodes):
        if not _is_passthrough(graph, node):
            continue
        source, out = node.inputs[0], node.outputs[0]
        graph.nodes.remove(node)
        removed += 1
        if out not in graph.outputs:
            graph.rename(out, source)
            continue
        if source in graph.constants:
            graph.constants[out] = graph.constants[source]
        elif source in graph.inputs or source in graph.outputs:
            raise graph.fail(node, f"the output '{out}' would be '{source}' unchanged, and TNN needs a "
                             "layer between an input and an output")
        else:  # the producer writes the graph output's name directly
            producer = graph.producers()[source]
            producer.outputs = [out if name == source else name for name in producer.outputs]
            graph.rename(source, out)
            graph.shapes[out] = graph.shapes.get(source, graph.shapes.get(out))
    return removed


def fold_batchnorm(graph: Graph) -> int:
    """Fold each BatchNormalization into the Conv/ConvTranspose that alone feeds it."""
    folded = 0
    producers = graph.producers()
    for bn in list(graph.nodes):
        if bn.op_type != "BatchNormalization" or bn.domain:
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or not graph.only_reader(bn.inputs[0]):
            continue
        weight = graph.const(conv.inputs[1])
        bias_name = conv.inputs[2] if len(conv.inputs) > 2 else ""
        bias = graph.const(bias_name) if bias_name else np.zeros(1, np.float32)
        scale_bias = None if inference_only(bn) else bn_scale_bias(bn, graph.const)
        if weight is None or bias is None or scale_bias is None:
            continue
        scale, shift = scale_bias
        group = int(conv.attr("group", 1))
        if conv.op_type == "Conv":
            new_weight = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
        else:  # (C_in, C_out / group, kh, kw): output channels are on axis 1, per group
            per_group = weight.reshape(group, weight.shape[0] // group, *weight.shape[1:])
            new_weight = (per_group * scale.reshape(group, 1, -1, *[1] * (weight.ndim - 2))
                          ).reshape(weight.shape)
        new_bias = (bias * scale + shift).astype(np.float32)
        prefix = f"{conv.label}__bn_folded"
        graph.constants[prefix + "_w"] = new_weight.astype(np.float32)
        graph.constants[prefix + "_b"] = new_bias
        conv.inputs = [conv.inputs[0], prefix + "_w", prefix + "_b"]
        conv.outputs = [bn.outputs[0]]
        graph.nodes.remove(bn)
        folded += 1
    return folded


def _div_by_six(graph: Graph, node: Node) -> Optional[str]:
    """The other operand of `x / 6` or `x * (1/6)`, else None."""
    if node.domain or node.op_type not in ("Div", "Mul") or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if node.op_type == "Div":
        return a if _close(graph.scalar(b), 6.0) else None
    for data, factor in ((a, b), (b, a)):
        if _close(graph.scalar(factor), 1 / 6):
            return data
    return None


def _relu6_of_x_plus_3(graph: Graph, producers: Dict[str, Node], name: str) -> Optional[List]:
    """[x, add, clip] if `name` is clip(x + 3, 0, 6) read only once, else None."""
    clip = producers.get(name)
    if clip is None or clip.op_type != "Clip" or clip.domain or not graph.only_reader(name):
        return None
    if clip_bounds(clip, graph.const) != (0.0, 6.0):
        return None
    add = producers.get(clip.inputs[0])
    if add is None or add.op_type != "Add" or add.domain or not graph.only_reader(clip.inputs[0]):
        return None
    for x, three in (add.inputs, add.inputs[::-1]):
        if _close(graph.scalar(three), 3.0):
            return [x, add, clip]
    return None


def _hard(op: str, x: str, last: Node, alpha: float = 1 / 6, beta: float = 0.5) -> Node:
    domain = TNN_DOMAIN if op == "HardSwish" else ""
    return Node(op, last.name, [x], last.outputs[:1], {"alpha": alpha, "beta": beta}, domain)


def fuse_hard_activations(graph: Graph) -> int:
    fused = 0
    for node in list(graph.nodes):
        if node not in graph.nodes:
            continue
        producers = graph.producers()
        scaled = _div_by_six(graph, node)
        if scaled is None:
            continue
        chain = _relu6_of_x_plus_3(graph, producers, scaled)
        if chain is not None:  # clip(x + 3, 0, 6) / 6
            x, add, clip = chain
            graph.replace([add, clip, node], _hard("HardSigmoid", x, node))
            fused += 1
            continue
        mul = producers.get(scaled)  # x * clip(x + 3, 0, 6) / 6
        if mul is None or mul.op_type != "Mul" or mul.domain or not graph.only_reader(scaled):
            continue
        for x, other in (mul.inputs, mul.inputs[::-1]):
            chain = _relu6_of_x_plus_3(graph, producers, other)
            if chain is not None and chain[0] == x:
                graph.replace([chain[1], chain[2], mul, node], _hard("HardSwish", x, node))
                fused += 1
                break
    for node in list(graph.nodes):  # x * hardsigmoid(x)
        if node.op_type != "Mul" or node.domain or len(node.inputs) != 2:
            continue
        producers = graph.producers()
        for x, other in (node.inputs, node.inputs[::-1]):
            sigmoid = producers.get(other)
            if (sigmoid is not None and sigmoid.op_type == "HardSigmoid" and not sigmoid.domain
                    and sigmoid.inputs[0] == x and graph.only_reader(other)):
                alpha, beta = sigmoid.attr("alpha", 0.2), sigmoid.attr("beta", 0.5)
                graph.replace([sigmoid, node], _hard("HardSwish", x, node, alpha, beta))
                fused += 1
                break
    return fused


def fuse_shuffle_channel(graph: Graph) -> int:
    fused = 0
    for last in list(graph.nodes):
        if last.op_type != "Reshape" or last.domain:
            continue
        producers = graph.producers()
        transpose = producers.get(last.inputs[0])
        if (transpose is None or transpose.op_type != "Transpose" or transpose.domain
                or list(transpose.attr("perm", [])) != [0, 2, 1, 3, 4]
                or not graph.only_reader(last.inputs[0])):
            continue
        first = producers.get(transpose.inputs[0])
        if first is None or first.op_type != "Reshape" or not graph.only_reader(transpose.inputs[0]):
            continue
        source = first.inputs[0]
        shape, grouped = graph.shapes.get(source), graph.shapes.get(first.outputs[0])
        if shape is None or grouped is None or len(shape) != 4 or len(grouped) != 5:
            continue
        n, c, h, w = shape
        group = grouped[1]
        if grouped != (n, group, c // group, h, w) or graph.shapes.get(last.outputs[0]) != shape:
            continue
        graph.replace([first, transpose, last],
                 Node("ShuffleChannel", last.name, [source], last.outputs, {"group": group}, TNN_DOMAIN))
        fused += 1
    return fused


#: The rewrites in the order they run; each returns how many places it changed.
FUSIONS: List[Callable[[Graph], int]] = [
    remove_passthrough, fold_batchnorm, fuse_hard_activations, fuse_shuffle_channel]


def apply(graph: Graph) -> int:
    return sum(fusion(graph) for fusion in FUSIONS)
