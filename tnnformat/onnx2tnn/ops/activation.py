"""Activations: one-to-one unary layers, PRelu/LeakyRelu as PReLU, Clip, HardSigmoid, HardSwish."""
from __future__ import annotations

import numpy as np

from ...importer.context import Context, buffer
from ...importer.fusions import clip_bounds
from ...importer.graph import TNN_DOMAIN, Node
from ...layer_types import FLT_MAX
from . import converts

#: ONNX ops that are one TNN layer without params (TNN's names where they differ).
UNARY = {"Relu": "ReLU", **{op: op for op in (
    "Sigmoid", "Tanh", "Abs", "Exp", "Log", "Sqrt", "Neg", "Floor", "Ceil", "Reciprocal", "Sin",
    "Cos", "Tan", "Asin", "Acos", "Atan", "Softplus", "Softsign")}}


@converts(*UNARY)
def unary(ctx: Context, node: Node) -> None:
    ctx.emit(UNARY[node.op_type], node.inputs, node.outputs)


@converts("Pow")
def power(ctx: Context, node: Node) -> None:
    """x ** c with a constant scalar c: TNN's Power layer (exponent c, scale 1, shift 0)."""
    exponent = ctx.const(node.inputs[1])
    if exponent is None or exponent.size != 1:
        raise ctx.fail("only a constant scalar exponent is supported")
    ctx.emit("Power", node.inputs[:1], node.outputs, {"exponent": float(exponent.reshape(-1)[0])})


@converts("Elu", attrs=("alpha",))
def elu(ctx: Context, node: Node) -> None:
    ctx.emit("Elu", node.inputs, node.outputs, {"alpha": float(node.attr("alpha", 1.0))})


def _channel_slope(ctx: Context, node: Node, slope: np.ndarray) -> bool:
    """True if `slope` is one value per channel (axis 1) once broadcast against the input."""
    shape = ctx.shape(node.inputs[0])
    if len(shape) < 2 or slope.ndim > len(shape):
        return False
    aligned = (1,) * (len(shape) - slope.ndim) + slope.shape
    return aligned[1] == shape[1] and all(d == 1 for i, d in enumerate(aligned) if i != 1)


@converts("PRelu")
def prelu(ctx: Context, node: Node) -> None:
    slope = ctx.need_const(node.inputs[1], "the slope")
    if slope.size == 1:
        shared = 1
    elif _channel_slope(ctx, node, slope):
        shared = 0
    else:
        raise ctx.fail(f"slope of shape {list(slope.shape)} is not one value per channel")
    ctx.emit("PReLU", node.inputs[:1], node.outputs, {"channel_shared": shared, "has_filler": 0},
             {"slope": buffer(slope)})


@converts("LeakyRelu", attrs=("alpha",))
def leaky_relu(ctx: Context, node: Node) -> None:
    """A PReLU with one shared slope, as TNN's converter writes it."""
    slope = np.array([node.attr("alpha", 0.01)], np.float32)
    ctx.emit("PReLU", node.inputs, node.outputs, {"channel_shared": 1, "has_filler": 0},
             {"slope": buffer(slope)})


@converts("Clip", attrs=("min", "max"))
def clip(ctx: Context, node: Node) -> None:
    """Clip(0, 6) is ReLU6, anything else a Clip layer (TNN's converter's rule)."""
    bounds = clip_bounds(node, ctx.const)
    if bounds is None:
        raise ctx.fail("min and max must be constants")
    low, high = (max(min(b, FLT_MAX), -FLT_MAX) for b in bounds)
    if (low, high) == (0.0, 6.0):
        ctx.emit("ReLU6", node.inputs[:1], node.outputs)
    else:
        ctx.emit("Clip", node.inputs[:1], node.outputs, {"min": low, "max": high})


@converts("HardSigmoid", attrs=("alpha", "beta"))
def hard_sigmoid(ctx: Context, node: Node) -> None:
    ctx.emit("HardSigmoid", node.inputs, node.outputs,
             {"alpha": float(node.attr("alpha", 0.2)), "beta": float(node.attr("beta", 0.5))})


@converts("HardSwish")
@converts("HardSwish", attrs=("alpha", "beta"), domain=TNN_DOMAIN)
def hard_swish(ctx: Context, node: Node) -> None:
    """x * clip(alpha * x + beta, 0, 1); ONNX's op and our fusions' (any alpha, beta)."""
    ctx.emit("HardSwish", node.inputs, node.outputs,
             {"alpha": float(node.attr("alpha", 1 / 6)), "beta": float(node.attr("beta", 0.5))})
