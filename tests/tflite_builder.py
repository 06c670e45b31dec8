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
    builder.StartObject(5)
    builder.PrependUint32Slot(0, 3, 0)
    builder.PrependUOffsetTRelativeSlot(1, codes, 0)
    builder.PrependUOffsetTRelativeSlot(2, graphs, 0)
    builder.PrependUOffsetTRelativeSlot(4, buffers, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"TFL3")
    return bytes(builder.Output())
