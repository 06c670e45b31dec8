"""Kinds of items in a layer's resource body in a .tnnmodel.

A layer type declares its body as a sequence of these items (see layer_types.py); the model
reader and writer both walk that declaration. A body is held as a dict of named RawBuffers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence

import numpy as np

from .net import DataType, Layer, RawBuffer, Resource

if TYPE_CHECKING:  # the binary stream classes live with the model reader/writer
    from .model import ByteReader, ByteWriter


class Item:
    """`flags` carries the values of Flag items already read or written in this body."""

    def read(self, reader: "ByteReader", resource: Resource, flags: Dict[str, int]) -> None:
        raise NotImplementedError

    def write(self, writer: "ByteWriter", layer: Layer, resource: Resource,
              flags: Dict[str, int]) -> None:
        raise NotImplementedError


class LayerName(Item):
    """The layer's name repeated inside the body; TNN writes the layer's own name."""

    def read(self, reader, resource, flags):
        reader.string()

    def write(self, writer, layer, resource, flags):
        writer.string(layer.name)


class Flag(Item):
    """An int32 flag written from a layer param (Convolution's `bias`, Scale's `bias_term`);
    buffers declared `when=` that param are present only if it is non-zero."""

    def __init__(self, param: str):
        self.param = param

    def read(self, reader, resource, flags):
        flags[self.param] = reader.int32()

    def write(self, writer, layer, resource, flags):
        flags[self.param] = 1 if layer.params.get(self.param, 0) else 0
        writer.int32(flags[self.param])


class Buffer(Item):
    def __init__(self, key: str, when: Optional[str] = None):
        self.key, self.when = key, when

    def present(self, flags: Dict[str, int]) -> bool:
        return self.when is None or flags.get(self.when, 0) != 0

    def read(self, reader, resource, flags):
        if self.present(flags):
            resource[self.key] = reader.raw_buffer()

    def write(self, writer, layer, resource, flags):
        if self.present(flags):
            writer.raw_buffer(_get(resource, self.key))


def _get(resource: Resource, key: str) -> RawBuffer:
    if key not in resource:
        raise KeyError(key)
    return resource[key]


class ZeroPointScale(Item):
    """Int8 quantization data: a zero-point buffer (int8) then a scale buffer (float).

    Files from old TNN versions have only the scale; TNN tells them apart by the first
    buffer's data type and fills zero points with zeros, and so do we.
    """

    def read(self, reader, resource, flags):
        first = reader.raw_buffer()
        if first.data_type == DataType.INT8:
            resource["zero_point"] = first
            resource["scale"] = reader.raw_buffer()
        elif first.data_type == DataType.FLOAT:
            resource["zero_point"] = RawBuffer(DataType.INT8, (), np.zeros(first.data.size, np.int8))
            resource["scale"] = first
        else:
            raise reader.error(f"int8 scale data must start with an int8 or float buffer, "
                               f"not {first.data_type.name}")

    def write(self, writer, layer, resource, flags):
        writer.raw_buffer(_get(resource, "zero_point"))
        writer.raw_buffer(_get(resource, "scale"))


class IfInt8(Item):
    """Items present only when an earlier buffer (the weights) is stored as int8."""

    def __init__(self, key: str, items: Sequence[Item]):
        self.key, self.items = key, tuple(items)

    def applies(self, resource: Resource) -> bool:
        return self.key in resource and resource[self.key].data_type == DataType.INT8

    def read(self, reader, resource, flags):
        if self.applies(resource):
            for item in self.items:
                item.read(reader, resource, flags)

    def write(self, writer, layer, resource, flags):
        if self.applies(resource):
            for item in self.items:
                item.write(writer, layer, resource, flags)
