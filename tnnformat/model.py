"""The .tnnmodel binary file: every layer's resource, blob scales and the constant map.

Layout (little-endian; TNN's objseri.h, model_interpreter.cc and model_packer.cc): an optional
uint32 magic, an int32 resource count, then per resource a header (int32 LayerType, type name,
layer name; strings are int32 length + bytes) and the body its layer type declares. Raw
buffers are: magic, data type, byte length, [rank and dims in v2], bytes. After the resources
an optional constant map: magic, count, then (name, raw buffer) pairs.

Buffers are numpy views on the file's bytes: no per-element Python and no copies.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Dict, List, Optional

import numpy as np

from .errors import TnnFormatError
from .layer_types import TNN_TYPE_NUMBERS, LayerSpec, spec, spec_by_number, split_type
from .buffer import NUMPY_DTYPE, DataType, RawBuffer, Resource
from .net import BLOB_SCALE_SUFFIX, Layer, Net
from .proto import MAGIC_V1, MAGIC_V2

MAX_RESOURCES = 10000  # TNN refuses larger counts too
MAX_RANK = 16
BLOB_SCALE = "BlobScale"


class ByteReader:
    """Reads TNN's primitive values from bytes, turning every overrun into a TnnFormatError."""

    def __init__(self, data: bytes, path: str):
        self.data, self.path, self.pos = data, path, 0
        self.layer: Optional[str] = None

    def error(self, message: str, offset: Optional[int] = None) -> TnnFormatError:
        return TnnFormatError(message, path=self.path, offset=self.pos if offset is None else offset,
                              layer=self.layer)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int, what: str) -> int:
        """Reserve `size` bytes and return where they start."""
        if size < 0:
            raise self.error(f"negative {what} size {size}")
        if size > self.remaining:
            raise self.error(f"{what} needs {size} bytes, only {self.remaining} left (truncated file?)")
        start = self.pos
        self.pos += size
        return start

    def int32(self, what: str = "integer") -> int:
        return struct.unpack_from("<i", self.data, self.take(4, what))[0]

    def uint32(self, what: str = "integer") -> int:
        return struct.unpack_from("<I", self.data, self.take(4, what))[0]

    def string(self) -> str:
        start = self.pos
        length = self.int32("string length")
        begin = self.take(length, "string")
        try:
            return self.data[begin:begin + length].decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("a name is not valid UTF-8", start) from None

    def raw_buffer(self) -> RawBuffer:
        start = self.pos
        magic = self.uint32("buffer magic")
        if magic not in (MAGIC_V1, MAGIC_V2):
            raise self.error(f"bad buffer magic 0x{magic:08x}", start)
        code = self.int32("data type")
        if code not in DataType.__members__.values():
            raise self.error(f"unknown buffer data type {code}", start + 4)
        data_type = DataType(code)
        length = self.int32("buffer length")
        if length < 0:
            raise self.error(f"negative buffer length {length}", start + 8)
        dtype = NUMPY_DTYPE[data_type]
        if length == 0:
            return RawBuffer(data_type, (), np.zeros(0, dtype))
        dims: tuple = ()
        if magic == MAGIC_V2:
            rank = self.int32("rank")
            if not 0 <= rank <= MAX_RANK:
                raise self.error(f"buffer rank {rank} out of range", self.pos - 4)
            dims_at = self.take(4 * rank, "buffer dims")
            dims = struct.unpack_from(f"<{rank}i", self.data, dims_at)
            if any(d < 0 for d in dims):
                raise self.error(f"negative buffer dims {list(dims)}", dims_at)
        if length % dtype.itemsize:
            raise self.error(f"buffer length {length} is not a whole number of "
                             f"{data_type.name} elements", start + 8)
        at = self.take(length, "buffer data")
        data = np.frombuffer(self.data, dtype=dtype, count=length // dtype.itemsize, offset=at)
        return RawBuffer(data_type, dims, data)


class ByteWriter:
    """Writes TNN's primitive values to a binary stream; arrays go out without copies."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream

    def int32(self, value: int) -> None:
        self.stream.write(struct.pack("<i", value))

    def uint32(self, value: int) -> None:
        self.stream.write(struct.pack("<I", value))

    def string(self, value: str) -> None:
        data = value.encode("utf-8")
        self.int32(len(data))
        self.stream.write(data)

    def raw_buffer(self, buffer: RawBuffer) -> None:
        data = np.ascontiguousarray(buffer.data, dtype=NUMPY_DTYPE[buffer.data_type])
        self.uint32(MAGIC_V2)
        self.int32(int(buffer.data_type))
        self.int32(data.nbytes)
        if data.nbytes == 0:
            return
        self.int32(len(buffer.dims))
        self.stream.write(struct.pack(f"<{len(buffer.dims)}i", *buffer.dims))
        self.stream.write(memoryview(data).cast("B"))


def _body_spec(number: int, type_name: str) -> Optional[LayerSpec]:
    base, _ = split_type(type_name)
    found = spec(base)
    if found is not None and found.number == number:
        return found
    return spec_by_number(number)


def read_resources(data: bytes, path: str, net: Net) -> None:
    """Fill `net.resources` and `net.constants` from the bytes of a .tnnmodel."""
    reader = ByteReader(data, path)
    layer_types = {layer.name: layer.type for layer in net.layers}
    if len(data) >= 4 and struct.unpack_from("<I", data, 0)[0] in (MAGIC_V1, MAGIC_V2):
        reader.pos = 4
    count = reader.int32("resource count") & 0x1FFFFFFF
    if count >= MAX_RESOURCES or count * 12 > reader.remaining:
        raise reader.error(f"resource count {count} does not fit the file", reader.pos - 4)
    for _ in range(count):
        reader.layer = None
        header_at = reader.pos
        number = reader.int32("layer type")
        if not 0 <= number <= MAX_RESOURCES:
            raise reader.error(f"layer type number {number} out of range", header_at)
        first = reader.string()
        if first in TNN_TYPE_NUMBERS:
            type_name, number, name = first, TNN_TYPE_NUMBERS[first], reader.string()
        else:  # old files: no type name, the string is the layer's name
            type_name, name = layer_types.get(first, f"#{number}"), first
        reader.layer = name
        body = _body_spec(number, type_name)
        if body is None or body.resource is None:
            raise reader.error(f"resource of layer type {type_name} (LayerType {number}) "
                               "has a layout we do not know", header_at)
        if name in net.resources:
            raise reader.error("a second resource for the same name", header_at)
        resource: Resource = {}
        flags: Dict[str, int] = {}
        for item in body.resource:
            item.read(reader, resource, flags)
        net.resources[name] = resource
    reader.layer = None
    if reader.remaining >= 4:  # the optional constant map
        reader.uint32("constant map magic")
        entries = reader.int32("constant count")
        if entries < 0 or entries * 16 > reader.remaining:
            raise reader.error(f"constant count {entries} does not fit the file", reader.pos - 4)
        for _ in range(entries):
            key = reader.string()
            net.constants[key] = reader.raw_buffer()
    if reader.remaining:
        raise reader.error(f"{reader.remaining} unexpected bytes after the model's content")


def _write_resource(writer: ByteWriter, name: str, layer: Layer, resource: Resource) -> None:
    layer_spec = spec(layer.type)
    if layer_spec is None or layer_spec.resource is None:
        raise TnnFormatError(f"layer type {layer.type} has no resource layout we know; "
                             "its resource cannot be written", layer=name)
    writer.int32(layer_spec.number)
    writer.string(layer.type)
    writer.string(name)
    flags: Dict[str, int] = {}
    try:
        for item in layer_spec.resource:
            item.write(writer, layer, resource, flags)
    except KeyError as exc:
        raise TnnFormatError(f"{layer.type} resource lacks its '{exc.args[0]}' buffer",
                             layer=name) from None


def packing_order(net: Net) -> List[str]:
    """Resource names in TNN's packer order: per layer, the input blob scales of a quantized
    layer, the layer's own resource, then its output blob scales; each blob scale once.
    Resources no layer refers to are not written, as in TNN."""
    order: List[str] = []
    seen = set()

    def add(name: str) -> None:
        if name in net.resources and name not in seen:
            seen.add(name)
            order.append(name)

    for layer in net.layers:
        if layer.quantized:
            for blob in layer.inputs:
                add(blob + BLOB_SCALE_SUFFIX)
        add(layer.name)
        if layer.quantized:
            for blob in layer.outputs:
                add(blob + BLOB_SCALE_SUFFIX)
    return order


def write_resources(stream: BinaryIO, net: Net) -> None:
    writer = ByteWriter(stream)
    layers = {layer.name: layer for layer in net.layers}
    order = packing_order(net)
    writer.uint32(MAGIC_V2)
    writer.int32(len(order))
    for name in order:
        if name in layers:
            _write_resource(writer, name, layers[name], net.resources[name])
        else:
            _write_resource(writer, name, Layer(BLOB_SCALE, name, [], []), net.resources[name])
    if net.constants:
        writer.uint32(MAGIC_V2)
        writer.int32(len(net.constants))
        for key in sorted(net.constants):
            writer.string(key)
            writer.raw_buffer(net.constants[key])
