"""ONNX model -> tnnformat.Net: load and check, fix shapes, fold, fuse, convert node by node."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError

from ..net import Net
from . import fusions
from .context import Context
from .errors import ConversionError, node_error
from .folding import Progress, fold
from .graph import Graph, from_model
from .ops import CONVERTERS, convert_node

ModelSource = Union[onnx.ModelProto, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Summary:
    """What a conversion did, for the command's closing line."""

    nodes: int      # ONNX nodes in the model
    layers: int     # TNN layers written
    folded: int     # nodes evaluated away as constants
    fused: int      # places a rewrite changed (BatchNorm folds, HardSwish, removals, ...)
    seconds: float


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check(model: Union[onnx.ModelProto, str], what: str) -> None:
    """onnx's checker; given a path it also copes with models over 2 GB."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ConversionError(f"{what} fails the ONNX checker: {_first_line(exc)}") from None


def load_model(path: Union[str, "os.PathLike[str]"]) -> onnx.ModelProto:
    """Read and check an ONNX file; every failure is one ConversionError naming the file."""
    try:
        model = onnx.load(os.fspath(path))
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (DecodeError, RuntimeWarning, ValueError, TypeError):
        raise ConversionError(f"{path} is not an ONNX model (it does not parse as one)") from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ConversionError(f"{path} is not an ONNX model (it has no graph or IR version)")
    check(os.fspath(path), str(path))
    return model


def _refuse_unsupported(graph: Graph) -> None:
    """Name the first node we cannot convert, before any work on the others."""
    missing = [n for n in graph.nodes if (n.domain, n.op_type) not in CONVERTERS]
    if missing:
        first, others = missing[0], sorted({n.op_type for n in missing[1:]} - {missing[0].op_type})
        more = f" (also unsupported here: {', '.join(others)})" if others else ""
        where = f" from domain '{first.domain}'" if first.domain else ""
        raise node_error(first.label, first.op_type, graph.opset,
                         f"op {first.op_type}{where} is not supported by onnx2tnn{more}")


def _build(graph: Graph, progress: Optional[Progress]) -> Net:
    ctx = Context(graph)
    total = len(graph.nodes)
    for index, node in enumerate(graph.nodes):
        if progress:
            progress("converting nodes", index + 1, total)
        convert_node(ctx, node)
    for name in graph.outputs:
        if name in graph.inputs:
            raise ConversionError(f"output '{name}' is the input itself; TNN needs a layer between them")
        ctx.blob(name)  # a constant output gets its Const layer
    inputs = {ctx.blob(n): shape for n, shape in graph.inputs.items() if ctx.reads(n)}
    if not inputs:
        raise ConversionError("no output of the model depends on an input")
    types = {name: t for name, t in ctx.input_types().items() if name in inputs}
    return Net(inputs, [ctx.blob(n) for n in graph.outputs], ctx.layers, types,
               resources=ctx.resources)


def convert_with_summary(model: ModelSource,
                         input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
                         progress: Optional[Progress] = None) -> Tuple[Net, Summary]:
    """convert(), plus what it did."""
    start = time.perf_counter()
    if isinstance(model, onnx.ModelProto):
        check(model, "the model")
    else:
        model = load_model(model)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = from_model(model, input_shapes)
    nodes = len(graph.nodes)
    folded = fold(graph, model, progress)
    fused = fusions.apply(graph)
    _refuse_unsupported(graph)
    net = _build(graph, progress)
    return net, Summary(nodes, len(net.layers), folded, fused, time.perf_counter() - start)


def convert(model: ModelSource, input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
            progress: Optional[Progress] = None) -> Net:
    """The TNN model of an ONNX model (a ModelProto or a file path), at static input shapes.

    `input_shapes` fixes inputs whose shape is dynamic (name -> dims). Raises ConversionError,
    with a one-line message, for anything that cannot be converted; `model` is not modified.
    `progress(stage, done, total)` is called as work advances.
    """
    return convert_with_summary(model, input_shapes, progress)[0]
