"""An ONNX model read into the importer's graph: plain nodes, numpy constants, static shapes.

The original ModelProto is never touched; each node keeps its proto for constant folding.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import onnx
from onnx import TensorProto, helper, numpy_helper

from ..importer.errors import ConversionError
from ..importer.graph import Graph, Node, Shape
from ..net import DataType

#: Oldest default-domain opset we convert (the ops' semantics we follow start there).
MIN_OPSET = 7


def _array(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values; a damaged one (data that do not fill its dims, an unknown element
    type) is a ConversionError naming it."""
    try:
        return numpy_helper.to_array(tensor)
    except KeyError:
        raise ConversionError(f"tensor '{_text(tensor.name)}' has an unknown element type "
                              f"{tensor.data_type}") from None
    except (ValueError, TypeError) as exc:
        raise ConversionError(f"tensor '{_text(tensor.name)}' cannot be read: {exc}") from None


def _text(value: Any) -> str:
    """A string field as text: protobuf hands over invalid UTF-8 (a damaged file) as bytes."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def attribute_values(node: onnx.NodeProto) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = _array(value)
        values[attribute.name] = value
    return values


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ConversionError("the model imports no default-domain (ai.onnx) opset")


def _declared_shape(value: onnx.ValueInfoProto) -> Optional[List[Optional[int]]]:
    """The declared dims, None for a dim without a fixed size; None if no shape is declared."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tensor.shape.dim]


def _input_shape(value: onnx.ValueInfoProto, given: Optional[Sequence[int]]) -> Shape:
    declared = _declared_shape(value)
    name = value.name
    if given is not None:
        given = tuple(int(d) for d in given)
        if any(d <= 0 for d in given):
            raise ConversionError(f"input '{name}': every dim of the given shape must be positive, "
                                  f"got {','.join(map(str, given))}")
        if declared is not None and len(declared) != len(given):
            raise ConversionError(f"input '{name}' has rank {len(declared)} but the given shape "
                                  f"{','.join(map(str, given))} has rank {len(given)}")
        return given
    if declared is None or any(d is None for d in declared):
        dims = value.type.tensor_type.shape.dim
        shown = ",".join(d.dim_param or (str(d.dim_value) if d.dim_value > 0 else "?") for d in dims)
        example = ",".join(str(d) if d is not None else ("1" if i == 0 else "224")
                           for i, d in enumerate(declared or [None, 3, None, None]))
        what = f"a dynamic shape ({shown})" if declared is not None else "no declared shape"
        raise ConversionError(f"input '{name}' has {what}; give its shape in numbers with "
                              f"--input-shape (input_shapes in Python), e.g. --input-shape {name}:{example}")
    return tuple(int(d) for d in declared)  # type: ignore[arg-type]


def from_model(model: onnx.ModelProto,
               input_shapes: Optional[Mapping[str, Sequence[int]]] = None) -> Graph:
    """The working graph of `model`, with every real input at a static shape."""
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise ConversionError(f"the model uses opset {opset}; onnx2tnn converts opset {MIN_OPSET} "
                              "and newer (onnx.version_converter can upgrade it)")
    graph = model.graph
    constants = {t.name: _array(t) for t in graph.initializer}
    given = dict(input_shapes or {})
    real_inputs = [v for v in graph.input if v.name not in constants]
    unknown = sorted(set(given) - {v.name for v in real_inputs})
    if unknown:
        names = ", ".join(v.name for v in real_inputs) or "none"
        raise ConversionError(f"--input-shape names '{unknown[0]}', which is not an input of the "
                              f"model (its inputs: {names})")
    inputs = {v.name: _input_shape(v, given.get(v.name)) for v in real_inputs}
    input_types = {v.name: v.type.tensor_type.elem_type for v in real_inputs}
    nodes = [Node(_text(n.op_type), _text(n.name), [_text(i) for i in n.input], [_text(o) for o in n.output],
                  attribute_values(n), "" if n.domain == "ai.onnx" else n.domain, n) for n in graph.node]
    return Graph(opset, nodes, constants, inputs, input_types, [v.name for v in graph.output])


def data_types(graph: Graph) -> Dict[str, DataType]:
    """The TNN data type of each input, from its ONNX element type."""
    return {name: _data_type(elem, name) for name, elem in graph.input_types.items()}


def _data_type(elem_type: int, name: str) -> DataType:
    if elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
        return DataType.FLOAT
    if elem_type == TensorProto.FLOAT16:
        return DataType.HALF
    if elem_type in (TensorProto.INT32, TensorProto.INT64):
        return DataType.INT32
    known = elem_type in TensorProto.DataType.values()  # a damaged file may hold any number
    raise ConversionError(f"input '{name}' has ONNX element type "
                          f"{TensorProto.DataType.Name(elem_type) if known else elem_type}, "
                          "which TNN inputs cannot take")
