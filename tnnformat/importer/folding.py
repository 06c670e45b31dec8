"""Constant folding on the graph under construction, whatever evaluates the nodes.

With every input at a fixed shape, whole subgraphs are constant. A front end supplies how one
node is evaluated (onnx2tnn: onnx's reference implementation at the model's opset); a pass
here stores the outputs of every node whose inputs are known, and `drop_unused` removes what
no output needs, so TNN is left only layers that compute on data.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np

from .build import Progress
from .graph import Graph, Node

#: The outputs of a node if they are known now (its inputs are constants), else None.
Evaluate = Callable[[Graph, Node], Optional[List[np.ndarray]]]


def fold_pass(graph: Graph, evaluate: Evaluate, progress: Optional[Progress] = None) -> int:
    """Replace every node `evaluate` can compute by constants; returns how many."""
    folded, kept = 0, []
    total = len(graph.nodes)
    for index, node in enumerate(graph.nodes):
        if progress:
            progress("folding constants", index + 1, total)
        values = evaluate(graph, node)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.outputs, values):
            if name:
                graph.constants[name] = value
        folded += 1
    graph.nodes = kept
    return folded


def drop_unused(graph: Graph) -> None:
    """Remove nodes no output depends on, and constants nothing reads."""
    needed = set(graph.outputs)
    kept: List[Node] = []
    for node in reversed(graph.nodes):
        if any(name in needed for name in node.outputs):
            kept.append(node)
            needed.update(name for name in node.inputs if name)
    graph.nodes = kept[::-1]
    graph.constants = {k: v for k, v in graph.constants.items() if k in needed}
