"""ONNX model -> tnnformat.Net: load and check, fix shapes, fold, fuse, convert node by node."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError

from ..importer import fusions
from ..importer.build import Progress, build
from ..importer.errors import ConversionError
from ..importer.scales import Prequantized, blob_scales
from ..net import Net
from .folding import fold
from .graph import data_types, from_model
from .ops import REGISTRY
from .qdq import strip, weights_per_channel

ModelSource = Union[onnx.ModelProto, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Summary:
    """What a conversion did, for the command's closing line."""

    nodes: int      # ONNX nodes in the model
    layers: int     # TNN layers written
    folded: int     # nodes evaluated away as constants
    fused: int      # places a rewrite changed (BatchNorm folds, HardSwish, removals, ...)
    seconds: float
    prequantized: Optional[Prequantized] = None  # a QDQ model's scales

    def line(self) -> str:
        return (f"{self.nodes} ONNX nodes -> {self.layers} TNN layers "
                f"({self.folded} nodes folded as constants, {self.fused} rewrites)")


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
    per_channel = weights_per_channel(graph)
    folded = fold(graph, model, progress)
    scales = strip(graph)
    fused = fusions.apply(graph)
    REGISTRY.refuse_unsupported(graph)
    net, blobs = build(graph, REGISTRY, data_types(graph), progress)
    prequantized = Prequantized(blob_scales(scales, blobs), per_channel is not False) if scales else None
    return net, Summary(nodes, len(net.layers), folded, fused, time.perf_counter() - start, prequantized)


def convert(model: ModelSource, input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
            progress: Optional[Progress] = None) -> Net:
    """The TNN model of an ONNX model (a ModelProto or a file path), at static input shapes.

    `input_shapes` fixes inputs whose shape is dynamic (name -> dims). Raises ConversionError,
    with a one-line message, for anything that cannot be converted; `model` is not modified.
    `progress(stage, done, total)` is called as work advances.
    """
    return convert_with_summary(model, input_shapes, progress)[0]
