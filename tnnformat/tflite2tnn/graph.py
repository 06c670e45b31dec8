"""A TFLite file read into the importer's graph, in TNN's layout (see layout.py).

Tensors become values named by the file (made unique), constant buffers become numpy
constants, and operators become nodes with their builtin options as attributes and their
index, so errors name them by it. Shapes are the ones stored in the file.
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..importer.errors import ConversionError
from ..importer.graph import Graph, Node
from ..net import DataType
from ..importer.scales import INTEGER_RANGES, FileScales, file_scale
from . import schema
from .folding import dequantize
from .layout import tnn_array, tnn_shape

#: TNN data types of the inputs we accept.
INPUT_TYPES = {"float32": DataType.FLOAT, "float16": DataType.HALF, "int32": DataType.INT32}
#: The domain of custom operators' nodes.
CUSTOM = "custom"


def read_file(path) -> schema.Model:
    """Read a .tflite file (or its bytes); every failure is one ConversionError naming it."""
    if isinstance(path, (bytes, bytearray)):
        return schema.read(bytes(path), "the model")
    try:
        with open(os.fspath(path), "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return schema.read(data, str(path))


def _names(model: schema.Model) -> List[str]:
    """One unique value name per tensor: the file's, with the index added to repeated ones."""
    counts: Dict[str, int] = {}
    for tensor in model.tensors:
        counts[tensor.name] = counts.get(tensor.name, 0) + 1
    return [t.name if counts[t.name] == 1 else f"{t.name}_{t.index}" for t in model.tensors]


def _constant(model: schema.Model, tensor: schema.Tensor) -> Optional[np.ndarray]:
    data = model.data(tensor)
    if data is None:
        return None
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    if tensor.sparsity is not None:  # DENSIFY's input: the stored values, 1-D
        if len(data) % dtype.itemsize:
            raise model.file.corrupt(f"tensor {tensor.index} '{tensor.name}' has {len(data)} bytes "
                                     f"of {tensor.dtype} values")
        return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="))
    count = int(np.prod(tensor.shape, dtype=np.int64))
    if count * dtype.itemsize != len(data):
        raise model.file.corrupt(f"tensor {tensor.index} '{tensor.name}' of shape "
                                 f"{list(tensor.shape)} has {len(data)} bytes of data")
    return np.frombuffer(data, dtype, count).reshape(tensor.shape).astype(dtype.newbyteorder("="))


def _input_shape(tensor: schema.Tensor, given: Optional[Sequence[int]]) -> Tuple[int, ...]:
    """The file's shape of an input; a dynamic one must be given, and equal the stored one."""
    dynamic = tensor.signature is not None and any(d < 0 for d in tensor.signature)
    shown = ",".join(str(d) for d in (tensor.signature if dynamic else tensor.shape))
    if given is None:
        if dynamic:
            raise ConversionError(f"input '{tensor.name}' has a dynamic shape ({shown}); give its "
                                  f"shape with --input-shape {tensor.name}:"
                                  + ",".join(str(max(d, 1)) for d in tensor.shape))
        return tensor.shape
    given = tuple(int(d) for d in given)
    if given != tensor.shape:
        raise ConversionError(f"input '{tensor.name}': tflite2tnn converts at the shape the file's "
                              f"tensors are stored at ({','.join(map(str, tensor.shape))}), "
                              f"not {','.join(map(str, given))}")
    return given


def from_model(model: schema.Model,
               input_shapes: Optional[Mapping[str, Sequence[int]]] = None) -> Graph:
    """The working graph of `model`, every value in TNN's layout."""
    names = _names(model)
    given = dict(input_shapes or {})
    by_name = {model.tensors[i].name: i for i in model.inputs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise ConversionError(f"--input-shape names '{unknown[0]}', which is not an input of the "
                              f"model (its inputs: {', '.join(by_name) or 'none'})")
    constants: Dict[str, np.ndarray] = {}
    for tensor in model.tensors:
        value = _constant(model, tensor)
        if value is None:
            continue
        if tensor.sparsity is None and quantized(tensor):  # an int8 model's weights and biases
            try:
                value = dequantize(value, tensor.quantization)
            except ValueError as exc:
                raise model.file.corrupt(f"tensor {tensor.index} '{tensor.name}': {exc}") from None
        constants[names[tensor.index]] = value if tensor.sparsity is not None else tnn_array(value)
    inputs, input_types = {}, {}
    for index in model.inputs:
        tensor = model.tensors[index]
        if names[index] in constants:
            continue
        if tensor.dtype not in INPUT_TYPES:
            raise ConversionError(f"input '{tensor.name}' has element type {tensor.dtype}, which "
                                  "tflite2tnn does not take (float32, float16 or int32)")
        inputs[names[index]] = tnn_shape(_input_shape(tensor, given.get(tensor.name)))
        input_types[names[index]] = index
    for op in model.operators:
        if not op.outputs or min(op.outputs) < 0:
            raise model.file.corrupt(f"operator {op.index} ({op.op}) has no output tensor")
    nodes = [Node("Identity" if _passes(model, op) else op.op, "",
                  [names[i] if i >= 0 else "" for i in op.inputs], [names[i] for i in op.outputs],
                  dict(op.options), CUSTOM if op.custom else "", op, op.index)
             for op in model.operators]
    graph = Graph(0, nodes, constants, inputs, input_types, [names[i] for i in model.outputs])
    graph.shapes = {names[t.index]: tnn_shape(t.shape) for t in model.tensors}
    return graph


def quantized(tensor: schema.Tensor) -> bool:
    """An integer tensor with a scale: the codes of float values."""
    return tensor.quantization is not None and np.issubdtype(np.dtype(tensor.dtype), np.integer)


def _passes(model: schema.Model, op: schema.Operator) -> bool:
    """QUANTIZE and DEQUANTIZE of a computed tensor: in our float graph the value passes."""
    return (op.op in ("QUANTIZE", "DEQUANTIZE") and not op.custom and len(op.inputs) == 1
            and model.data(model.tensors[op.inputs[0]]) is None)


def file_scales(model: schema.Model) -> Tuple[FileScales, Optional[bool]]:
    """The scales of the computed int8 tensors (by value name), and whether the quantized
    weights are per channel (None when no constant is quantized)."""
    names = _names(model)
    scales: FileScales = {}
    per_channel: Optional[bool] = None
    for tensor in model.tensors:
        if not quantized(tensor):
            continue
        q = tensor.quantization
        if model.data(tensor) is not None:
            if tensor.dtype != "int32":  # biases follow the weights
                per_channel = bool(per_channel) or q.scale.size > 1
        elif tensor.dtype in INTEGER_RANGES:
            scales[names[tensor.index]] = file_scale(q.scale, q.zero_point, tensor.dtype)
    for op in model.operators:  # the float side of a QUANTIZE or DEQUANTIZE has the same scale
        if _passes(model, op) and op.outputs:
            inside, outside = (op.outputs[0], op.inputs[0])[::1 if op.op == "QUANTIZE" else -1]
            if names[inside] in scales:
                scales.setdefault(names[outside], scales[names[inside]])
    return scales, per_channel


def data_types(graph: Graph, model: schema.Model) -> Dict[str, DataType]:
    """The TNN data type of each graph input."""
    return {name: INPUT_TYPES[model.tensors[index].dtype] for name, index in graph.input_types.items()}
