"""Element-wise operators: ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM (numpy broadcasting, a
constant operand in the layer's resource), activations, PRELU, LEAKY_RELU, HARD_SWISH."""
from __future__ import annotations

import numpy as np

from ...importer.builders import emit_binary
from ...importer.context import Context, buffer
from ...importer.graph import Node
from ..layout import broadcast_operand
from . import converts, with_activation

BINARY = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Maximum",
          "MINIMUM": "Minimum"}
UNARY = {"RELU": ("ReLU", {}), "RELU6": ("ReLU6", {}), "LOGISTIC": ("Sigmoid", {}),
         "TANH": ("Tanh", {}), "RELU_N1_TO_1": ("Clip", {"min": -1.0, "max": 1.0}),
         "HARD_SWISH": ("HardSwish", {"alpha": 1 / 6, "beta": 0.5})}


def _operand(ctx: Context, name: str, rank: int) -> str:
    """A constant operand in TNN's layout, against an output of `rank` (a new constant value)."""
    value = ctx.const(name)
    if value is None:
        if ctx.rank(name) != rank:
            raise ctx.fail(f"broadcasting computed '{name}' of rank {ctx.rank(name)} to rank {rank} "
                           "is not supported")
        return name
    raw = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value  # back to the file's layout
    fitted = broadcast_operand(raw.astype(np.float32), rank)
    if fitted.shape == value.shape and np.array_equal(fitted, value):
        return name
    fresh = ctx.new_value(f"{name}_nchw", fitted.shape)
    ctx.graph.constants[fresh] = fitted
    return fresh


@converts(*BINARY, attrs=("fused_activation_function",))
def binary(ctx: Context, node: Node) -> None:
    if len(node.inputs) < 2:
        raise ctx.fail(f"{len(node.inputs)} input(s): the op takes two")
    rank = ctx.rank(node.outputs[0])
    a, b = (_operand(ctx, name, rank) for name in node.inputs[:2])
    with_activation(ctx, node, lambda out: emit_binary(ctx, BINARY[node.op_type], a, b, out))


@converts(*UNARY)
def unary(ctx: Context, node: Node) -> None:
    tnn_type, params = UNARY[node.op_type]
    ctx.emit(tnn_type, node.inputs[:1], node.outputs, params)


@converts("LEAKY_RELU", attrs=("alpha",))
def leaky_relu(ctx: Context, node: Node) -> None:
    ctx.emit("PReLU", node.inputs[:1], node.outputs, {"channel_shared": 1, "has_filler": 0},
             {"slope": buffer(np.array([node.attr("alpha", 0.0)], np.float32))})


@converts("PRELU")
def prelu(ctx: Context, node: Node) -> None:
    """A slope of one value, or one per channel (the last NHWC axis), is TNN's PReLU."""
    slope = ctx.need_const(node.inputs[1], "the slope").astype(np.float32)
    shape = ctx.shape(node.inputs[0])
    raw = slope.transpose(0, 2, 3, 1) if slope.ndim == 4 else slope
    channels = shape[1] if len(shape) == 4 else shape[-1]
    if raw.size == 1:
        shared = 1
    elif raw.size == channels and raw.shape[-1] == channels:
        shared = 0
    else:
        raise ctx.fail(f"slope of shape {list(raw.shape)} is not one value per channel")
    if len(shape) not in (2, 4) and not shared:
        raise ctx.fail(f"a per-channel slope on a rank-{len(shape)} input is not supported")
    ctx.emit("PReLU", node.inputs[:1], node.outputs, {"channel_shared": shared, "has_filler": 0},
             {"slope": buffer(raw.reshape(-1))})
