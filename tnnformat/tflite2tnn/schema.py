"""TFLite's schema (tensorflow/lite/schema/schema.fbs), the part tflite2tnn reads.

Field slots are the order of each table's fields in schema.fbs (counting from 0); option
tables are listed per builtin operator. To extend: find the table in schema.fbs, count its
fields, and add (name, slot, format, default) here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..importer.errors import ConversionError
from .flatbuf import Buffer, Table

IDENTIFIER = b"TFL3"

#: BuiltinOperator codes of the operators we read (schema.fbs, enum BuiltinOperator).
BUILTIN_CODES = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D",
    18: "MUL", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR",
    25: "SOFTMAX", 28: "TANH", 32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB",
    42: "DIV", 43: "SQUEEZE", 45: "STRIDED_SLICE", 49: "SPLIT", 54: "PRELU", 55: "MAXIMUM",
    57: "MINIMUM", 60: "PADV2", 67: "TRANSPOSE_CONV", 74: "SUM", 97: "RESIZE_NEAREST_NEIGHBOR",
    98: "LEAKY_RELU", 114: "QUANTIZE", 117: "HARD_SWISH", 124: "DENSIFY"}

#: TensorType -> numpy dtype (schema.fbs, enum TensorType); others are refused by name.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
                7: "int16", 9: "int8", 10: "float64"}
TENSOR_TYPE_NAMES = {5: "STRING", 8: "COMPLEX64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE",
                     14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16"}

_ACT = ("fused_activation_function", "b", 0)
_WINDOW = [("padding", 0, "b", 0), ("stride_w", 1, "i", 1), ("stride_h", 2, "i", 1)]

#: Builtin options: operator -> [(name, slot, format, default)]; format "ints" is [int].
OPTIONS: Dict[str, List[Tuple[str, int, str, Any]]] = {
    "CONV_2D": _WINDOW + [(_ACT[0], 3, "b", 0), ("dilation_w", 4, "i", 1), ("dilation_h", 5, "i", 1)],
    "DEPTHWISE_CONV_2D": _WINDOW + [("depth_multiplier", 3, "i", 0), (_ACT[0], 4, "b", 0),
                                    ("dilation_w", 5, "i", 1), ("dilation_h", 6, "i", 1)],
    "TRANSPOSE_CONV": _WINDOW + [(_ACT[0], 3, "b", 0)],
    "AVERAGE_POOL_2D": _WINDOW + [("filter_w", 3, "i", 0), ("filter_h", 4, "i", 0), (_ACT[0], 5, "b", 0)],
    "FULLY_CONNECTED": [(_ACT[0], 0, "b", 0), ("weights_format", 1, "b", 0), ("keep_num_dims", 2, "?", False)],
    "ADD": [(_ACT[0], 0, "b", 0)], "SUB": [(_ACT[0], 0, "b", 0)], "MUL": [(_ACT[0], 0, "b", 0)],
    "DIV": [(_ACT[0], 0, "b", 0)],
    "CONCATENATION": [("axis", 0, "i", 0), (_ACT[0], 1, "b", 0)],
    "RESHAPE": [("new_shape", 0, "ints", None)],
    "SOFTMAX": [("beta", 0, "f", 0.0)],
    "MEAN": [("keep_dims", 0, "?", False)], "SUM": [("keep_dims", 0, "?", False)],
    "SQUEEZE": [("squeeze_dims", 0, "ints", None)],
    "RESIZE_BILINEAR": [("align_corners", 2, "?", False), ("half_pixel_centers", 3, "?", False)],
    "RESIZE_NEAREST_NEIGHBOR": [("align_corners", 0, "?", False), ("half_pixel_centers", 1, "?", False)],
    "STRIDED_SLICE": [("begin_mask", 0, "i", 0), ("end_mask", 1, "i", 0), ("ellipsis_mask", 2, "i", 0),
                      ("new_axis_mask", 3, "i", 0), ("shrink_axis_mask", 4, "i", 0), ("offset", 5, "?", False)],
    "SPLIT": [("num_splits", 0, "i", 0)],
    "DEPTH_TO_SPACE": [("block_size", 0, "i", 0)],
    "LEAKY_RELU": [("alpha", 0, "f", 0.0)],
}
OPTIONS["MAX_POOL_2D"] = OPTIONS["AVERAGE_POOL_2D"]


@dataclass
class Quantization:
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass
class Tensor:
    index: int
    name: str
    shape: Tuple[int, ...]
    signature: Optional[Tuple[int, ...]]  # shape_signature: -1 marks a dynamic dim
    dtype: str
    buffer: int
    quantization: Optional[Quantization]
    sparsity: Optional[Table]


@dataclass
class Operator:
    index: int
    op: str  # the builtin name, or the custom code of a custom op
    custom: bool
    inputs: List[int]  # -1: an absent optional input
    outputs: List[int]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Model:
    tensors: List[Tensor]
    operators: List[Operator]
    inputs: List[int]
    outputs: List[int]
    buffers: List[Table]
    file: Buffer

    def data(self, tensor: Tensor) -> Optional[memoryview]:
        """The bytes of a constant tensor, None for a computed one."""
        if not 0 < tensor.buffer < len(self.buffers):
            return None
        buffer = self.buffers[tensor.buffer]
        data = buffer.bytes(0)
        if not len(data):
            offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
            if not offset:
                return None
            self.file.check(offset, size)
            data = self.file.data[offset:offset + size]
        return data


def _quantization(table: Optional[Table]) -> Optional[Quantization]:
    if table is None:
        return None
    scale = table.array(2, "f4")
    if scale is None or not scale.size:
        return None
    zero = table.array(3, "i8")
    return Quantization(scale, zero if zero is not None else np.zeros(scale.size, np.int64),
                        int(table.scalar(6, "i", 0)))


def _tensor(buf: Buffer, index: int, table: Table) -> Tensor:
    code = table.scalar(1, "b", 0)
    name = table.string(3) or f"tensor_{index}"
    if code in TENSOR_TYPE_NAMES:
        raise _unsupported(buf, f"tensor {index} '{name}' has element type "
                                f"{TENSOR_TYPE_NAMES[code]}, which tflite2tnn does not convert")
    if code not in TENSOR_TYPES:
        raise buf.corrupt(f"tensor {index} '{name}' has element type code {code}")
    signature = table.array(7, "i4")
    return Tensor(index, name, tuple(table.ints(0)),
                  tuple(int(d) for d in signature) if signature is not None else None,
                  TENSOR_TYPES[code], int(table.scalar(2, "I", 0)), _quantization(table.table(4)),
                  table.table(6))


def _unsupported(buf: Buffer, detail: str) -> ConversionError:
    return ConversionError(f"{buf.what}: {detail}")


def _options(op: str, table: Optional[Table]) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for name, slot, fmt, default in OPTIONS.get(op, []):
        if fmt == "ints":
            values[name] = table.ints(slot) if table is not None else default
        else:
            values[name] = table.scalar(slot, fmt, default) if table is not None else default
    return values


def _operator_names(buf: Buffer, codes: List[Table]) -> List[Tuple[str, bool]]:
    names = []
    for table in codes:
        code = max(int(table.scalar(0, "b", 0)), int(table.scalar(3, "i", 0)))
        if code == 32:
            names.append((table.string(1) or "CUSTOM", True))
        else:
            names.append((BUILTIN_CODES.get(code, f"builtin operator {code}"), False))
    return names


def read(data: bytes, what: str) -> Model:
    """The model's one subgraph; a file that is not one TFLite model is a ConversionError."""
    buf = Buffer(data, what)
    if len(data) < 8 or bytes(buf.data[4:8]) != IDENTIFIER:
        raise buf.corrupt("no TFL3 file identifier at bytes 4-7")
    root = buf.root()
    subgraphs = root.tables(2)
    if len(subgraphs) != 1:
        raise _unsupported(buf, f"the model has {len(subgraphs)} subgraphs; tflite2tnn converts "
                                "models of exactly one")
    names = _operator_names(buf, root.tables(1))
    graph = subgraphs[0]
    tensors = [_tensor(buf, i, t) for i, t in enumerate(graph.tables(0))]
    operators = []
    for index, table in enumerate(graph.tables(3)):
        code = int(table.scalar(0, "I", 0))
        if code >= len(names):
            raise buf.corrupt(f"operator {index} has opcode index {code} of {len(names)} codes")
        op, custom = names[code]
        operators.append(Operator(index, op, custom, table.ints(1), table.ints(2),
                                  {} if custom else _options(op, table.table(4))))
    model = Model(tensors, operators, graph.ints(1), graph.ints(2), root.tables(4), buf)
    for index in model.inputs + model.outputs + [i for o in operators for i in o.inputs + o.outputs]:
        if not -1 <= index < len(tensors):
            raise buf.corrupt(f"tensor index {index} of {len(tensors)} tensors")
    return model
