"""Normalizations and reductions: BatchNormalization, LRN, Softmax, Reduce*."""
from __future__ import annotations

import math


from ...importer.context import Context, buffer
from ...importer.fusions import bn_scale_bias, inference_only
from ...importer.graph import Node
from . import converts
from .tensor import int_list_arg

BN_ATTRS = ("epsilon", "momentum", "spatial", "training_mode", "is_test")


@converts("BatchNormalization", attrs=BN_ATTRS)
def batch_norm(ctx: Context, node: Node) -> None:
    """A BatchNormalization no Conv absorbed: BatchNormCxx, y = x * scale + bias per channel."""
    problem = inference_only(node)
    if problem:
        raise ctx.fail(problem)
    for name in node.inputs[1:5]:
        ctx.need_const(name, f"'{name}'")
    scale, bias = bn_scale_bias(node, ctx.const)
    ctx.emit("BatchNormCxx", node.inputs[:1], node.outputs[:1], resource={
        "scale": buffer(scale), "bias": buffer(bias)})


@converts("LRN", attrs=("alpha", "beta", "bias", "size"))
def lrn(ctx: Context, node: Node) -> None:
    size = int(node.attr("size"))
    if size % 2 == 0:
        raise ctx.fail("an even size is not supported (TNN centres the window differently)")
    ctx.emit("LRN", node.inputs, node.outputs, dict(
        alpha=float(node.attr("alpha", 1e-4)), beta=float(node.attr("beta", 0.75)),
        bias=float(node.attr("bias", 1.0)), size=size))


@converts("Softmax", attrs=("axis",))
def softmax(ctx: Context, node: Node) -> None:
    """SoftmaxCaffe over one axis. Before opset 13 ONNX normalizes over all axes from `axis`
    on; that is one axis when the later ones are 1, else a Reshape to 2-D around it."""
    shape = ctx.shape(node.inputs[0])
    legacy = ctx.graph.opset < 13
    axis = ctx.axis(int(node.attr("axis", 1 if legacy else -1)), len(shape))
    if not legacy or math.prod(shape[axis + 1:]) == 1:
        ctx.emit("SoftmaxCaffe", node.inputs, node.outputs, {"axis": axis})
        return
    flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    label, x, y = node.label, node.inputs[0], node.outputs[0]
    before, after = ctx.new_value(f"{x}_2d", flat), ctx.new_value(f"{y}_2d", flat)
    ctx.emit("Reshape", [x], [before], dict(axis=0, num_axes=2, shape=list(flat), reshape_type=0),
             name=f"{label}_flatten")
    ctx.emit("SoftmaxCaffe", [before], [after], {"axis": 1})
    ctx.emit("Reshape", [after], [y], dict(axis=0, num_axes=len(shape), shape=list(shape),
                                           reshape_type=0), name=f"{label}_restore")


REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


@converts(*REDUCTIONS, attrs=("axes", "keepdims", "noop_with_empty_axes"))
def reduce(ctx: Context, node: Node) -> None:
    """Reductions keep their names in TNN; axes are listed, all of them for an empty list."""
    rank = ctx.rank(node.inputs[0])
    axes = int_list_arg(ctx, node, "axes", 1) or []
    if not axes and node.attr("noop_with_empty_axes", 0):
        raise ctx.fail("noop_with_empty_axes=1 without axes is not supported")
    axes = sorted(ctx.axis(a, rank) for a in axes) if axes else list(range(rank))
    ctx.emit(node.op_type, node.inputs[:1], node.outputs,
             {"keep_dims": int(node.attr("keepdims", 1)), "axes": axes})
