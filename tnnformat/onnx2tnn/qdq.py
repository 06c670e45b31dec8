"""QDQ models (QuantizeLinear -> DequantizeLinear pairs, onnxruntime's quantize_static and
others): the pairs on computed values come out of the graph, and their scales are kept.

Pairs on constant weights and biases have been folded to float constants by then (onnx's
reference evaluator dequantizes per tensor and per axis); what is left is x -> Q -> DQ -> y,
which becomes y = x with x's scale recorded. The two nodes are turned into Identity, which the
importer's passthrough removal takes out like any other. A pair whose range starts at 0 (zero
point at the lowest code) clamps negatives: there the Q becomes a Relu unless its input is
known non-negative (onnxruntime folds a Conv's ReLU into such a pair; the ReLU must come back,
right after the Conv, where TNN fuses it).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..importer.graph import Graph, Node
from ..importer.scales import INTEGER_RANGES, FileScale, FileScales, file_scale


def weights_per_channel(graph: Graph) -> Optional[bool]:
    """Whether the constant weights' DequantizeLinear nodes are per axis; None if there are none."""
    found = None
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear" and not node.domain and node.inputs[0] in graph.constants:
            value = graph.constants[node.inputs[0]]
            scale = graph.const(node.inputs[1])
            if value.dtype != np.int32 and scale is not None:
                found = bool(found) or scale.size > 1
    return found


def _along(value: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-tensor (size 1) or per-axis parameter shaped to broadcast against rank `rank`."""
    if value.size == 1:
        return value.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return value.reshape(shape)


def evaluate(graph: Graph, node: Node) -> Optional[List[np.ndarray]]:
    """DequantizeLinear / QuantizeLinear of constants in numpy (onnx's reference evaluator has
    them only from opset 19), else None."""
    if node.op_type not in ("DequantizeLinear", "QuantizeLinear") or node.domain:
        return None
    present = [name for name in node.inputs if name]
    if not all(name in graph.constants for name in present):
        return None
    x = graph.constants[node.inputs[0]]
    axis = int(node.attr("axis", 1))
    scale = _along(graph.constants[node.inputs[1]].astype(np.float64), x.ndim, axis)
    zero_value = graph.const(node.inputs[2]) if len(node.inputs) > 2 else None
    zero = (_along(zero_value.astype(np.float64), x.ndim, axis) if zero_value is not None else 0.0)
    if node.op_type == "DequantizeLinear":
        return [((x.astype(np.float64) - zero) * scale).astype(np.float32)]
    dtype = zero_value.dtype if zero_value is not None else np.dtype(np.uint8)
    low, high = INTEGER_RANGES[np.dtype(dtype).name]
    codes = np.clip(np.rint(x.astype(np.float64) / scale) + zero, low, high)  # rint: half to even
    return [codes.astype(dtype)]


def _scale(graph: Graph, node: Node) -> Optional[FileScale]:
    scale = graph.const(node.inputs[1])
    zero = graph.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if scale is None:
        return None
    dtype = zero.dtype if zero is not None else np.uint8
    return file_scale(scale, zero if zero is not None else 0, dtype)


#: Ops whose output is never negative, and ops that keep their inputs' signs.
NON_NEGATIVE = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "HardSigmoid"}
SIGN_KEEPING = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Concat",
                "Identity", "Dropout", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}


def _non_negative(graph: Graph, name: str) -> bool:
    """Whether `name` is known to be >= 0 from the ops that make it (no ReLU needed then)."""
    producer = graph.producers().get(name)
    if producer is None or producer.domain:
        return False
    if producer.op_type in NON_NEGATIVE:
        return True
    return producer.op_type in SIGN_KEEPING and all(
        _non_negative(graph, n) for n in producer.inputs[:1 if producer.op_type != "Concat" else None] if n)


def _follow_producer(graph: Graph, node: Node) -> None:
    """Move `node` right after the producer of its input, where TNN fuses an activation into
    a convolution (only an activation that directly follows it is fused)."""
    producer = graph.producers().get(node.inputs[0])
    if producer is None:
        return
    graph.nodes.remove(node)
    graph.nodes.insert(graph.nodes.index(producer) + 1, node)


def strip(graph: Graph) -> FileScales:
    """Take out every Q -> DQ pair on a computed value (a Q read by DQs only); returns each
    value's scale, under the names before and after the pair."""
    scales: Dict[str, FileScale] = {}
    for q in list(graph.nodes):
        if q.op_type != "QuantizeLinear" or q.domain or q.inputs[0] in graph.constants:
            continue
        readers = [n for n in graph.nodes if q.outputs[0] in n.inputs]
        found = _scale(graph, q)
        if (found is None or not readers or q.outputs[0] in graph.outputs
                or any(n.op_type != "DequantizeLinear" or n.domain or n.inputs[0] != q.outputs[0]
                       or _scale(graph, n) is None for n in readers)):
            continue
        scales[q.inputs[0]] = found
        for node in [q] + readers:
            scales[node.outputs[0]] = found
            node.op_type, node.inputs, node.attrs = "Identity", node.inputs[:1], {}
        if np.all(found.zero_point == found.qmin) and not _non_negative(graph, q.inputs[0]):
            q.op_type = "Relu"
            _follow_producer(graph, q)
    return scales
