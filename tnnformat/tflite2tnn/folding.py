"""What tflite2tnn folds: DEQUANTIZE of constant weights (float16, or int8/uint8 with their
scales) and DENSIFY of sparse constant weights, into float constants in TNN's layout."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..importer.graph import Graph, Node
from . import schema
from .layout import NCHW_AXIS, tnn_array
from .sparse import densify


def dequantize(value: np.ndarray, quantization: Optional[schema.Quantization]) -> np.ndarray:
    """A constant as float32: float16 widened, integers mapped by (q - zero_point) * scale."""
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32)
    if quantization is None:
        raise ValueError("an integer constant without quantization parameters")
    shape = [1] * value.ndim
    if quantization.scale.size > 1:
        if not 0 <= quantization.axis < value.ndim or value.shape[quantization.axis] != quantization.scale.size:
            raise ValueError(f"{quantization.scale.size} scales do not fit axis {quantization.axis} "
                             f"of shape {list(value.shape)}")
        shape[quantization.axis] = -1
    if quantization.zero_point.size != quantization.scale.size:
        raise ValueError(f"{quantization.scale.size} scales but {quantization.zero_point.size} zero points")
    scale = quantization.scale.astype(np.float64).reshape(shape)
    zero = quantization.zero_point.astype(np.float64).reshape(shape)
    return ((value.astype(np.float64) - zero) * scale).astype(np.float32)


def evaluator(model: schema.Model):
    """The `evaluate` of importer.folding for this model."""
    def evaluate(graph: Graph, node: Node) -> Optional[List[np.ndarray]]:
        if node.op_type not in ("DEQUANTIZE", "DENSIFY") or node.inputs[0] not in graph.constants:
            return None
        op: schema.Operator = node.proto
        source = model.tensors[op.inputs[0]]
        value = graph.constants[node.inputs[0]]
        if node.op_type == "DENSIFY":
            return [tnn_array(densify(model, source, value))]
        raw = value.transpose(NCHW_AXIS) if value.ndim == 4 else value  # the file's layout
        try:
            return [tnn_array(dequantize(raw, source.quantization))]
        except ValueError as exc:
            raise model.file.corrupt(f"tensor {source.index} '{source.name}': {exc}") from None

    return evaluate
