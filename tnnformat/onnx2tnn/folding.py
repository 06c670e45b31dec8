"""Static shapes and constant folding of ONNX graphs.

With every input at a fixed shape, `Shape` of a tensor is
known, so Shape/Gather/Slice/Concat/Cast/Reshape chains (what exporters write for `x.view(n, -1)`)
and weight generators such as ConstantOfShape evaluate to numpy arrays. We evaluate them with
onnx's reference implementation, one node at a time, so folding follows the ONNX spec of the
model's opset, and we leave TNN only layers that compute on data.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from ..importer.build import Progress
from ..importer.errors import ConversionError
from ..importer.folding import drop_unused, fold_pass
from ..importer.graph import Graph, Node
from ..importer.spatial import onnx_pool_out
from . import qdq

#: Ops whose output is not a function of their inputs, or that run subgraphs.
NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                "Multinomial", "Bernoulli", "If", "Loop", "Scan"}

#: Constants up to this many elements go to shape inference as values (they may be shapes).
SMALL_CONSTANT = 64


def _value_info(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _model_for_inference(graph: Graph, template: onnx.ModelProto) -> onnx.ModelProto:
    """The current graph as a model; large constants become typed inputs to keep it small."""
    initializers: List[TensorProto] = []
    inputs = [_value_info(n, graph.input_types[n], s) for n, s in graph.inputs.items()]
    for name, value in graph.constants.items():
        if value.size <= SMALL_CONSTANT:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
            inputs.append(_value_info(name, elem, value.shape))
    outputs = [helper.make_empty_tensor_value_info(name) for name in graph.outputs]
    body = helper.make_graph([n.proto for n in graph.nodes], "onnx2tnn", inputs, outputs,
                             initializers)
    model = helper.make_model(body, opset_imports=list(template.opset_import))
    model.ir_version = max(template.ir_version, 4)  # initializers need not be inputs from IR 4
    return model


def _static(value: onnx.ValueInfoProto):
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = []
    for dim in tensor.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(int(dim.dim_value))
    return tuple(dims)


def infer_shapes(graph: Graph, template: onnx.ModelProto) -> None:
    """Fill graph.shapes and graph.types with what ONNX shape inference knows statically."""
    try:
        inferred = shape_inference.infer_shapes(_model_for_inference(graph, template),
                                                strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises several types here, all with a message
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"shape inference failed at the given input shapes: {first_line}") from None
    shapes: Dict[str, tuple] = {}
    types: Dict[str, int] = {}
    body = inferred.graph
    for value in list(body.input) + list(body.value_info) + list(body.output):
        types[value.name] = value.type.tensor_type.elem_type
        shape = _static(value)
        if shape is not None:
            shapes[value.name] = shape
    for name, value in graph.constants.items():
        shapes[name] = tuple(value.shape)
        types[name] = helper.np_dtype_to_tensor_dtype(value.dtype)
    graph.shapes, graph.types = shapes, types


def _single_node_model(node: Node, inputs: List[str], opset: int) -> onnx.ModelProto:
    """A model of one node: the reference evaluator honours the opset only of a model."""
    body = helper.make_graph([node.proto], "fold", [helper.make_empty_tensor_value_info(n) for n in inputs],
                             [helper.make_empty_tensor_value_info(n) for n in node.outputs if n])
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)])


def _evaluate(graph: Graph, node: Node) -> Optional[List[np.ndarray]]:
    """The node's outputs if they are known now, else None."""
    if node.domain or node.op_type in NOT_FOLDABLE:
        return None
    if node.op_type in ("Shape", "Size"):
        shape = graph.shapes.get(node.inputs[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return [np.array(int(np.prod(shape)), np.int64)]
        start, end = node.attr("start", 0), node.attr("end", None)
        return [np.array(shape[start:end], np.int64)]
    present = [name for name in node.inputs if name]
    if not all(name in graph.constants for name in present):
        return None
    quantization = qdq.evaluate(graph, node)
    if quantization is not None:
        return quantization
    try:
        results = ReferenceEvaluator(_single_node_model(node, present, graph.opset)).run(
            None, {name: graph.constants[name] for name in present})
    except Exception as exc:  # the reference evaluator raises whatever its op raised
        raise graph.fail(node, f"constant folding failed: {exc}") from None
    return [np.asarray(r) for r in results]


def _floor_dropped_ceil_windows(graph: Graph) -> int:
    """Set ceil_mode=0 on poolings whose extra ceil window ONNX drops anyway (it would start
    in the padding), so that shape inference, which keeps it, infers the true output size."""
    changed = 0
    for node in graph.nodes:
        shape = graph.shapes.get(node.inputs[0]) if node.inputs else None
        if (node.op_type not in ("MaxPool", "AveragePool") or node.domain or not node.attr("ceil_mode")
                or node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or shape is None):
            continue
        kernel, rank = list(node.attr("kernel_shape")), len(node.attr("kernel_shape"))
        strides = list(node.attr("strides", [1] * rank))
        dilations = list(node.attr("dilations", [1] * rank))
        pads = list(node.attr("pads", [0] * 2 * rank))  # VALID has none
        axes = [(size, d * (k - 1) + 1, s, pads[i], pads[i + rank])
                for i, (size, k, s, d) in enumerate(zip(shape[2:], kernel, strides, dilations))]
        true_out = [onnx_pool_out(*axis, ceil_mode=1) for axis in axes]
        inferred = [-(-(size + begin + end - k) // s) + 1 for size, k, s, begin, end in axes]
        if true_out == inferred or true_out != [onnx_pool_out(*axis, ceil_mode=0) for axis in axes]:
            continue
        proto = onnx.NodeProto()
        proto.CopyFrom(node.proto)  # the caller's model stays as it was
        for attribute in proto.attribute:
            if attribute.name == "ceil_mode":
                attribute.i = 0
        node.proto, node.attrs["ceil_mode"] = proto, 0
        changed += 1
    return changed


def fold(graph: Graph, template: onnx.ModelProto, progress: Optional[Progress] = None) -> int:
    """Fold every constant node, re-inferring shapes until nothing more folds; returns the count."""
    folded = 0
    while True:
        infer_shapes(graph, template)
        count = fold_pass(graph, _evaluate, progress)
        if not count and not _floor_dropped_ceil_windows(graph):
            break
        folded += count
        drop_unused(graph)
    drop_unused(graph)
    return folded
