"""Op converter registries and the assembly of a Net from a converted graph.

A converter reads one node through the Context and emits the TNN layers that compute it. It
lists the attributes (options) it understands; a node carrying any other is refused rather
than converted into something else. Each front end keeps one Registry of its converters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple

from ..net import DataType, Net
from .context import Context
from .errors import ConversionError
from .graph import Graph, Node

ConvertFn = Callable[[Context, Node], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Converter:
    run: ConvertFn
    attrs: FrozenSet[str]


class Registry:
    """(domain, op type) -> converter for one front end; domain "" is the source format's."""

    def __init__(self, tool: str):
        self.tool = tool
        self.converters: Dict[Tuple[str, str], Converter] = {}

    def converts(self, *op_types: str, attrs: Iterable[str] = (),
                 domain: str = "") -> Callable[[ConvertFn], ConvertFn]:
        """Register `fn` as the converter of `op_types`, understanding `attrs`."""
        known = frozenset(attrs)

        def register(fn: ConvertFn) -> ConvertFn:
            for op_type in op_types:
                assert (domain, op_type) not in self.converters, op_type
                self.converters[(domain, op_type)] = Converter(fn, known)
            return fn

        return register

    def supported_ops(self) -> Tuple[str, ...]:
        """The source op types this front end converts."""
        return tuple(sorted(op for domain, op in self.converters if domain == ""))

    def _unsupported(self, node: Node) -> str:
        where = f" from domain '{node.domain}'" if node.domain else ""
        return f"op {node.op_type}{where} is not supported by {self.tool}"

    def refuse_unsupported(self, graph: Graph) -> None:
        """Name the first node we cannot convert, before any work on the others."""
        missing = [n for n in graph.nodes if (n.domain, n.op_type) not in self.converters]
        if missing:
            first = missing[0]
            others = sorted({n.op_type for n in missing[1:]} - {first.op_type})
            more = f" (also unsupported here: {', '.join(others)})" if others else ""
            raise graph.fail(first, self._unsupported(first) + more)

    def convert_node(self, ctx: Context, node: Node) -> None:
        """Emit the layers of one node, or raise the ConversionError that says why not."""
        ctx.node = node
        converter = self.converters.get((node.domain, node.op_type))
        if converter is None:
            raise ctx.fail(self._unsupported(node))
        unknown = sorted(set(node.attrs) - converter.attrs)
        if unknown:
            raise ctx.fail(f"attribute '{unknown[0]}' is not supported")
        try:
            converter.run(ctx, node)
        except ConversionError:
            raise
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            # a damaged file: an input the op needs is missing, or shaped unlike anything it takes
            raise ctx.fail(f"its inputs, shapes or attributes do not fit the op ({type(exc).__name__}: {exc})") \
                from None


def build(graph: Graph, registry: Registry, data_types: Mapping[str, DataType],
          progress: Optional[Progress] = None) -> Tuple[Net, Dict[str, str]]:
    """The Net of a folded and fused graph (every node converted, inputs and outputs named),
    and the TNN blob of each source value that became one.

    `data_types` gives the TNN data type of each graph input.
    """
    ctx = Context(graph)
    total = len(graph.nodes)
    for index, node in enumerate(graph.nodes):
        if progress:
            progress("converting nodes", index + 1, total)
        registry.convert_node(ctx, node)
    for name in graph.outputs:
        if name in graph.inputs:
            raise ConversionError(f"output '{name}' is the input itself; TNN needs a layer between them")
        ctx.blob(name)  # a constant output gets its Const layer
    inputs = {ctx.blob(n): shape for n, shape in graph.inputs.items() if ctx.reads(n)}
    if not inputs:
        raise ConversionError("no output of the model depends on an input")
    types = {ctx.blob(name): t for name, t in data_types.items() if ctx.blob(name) in inputs}
    net = Net(inputs, [ctx.blob(n) for n in graph.outputs], ctx.layers, types,
              resources=ctx.resources)
    return net, ctx.blob_names()
