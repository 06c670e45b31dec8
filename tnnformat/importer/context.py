"""What an op converter sees: the graph's constants and shapes, and a way to emit TNN layers.

Converters speak the source's value names; the context maps them to TNN blob names (TNN forbids
spaces, commas, colons and quotes in names), keeps layer names unique, and emits a Const
layer the first time a layer reads a constant that no layer param or resource absorbs.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

from ..layer_types import spec
from ..net import Layer, RawBuffer, Resource
from ..params import default_params
from .errors import ConversionError
from .graph import Graph, Node, Shape

_FORBIDDEN = re.compile(r'[\s,":]')


def storable(value: np.ndarray) -> np.ndarray:
    """`value` in a type TNN stores: float32 for floats, int32 for integers and booleans."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32, copy=False)
    return value.astype(np.int32)


def buffer(value: np.ndarray) -> RawBuffer:
    return RawBuffer.from_array(storable(value))


class Context:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.layers: List[Layer] = []
        self.resources: Dict[str, Resource] = {}
        self.node: Optional[Node] = None
        self._blobs: Dict[str, str] = {}
        self._taken_blobs: Set[str] = {name for name in self._all_values() if name == _clean(name)}
        self._layer_names: Set[str] = set()
        self._const_layers: Set[str] = set()
        self._fresh = 0

    def _all_values(self) -> Set[str]:
        names = set(self.graph.inputs) | set(self.graph.constants) | set(self.graph.outputs)
        for node in self.graph.nodes:
            names.update(node.inputs)
            names.update(node.outputs)
        names.discard("")
        return names

    # ---- what converters read ------------------------------------------------------------
    def fail(self, message: str) -> ConversionError:
        """The error for the node being converted."""
        assert self.node is not None
        return self.graph.fail(self.node, message)

    def const(self, name: str) -> Optional[np.ndarray]:
        return self.graph.const(name)

    def need_const(self, name: str, what: str) -> np.ndarray:
        value = self.const(name)
        if value is None:
            raise self.fail(f"{what} must be a constant (it is computed at run time here)")
        return value

    def shape(self, name: str) -> Shape:
        shape = self.graph.shapes.get(name)
        if shape is None:
            raise self.fail(f"the shape of '{name}' is not static at the given input shapes")
        return shape

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def axis(self, axis: int, rank: int) -> int:
        """A non-negative axis: TNN accepts negative axes in some layers only."""
        if not -rank <= axis < rank:
            raise self.fail(f"axis {axis} is out of range for rank {rank}")
        return axis + rank if axis < 0 else axis

    # ---- names ------------------------------------------------------------------------------
    def blob(self, name: str) -> str:
        """The TNN blob of source value `name`; a constant gets its Const layer here."""
        if name in self.graph.constants and name not in self._const_layers:
            self._const_layers.add(name)
            value = self.graph.constants[name]
            self.emit("Const", [], [name], {"dims": [int(d) for d in value.shape]},
                      {"weight": buffer(value)}, name=name)
        if name not in self._blobs:
            self._blobs[name] = self._unique(_clean(name), name)
        return self._blobs[name]

    def _unique(self, candidate: str, original: str) -> str:
        taken = self._taken_blobs - ({original} if candidate == original else set())
        name, suffix = candidate, 0
        while name in taken or name in self._blobs.values():
            suffix += 1
            name = f"{candidate}_{suffix}"
        self._taken_blobs.add(name)
        return name

    def blob_names(self) -> Dict[str, str]:
        """Source value name -> TNN blob name, for every value named so far."""
        return dict(self._blobs)

    def reads(self, name: str) -> bool:
        """Whether some emitted layer reads source value `name`."""
        blob = self._blobs.get(name)
        return blob is not None and any(blob in layer.inputs for layer in self.layers)

    def new_value(self, hint: str, shape: Shape) -> str:
        """A fresh source-level name for an intermediate result a converter introduces."""
        self._fresh += 1
        name = f"{hint}__{self._fresh}"
        self.graph.shapes[name] = tuple(shape)
        return name

    def _layer_name(self, wanted: str) -> str:
        base = _clean(wanted)
        name, suffix = base, 0
        while name in self._layer_names:
            suffix += 1
            name = f"{base}_{suffix}"
        self._layer_names.add(name)
        return name

    # ---- emitting -----------------------------------------------------------------------------
    def emit(self, type_name: str, inputs: Sequence[str], outputs: Sequence[str],
             params: Optional[dict] = None, resource: Optional[Resource] = None,
             name: Optional[str] = None) -> Layer:
        """Append a TNN layer; unset params take their declared defaults."""
        layer_spec = spec(type_name)
        assert layer_spec is not None, type_name
        if name is None:
            assert self.node is not None
            name = self.node.label
        layer = Layer(type_name, self._layer_name(name), [self.blob(n) for n in inputs],
                      [self.blob(n) for n in outputs],
                      default_params(layer_spec.params, **(params or {})))
        self.layers.append(layer)
        if resource is not None:
            self.resources[layer.name] = resource
        return layer


def _clean(name: str) -> str:
    return _FORBIDDEN.sub("_", name) or "blob"
