"""TFLite model -> tnnformat.Net: read and check, fold DEQUANTIZE/DENSIFY, convert op by op."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

from ..importer.build import Progress, build
from ..importer.folding import drop_unused, fold_pass
from ..importer.fusions import remove_passthrough
from ..importer.scales import Prequantized, blob_scales
from ..net import Net
from .folding import evaluator
from .graph import data_types, file_scales, from_model, read_file
from .ops import REGISTRY

ModelSource = Union[bytes, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Summary:
    """What a conversion did, for the command's closing line."""

    operators: int  # TFLite operators in the model
    layers: int     # TNN layers written
    folded: int     # operators evaluated away as constants (DEQUANTIZE, DENSIFY)
    seconds: float
    prequantized: Optional[Prequantized] = None  # an int8 model's scales

    def line(self) -> str:
        return (f"{self.operators} TFLite operators -> {self.layers} TNN layers "
                f"({self.folded} folded as constants)")


def convert_with_summary(model: ModelSource,
                         input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
                         progress: Optional[Progress] = None) -> Tuple[Net, Summary]:
    """convert(), plus what it did."""
    start = time.perf_counter()
    tflite = read_file(model)
    graph = from_model(tflite, input_shapes)
    folded = fold_pass(graph, evaluator(tflite), progress)
    drop_unused(graph)
    remove_passthrough(graph)  # an int8 model's QUANTIZE and DEQUANTIZE of computed tensors
    REGISTRY.refuse_unsupported(graph)
    net, blobs = build(graph, REGISTRY, data_types(graph, tflite), progress)
    scales, per_channel = file_scales(tflite)
    prequantized = Prequantized(blob_scales(scales, blobs), per_channel is not False) if scales else None
    return net, Summary(len(tflite.operators), len(net.layers), folded, time.perf_counter() - start,
                        prequantized)


def convert(model: ModelSource, input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
            progress: Optional[Progress] = None) -> Net:
    """The TNN model of a .tflite file or its bytes (float, or float16 weights behind DEQUANTIZE).

    Rank-4 tensors become NCHW (inputs and outputs too). Raises ConversionError, with a
    one-line message, for anything that cannot be converted.
    """
    return convert_with_summary(model, input_shapes, progress)[0]
