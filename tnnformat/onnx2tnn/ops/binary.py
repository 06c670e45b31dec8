"""Element-wise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Sum, Max, Min.

As in TNN's converter, a constant operand is not a blob: the layer keeps it in its resource
(`element`, with the constant's ONNX dims) and `weight_input_index` says which side it is on;
two computed operands make a two-input layer with weight_input_index -1.
"""
from __future__ import annotations

import numpy as np

from ...importer.builders import emit_binary
from ...importer.context import Context
from ...importer.graph import Node
from . import converts

TNN_TYPES = {"Add": "Add", "Sum": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div",
             "Max": "Maximum", "Min": "Minimum"}


@converts("Add", "Sub", "Mul", "Div", "Sum", "Max", "Min")
def binary(ctx: Context, node: Node) -> None:
    """Two operands make one layer; Sum, Max and Min of more make a chain of them."""
    tnn_type = TNN_TYPES[node.op_type]
    inputs = [name for name in node.inputs if name]
    if len(inputs) < 2:
        raise ctx.fail("a single operand is not supported")
    result = inputs[0]
    for index, operand in enumerate(inputs[1:], 2):
        last = index == len(inputs)
        shape = np.broadcast_shapes(ctx.shape(result), ctx.shape(operand))
        out = node.outputs[0] if last else ctx.new_value(f"{node.outputs[0]}_partial", shape)
        emit_binary(ctx, tnn_type, result, operand, out)
        result = out
