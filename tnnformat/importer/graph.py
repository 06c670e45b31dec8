"""The graph under construction: plain nodes, numpy constants and static shapes.

Front ends fill it from their files; folding and fusions rewrite this small structure, so each
pass reads like the graph rewrite it is, and the source model is never touched. Op types are
the front end's own (the fusions match ONNX's names, which onnx2tnn's graphs carry).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ConversionError

Shape = Tuple[int, ...]

#: Domain of the nodes our fusions make for TNN layers the source format has no op for.
TNN_DOMAIN = "tnn"


@dataclass
class Node:
    """One source node; `attrs` holds python values (tensors as numpy arrays)."""

    op_type: str
    name: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    proto: Any = None  # the front end's original node (onnx2tnn folds constants with it)
    index: Optional[int] = None  # position in the source file, where errors name it so

    @property
    def label(self) -> str:
        """The name TNN's converter gives the layer: the node's name, else its first output."""
        return self.name or self.outputs[0]

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


@dataclass
class Graph:
    opset: int
    nodes: List[Node]
    constants: Dict[str, np.ndarray]
    inputs: Dict[str, Shape]  # real (non-constant) graph inputs with their static shapes
    input_types: Dict[str, int]  # the front end's element type code of each input
    outputs: List[str]
    shapes: Dict[str, Shape] = field(default_factory=dict)
    types: Dict[str, int] = field(default_factory=dict)  # element type code of every known value

    def uses(self, name: str) -> int:
        """How many node inputs and graph outputs read `name`."""
        return sum(node.inputs.count(name) for node in self.nodes) + self.outputs.count(name)

    def rename(self, old: str, new: str) -> None:
        """Every reader of `old` reads `new` instead."""
        for node in self.nodes:
            node.inputs = [new if name == old else name for name in node.inputs]

    def const(self, name: str) -> Optional[np.ndarray]:
        return self.constants.get(name) if name else None

    def where(self, node: Node) -> str:
        """How an error names a node: by its index when the file numbers its operators."""
        if node.index is not None:
            return f"operator {node.index} ({node.op_type}, output '{node.outputs[0]}')"
        return f"node '{node.label}' ({node.op_type}, opset {self.opset})"

    def fail(self, node: Node, message: str) -> ConversionError:
        """The error for one node: which node and its op type, then why."""
        return ConversionError(f"{self.where(node)}: {message}")

    # ---- what rewrites ask ---------------------------------------------------------------
    def producers(self) -> Dict[str, Node]:
        return {name: node for node in self.nodes for name in node.outputs if name}

    def only_reader(self, name: str) -> bool:
        """`name` is read once and is not a graph output, so its producer may be dropped."""
        return self.uses(name) == 1 and name not in self.outputs

    def replace(self, old: List[Node], new: Node) -> None:
        """Put `new` where the last of `old` was, and drop all of `old`."""
        self.nodes[self.nodes.index(old[-1])] = new
        for node in old[:-1]:
            self.nodes.remove(node)

    def scalar(self, name: str) -> Optional[float]:
        """The value of a one-element constant, else None."""
        value = self.const(name)
        if value is None or value.size != 1:
            return None
        return float(np.asarray(value).reshape(-1)[0])
