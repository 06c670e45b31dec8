"""Tiny TFLite files written with the flatbuffers package, for the tflite2tnn tests:
one RELU from input 'x' to output 'y' of shape [1, 4], with knobs to make it wrong."""
from __future__ import annotations

from typing import Optional, Sequence

import flatbuffers

RELU = 19


def _ints(builder: flatbuffers.Builder, values: Sequence[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependInt32(value)
    return builder.EndVector()


def _tables(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _tensor(builder: flatbuffers.Builder, name: str, shape: Sequence[int],
            signature: Optional[Sequence[int]]) -> int:
    name_offset, shape_offset = builder.CreateString(name), _ints(builder, shape)
    signature_offset = _ints(builder, signature) if signature is not None else 0
    builder.StartObject(8)
    builder.PrependUOffsetTRelativeSlot(0, shape_offset, 0)
    builder.PrependInt8Slot(1, 0, 0)  # FLOAT32
    builder.PrependUint32Slot(2, 0, 0)
    builder.PrependUOffsetTRelativeSlot(3, name_offset, 0)
    if signature_offset:
        builder.PrependUOffsetTRelativeSlot(7, signature_offset, 0)
    return builder.EndObject()


def _subgraph(builder: flatbuffers.Builder, signature: Optional[Sequence[int]], op_code: int) -> int:
    tensors = _tables(builder, [_tensor(builder, "x", [1, 4], signature),
                                _tensor(builder, "y", [1, 4], None)])
    op_inputs, op_outputs = _ints(builder, [0]), _ints(builder, [1])
    builder.StartObject(5)
    builder.PrependUint32Slot(0, op_code, 0)
    builder.PrependUOffsetTRelativeSlot(1, op_inputs, 0)
    builder.PrependUOffsetTRelativeSlot(2, op_outputs, 0)
    operator = builder.EndObject()
    operators = _tables(builder, [operator])
    inputs, outputs = _ints(builder, [0]), _ints(builder, [1])
    builder.StartObject(5)
    builder.PrependUOffsetTRelativeSlot(0, tensors, 0)
    builder.PrependUOffsetTRelativeSlot(1, inputs, 0)
    builder.PrependUOffsetTRelativeSlot(2, outputs, 0)
    builder.PrependUOffsetTRelativeSlot(3, operators, 0)
    return builder.EndObject()


def relu_model(subgraphs: int = 1, signature: Optional[Sequence[int]] = None,
               builtin: int = RELU, custom: Optional[str] = None, op_code: int = 0) -> bytes:
    """The file's bytes; `custom` makes the operator a custom op of that name."""
    builder = flatbuffers.Builder(0)
    custom_offset = builder.CreateString(custom) if custom else 0
    builder.StartObject(4)
    builder.PrependInt8Slot(0, min(builtin, 127) if not custom else 32, 0)
    if custom_offset:
        builder.PrependUOffsetTRelativeSlot(1, custom_offset, 0)
    builder.PrependInt32Slot(3, builtin if not custom else 32, 0)
    code = builder.EndObject()
    codes = _tables(builder, [code])
    graphs = _tables(builder, [_subgraph(builder, signature, op_code) for _ in range(subgraphs)])
    builder.StartObject(0)
    empty = builder.EndObject()
    buffers = _tables(builder, [empty])
    return _finish(builder, codes, graphs, buffers)


def _finish(builder: flatbuffers.Builder, codes: int, graphs: int, buffers: int) -> bytes:
    """The Model table (version 3) over the given vectors, as the file's bytes."""
    builder.StartObject(5)
    builder.PrependUint32Slot(0, 3, 0)
    builder.PrependUOffsetTRelativeSlot(1, codes, 0)
    builder.PrependUOffsetTRelativeSlot(2, graphs, 0)
    builder.PrependUOffsetTRelativeSlot(4, buffers, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"TFL3")
    return bytes(builder.Output())


#: BuiltinOptions union type of each options table we write (schema.fbs, union BuiltinOptions).
OPTION_TYPES = {"Conv2DOptions": 1, "DepthwiseConv2DOptions": 2, "Pool2DOptions": 5,
                "FullyConnectedOptions": 8, "SoftmaxOptions": 9, "ConcatenationOptions": 10,
                "AddOptions": 11, "ResizeBilinearOptions": 15, "ReshapeOptions": 17,
                "MulOptions": 21, "PadOptions": 22, "TransposeOptions": 26, "ReducerOptions": 27,
                "SubOptions": 28, "DivOptions": 29, "SqueezeOptions": 30,
                "StridedSliceOptions": 32, "SplitOptions": 35, "MaximumMinimumOptions": 39,
                "PadV2Options": 43, "TransposeConvOptions": 49,
                "ResizeNearestNeighborOptions": 74, "LeakyReluOptions": 75,
                "HardSwishOptions": 91, "DepthToSpaceOptions": 94}


def _options(builder: flatbuffers.Builder, fields) -> int:
    """An options table from (slot, format, value): formats b, i, f, ? and ints ([int])."""
    vectors = {slot: _ints(builder, value) for slot, kind, value in fields if kind == "ints"}
    builder.StartObject(1 + max((slot for slot, _, _ in fields), default=0))
    for slot, kind, value in fields:
        if kind == "ints":
            builder.PrependUOffsetTRelativeSlot(slot, vectors[slot], 0)
        elif kind == "b":
            builder.PrependInt8Slot(slot, value, -1)
        elif kind == "?":
            builder.PrependBoolSlot(slot, value, not value)
        elif kind == "f":
            builder.PrependFloat32Slot(slot, value, value + 1.0)
        else:
            builder.PrependInt32Slot(slot, value, value + 1)
    return builder.EndObject()


def model(tensors, operators, inputs, outputs) -> bytes:
    """A one-subgraph float model. `tensors`: (name, shape, constant array or None);
    `operators`: (builtin code, input indices, output indices, options table name or None,
    [(slot, format, value)])."""
    import numpy as np

    builder = flatbuffers.Builder(0)
    codes = sorted({op[0] for op in operators})
    code_tables = []
    for code in codes:
        builder.StartObject(4)
        builder.PrependInt8Slot(0, min(code, 127), 0)
        builder.PrependInt32Slot(3, code, 0)
        code_tables.append(builder.EndObject())
    buffers, tensor_tables = [], []
    builder.StartObject(0)
    buffers.append(builder.EndObject())
    for name, shape, value in tensors:
        buffer_index = 0
        if value is not None:
            data = np.ascontiguousarray(value).tobytes()
            builder.StartVector(1, len(data), 16)
            builder.head = builder.head - len(data)
            builder.Bytes[builder.head:builder.head + len(data)] = data
            vector = builder.EndVector()
            builder.StartObject(1)
            builder.PrependUOffsetTRelativeSlot(0, vector, 0)
            buffers.append(builder.EndObject())
            buffer_index = len(buffers) - 1
        name_offset, shape_offset = builder.CreateString(name), _ints(builder, list(shape))
        dtype = 2 if value is not None and value.dtype == np.int32 else 0
        builder.StartObject(4)
        builder.PrependUOffsetTRelativeSlot(0, shape_offset, 0)
        builder.PrependInt8Slot(1, dtype, -1)
        builder.PrependUint32Slot(2, buffer_index, 0)
        builder.PrependUOffsetTRelativeSlot(3, name_offset, 0)
        tensor_tables.append(builder.EndObject())
    op_tables = []
    for code, op_inputs, op_outputs, table, fields in operators:
        options = _options(builder, fields) if table else 0
        in_offset, out_offset = _ints(builder, op_inputs), _ints(builder, op_outputs)
        builder.StartObject(5)
        builder.PrependUint32Slot(0, codes.index(code), 0)
        builder.PrependUOffsetTRelativeSlot(1, in_offset, 0)
        builder.PrependUOffsetTRelativeSlot(2, out_offset, 0)
        if table:
            builder.PrependUint8Slot(3, OPTION_TYPES[table], 0)
            builder.PrependUOffsetTRelativeSlot(4, options, 0)
        op_tables.append(builder.EndObject())
    tensor_vector, op_vector = _tables(builder, tensor_tables), _tables(builder, op_tables)
    in_vector, out_vector = _ints(builder, inputs), _ints(builder, outputs)
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(0, tensor_vector, 0)
    builder.PrependUOffsetTRelativeSlot(1, in_vector, 0)
    builder.PrependUOffsetTRelativeSlot(2, out_vector, 0)
    builder.PrependUOffsetTRelativeSlot(3, op_vector, 0)
    graph = builder.EndObject()
    return _finish(builder, _tables(builder, code_tables), _tables(builder, [graph]),
                   _tables(builder, buffers))
