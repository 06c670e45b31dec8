"""The .tnnproto text file: parse it into a Net (without resources) and write it back.

Layout (TNN's model_interpreter.cc reads it, model_packer.cc writes it): every line is
`"...,"`; TNN drops every `"` and newline and splits the rest on `,`. The first five pieces
are the header (magic, inputs, blob names, outputs, layer count), then one piece per layer.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .errors import TnnFormatError
from .layer_types import UNKNOWN_PARAMS, spec, split_type
from .net import DataType, Layer, Net
from .params import ParamError, parse_int, read_params, write_params

MAGIC_V1 = 0x0FABC0002 & 0xFFFFFFFF
MAGIC_V2 = 0x0FABC0004 & 0xFFFFFFFF
HEADER_PIECES = 5


def _pieces(text: str) -> List[Tuple[str, int]]:
    """The comma-separated pieces with the line each starts on, as TNN splits the file."""
    pieces: List[Tuple[str, int]] = []
    current: List[str] = []
    start: Optional[int] = None
    for number, line in enumerate(text.split("\n"), 1):
        parts = line.replace('"', "").split(",")
        for i, part in enumerate(parts):
            if start is None and part.strip():
                start = number
            current.append(part)
            if i < len(parts) - 1:  # a comma ends this piece
                pieces.append(("".join(current).strip(), start or number))
                current, start = [], None
    tail = "".join(current).strip()
    if tail:
        pieces.append((tail, start or 1))
    return pieces


def _fields_of(layer: Layer):
    layer_spec = spec(layer.type)
    return UNKNOWN_PARAMS if layer_spec is None else layer_spec.params


def _parse_inputs(text: str, magic: int, fail) -> Tuple[Dict[str, Tuple[int, ...]], Dict[str, DataType]]:
    shapes: Dict[str, Tuple[int, ...]] = {}
    types: Dict[str, DataType] = {}
    for entry in text.split(":"):
        tokens = entry.split()
        if len(tokens) < 2:
            fail(f"input '{entry.strip()}' needs a name and a shape")
        name, rest = tokens[0], tokens[1:]
        try:
            if magic == MAGIC_V1:  # no data types in v1: TNN takes float
                dims = [parse_int(t, f"input '{name}' dim") for t in rest]
                types[name] = DataType.FLOAT
            else:
                rank = parse_int(rest[0], f"input '{name}' rank")
                if rank < 0 or len(rest) != rank + 2:
                    fail(f"input '{name}': rank {rank} needs {rank} dims and a data type, "
                         f"got {len(rest) - 1} values")
                dims = [parse_int(t, f"input '{name}' dim") for t in rest[1:rank + 1]]
                code = parse_int(rest[rank + 1], f"input '{name}' data type")
                if code not in DataType.__members__.values():
                    fail(f"input '{name}': unknown data type {code}")
                types[name] = DataType(code)
        except ParamError as exc:
            fail(str(exc))
        if any(d < 0 for d in dims):
            fail(f"input '{name}' has a negative dimension: {dims}")
        if name in shapes:
            fail(f"input '{name}' is declared twice")
        shapes[name] = tuple(dims)
    return dict(sorted(shapes.items())), types


def _parse_layer(text: str, fail) -> Layer:
    tokens = text.split()
    if len(tokens) < 4:
        fail("a layer needs a type, a name and input and output counts")
    type_name, quantized = split_type(tokens[0])
    name = tokens[1]
    try:
        n_in = parse_int(tokens[2], "input count")
        n_out = parse_int(tokens[3], "output count")
    except ParamError as exc:
        fail(str(exc), name)
    if n_in < 0 or n_out < 0 or 4 + n_in + n_out > len(tokens):
        fail(f"{n_in} inputs and {n_out} outputs announced, {len(tokens) - 4} names present", name)
    layer = Layer(type_name, name, tokens[4:4 + n_in], tokens[4 + n_in:4 + n_in + n_out],
                  quantized=quantized)
    try:
        layer.params = read_params(_fields_of(layer), tokens[4 + n_in + n_out:])
    except ParamError as exc:
        fail(f"{type_name}: {exc}", name)
    return layer


def parse_proto(text: str, path: str = "<proto>") -> Net:
    """A Net with the proto's inputs, outputs, blobs and layers, and no resources."""
    line = 1

    def fail(message: str, layer: Optional[str] = None):
        raise TnnFormatError(message, path=path, line=line, layer=layer)

    pieces = _pieces(text)
    if len(pieces) < HEADER_PIECES:
        fail(f"the header needs {HEADER_PIECES} lines, the file has {len(pieces)}")
    (magic_text, line) = pieces[0]
    head = magic_text.split()
    if len(head) < 4:
        fail("the first line must be '1 <blob count> 1 <magic>'")
    try:
        blob_count = parse_int(head[1], "blob count")
        magic = parse_int(head[3], "magic number")
    except ParamError as exc:
        fail(str(exc))
    if magic not in (MAGIC_V1, MAGIC_V2):
        fail(f"wrong magic number {magic} (expected {MAGIC_V1} or {MAGIC_V2})")

    inputs_text, line = pieces[1]
    inputs, input_types = _parse_inputs(inputs_text, magic, fail)
    blobs_text, line = pieces[2]
    blobs = blobs_text.split()
    if len(blobs) != blob_count:
        fail(f"the first line announces {blob_count} blobs, this line lists {len(blobs)}")
    outputs_text, line = pieces[3]
    outputs = sorted(set(outputs_text.split()))
    if not outputs:
        fail("the model names no output blob")
    count_text, line = pieces[4]
    try:
        layer_count = parse_int(count_text, "layer count")
    except ParamError as exc:
        fail(str(exc))

    layers = []
    for layer_text, line in pieces[HEADER_PIECES:]:
        if layer_text:
            layers.append(_parse_layer(layer_text, fail))
    if layer_count != len(layers):
        line = pieces[4][1]
        fail(f"the header announces {layer_count} layers, the file has {len(layers)}")
    net = Net(inputs=inputs, outputs=outputs, layers=layers, input_types=input_types,
              blobs=sorted(set(blobs)))
    net.blobs = net.all_blobs()
    return net


def _check_name(name: str, what: str, layer: Optional[str] = None) -> str:
    if not name or any(c.isspace() or c in ',":' for c in name):
        raise TnnFormatError(f"{what} '{name}' cannot be written: names must be non-empty and "
                             "free of spaces, commas, colons and quotes", layer=layer)
    return name


def format_proto(net: Net) -> str:
    """The proto text exactly as TNN's packer writes it (v2 magic, sorted inputs/blobs/outputs)."""
    if not net.outputs:
        raise TnnFormatError("the model names no output blob")
    blobs = net.all_blobs()
    inputs = []
    for name, dims in sorted(net.inputs.items()):
        data_type = int(net.input_types.get(name, DataType.FLOAT))
        inputs.append(" ".join([_check_name(name, "input"), str(len(dims)), *map(str, dims),
                                str(data_type)]) + " ")
    lines = [
        f"1 {len(blobs)} 1 {MAGIC_V2} ,",
        ": ".join(inputs) + ",",
        " " + "".join(_check_name(b, "blob") + " " for b in blobs) + ",",
        "".join(_check_name(o, "output") + " " for o in sorted(set(net.outputs))) + ",",
        f" {len(net.layers)} ,",
    ]
    for layer in net.layers:
        try:
            params = write_params(_fields_of(layer), layer.params)
        except ParamError as exc:
            raise TnnFormatError(f"{layer.type}: {exc}", layer=layer.name) from None
        names = [_check_name(n, "blob", layer.name) for n in layer.inputs + layer.outputs]
        tokens = [_check_name(layer.type_str, "type", layer.name),
                  _check_name(layer.name, "layer name", layer.name),
                  str(len(layer.inputs)), str(len(layer.outputs)), *names, *params]
        lines.append("".join(t + " " for t in tokens) + ",")
    return "".join(f'"{line}"\n' for line in lines)
