"""One converter per ONNX op, registered by op type.

A converter reads one node through the Context and emits the TNN layers that compute it,
with TNN's own converter's param conventions. It lists the attributes it understands; a node
carrying any other attribute is refused rather than converted into something else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, Tuple

from ..context import Context
from ..graph import Node

ConvertFn = Callable[[Context, Node], None]


@dataclass(frozen=True)
class Converter:
    run: ConvertFn
    attrs: FrozenSet[str]


#: (domain, op type) -> converter; domain "" is ONNX's, TNN_DOMAIN holds our fusions' nodes.
CONVERTERS: Dict[Tuple[str, str], Converter] = {}


def converts(*op_types: str, attrs: Iterable[str] = (),
             domain: str = "") -> Callable[[ConvertFn], ConvertFn]:
    """Register `fn` as the converter of `op_types`, understanding `attrs`."""
    known = frozenset(attrs)

    def register(fn: ConvertFn) -> ConvertFn:
        for op_type in op_types:
            assert (domain, op_type) not in CONVERTERS, op_type
            CONVERTERS[(domain, op_type)] = Converter(fn, known)
        return fn

    return register


def supported_ops() -> Tuple[str, ...]:
    """The ONNX op types onnx2tnn converts."""
    return tuple(sorted(op for domain, op in CONVERTERS if domain == ""))


def convert_node(ctx: Context, node: Node) -> None:
    """Emit the layers of one node, or raise the ConversionError that says why not."""
    ctx.node = node
    converter = CONVERTERS.get((node.domain, node.op_type))
    if converter is None:
        where = f" from domain '{node.domain}'" if node.domain else ""
        raise ctx.fail(f"op {node.op_type}{where} is not supported by onnx2tnn")
    unknown = sorted(set(node.attrs) - converter.attrs)
    if unknown:
        raise ctx.fail(f"attribute '{unknown[0]}' is not supported")
    converter.run(ctx, node)


# Importing the modules registers their converters.
from . import activation, binary, conv, dense, norm, pool, resize, tensor  # noqa: E402,F401
