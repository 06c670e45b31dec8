"""Operators that move data: RESHAPE, SQUEEZE, TRANSPOSE, CONCATENATION, SPLIT, PAD, PADV2,
STRIDED_SLICE, DEPTH_TO_SPACE, MEAN, SUM, SOFTMAX, RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR.

A reshape between ranks keeps TFLite's element order, which is NHWC's: a rank-4 source is
permuted to NHWC first and a rank-4 result is permuted back to NCHW (permutes that only move
dims of size 1 are left out).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...importer.context import Context
from ...importer.graph import Node
from ...importer.resize import emit_upsample
from ..layout import NCHW_AXIS, TO_NCHW, tnn_axis
from . import converts


def _ints(ctx: Context, name: str, what: str) -> List[int]:
    return [int(v) for v in np.asarray(ctx.need_const(name, what)).reshape(-1)]


def _moves_data(shape: Sequence[int], orders: Sequence[int]) -> bool:
    real = [axis for axis in orders if shape[axis] != 1]
    return real != sorted(real)


def _permute(ctx: Context, source: str, orders: Sequence[int], name: str) -> str:
    shape = ctx.shape(source)
    if not _moves_data(shape, orders):
        return source
    out = ctx.new_value(f"{source}_perm", tuple(shape[i] for i in orders))
    ctx.emit("Permute", [source], [out], {"orders": list(orders)}, name=name)
    return out


def _reshape(ctx: Context, source: str, out: str, shape: Sequence[int], name: str) -> None:
    """A Reshape to `shape`; a leading dim equal to the source's (the batch) is written 0,
    TNN's "keep this dim", so the model runs at any batch (as onnx2tnn writes it)."""
    shape = list(shape)
    if shape and ctx.shape(source) and shape[0] == ctx.shape(source)[0]:
        shape[0] = 0
    ctx.emit("Reshape", [source], [out], dict(axis=0, num_axes=len(shape), shape=shape,
                                              reshape_type=0), name=name)


def emit_reshape(ctx: Context, source: str, out: str, name: str) -> None:
    """`out` holds `source`'s elements in TFLite's (NHWC) order, at out's shape."""
    current = source
    if ctx.rank(source) == 4:
        current = _permute(ctx, source, NCHW_AXIS, f"{name}_to_nhwc")
    target = ctx.shape(out)
    if len(target) != 4 or not _moves_data(tuple(target[i] for i in NCHW_AXIS), TO_NCHW):
        _reshape(ctx, current, out, target, name)
        return
    nhwc = tuple(target[i] for i in NCHW_AXIS)
    flat = ctx.new_value(f"{out}_nhwc", nhwc)
    _reshape(ctx, current, flat, nhwc, name)
    ctx.emit("Permute", [flat], [out], {"orders": list(TO_NCHW)}, name=f"{name}_to_nchw")


@converts("RESHAPE", attrs=("new_shape",))
@converts("SQUEEZE", attrs=("squeeze_dims",))
def reshape(ctx: Context, node: Node) -> None:
    """The stored output shape is the target (shapes are static)."""
    emit_reshape(ctx, node.inputs[0], node.outputs[0], node.label)


def _axis(ctx: Context, axis: int, rank: int) -> int:
    try:
        return tnn_axis(axis, rank)
    except ValueError as exc:
        raise ctx.fail(str(exc)) from None


@converts("TRANSPOSE")
def transpose(ctx: Context, node: Node) -> None:
    perm = _ints(ctx, node.inputs[1], "the permutation")
    rank = ctx.rank(node.inputs[0])
    if sorted(perm) != list(range(rank)):
        raise ctx.fail(f"{perm} is not a permutation of {rank} axes")
    orders = [NCHW_AXIS[perm[TO_NCHW[i]]] for i in range(4)] if rank == 4 else perm
    ctx.emit("Permute", node.inputs[:1], node.outputs, {"orders": orders})


@converts("CONCATENATION", attrs=("axis", "fused_activation_function"))
def concat(ctx: Context, node: Node) -> None:
    if node.attr("fused_activation_function"):  # TFLite's float kernel ignores it: say so
        raise ctx.fail("a fused activation on CONCATENATION is not supported")
    axis = _axis(ctx, int(node.attr("axis", 0)), ctx.rank(node.outputs[0]))
    ctx.emit("Concat", node.inputs, node.outputs, {"axis": axis})


@converts("SPLIT", attrs=("num_splits",))
def split(ctx: Context, node: Node) -> None:
    """Inputs: the axis, then the tensor."""
    (axis,) = _ints(ctx, node.inputs[0], "the axis")[:1] or [0]
    axis = _axis(ctx, axis, ctx.rank(node.inputs[1]))
    slices = [ctx.shape(name)[axis] for name in node.outputs]
    ctx.emit("SplitV", node.inputs[1:2], node.outputs, {"axis": axis, "slices": slices})


@converts("PAD", "PADV2")
def pad(ctx: Context, node: Node) -> None:
    rank = ctx.rank(node.inputs[0])
    pads = np.asarray(ctx.need_const(node.inputs[1], "the paddings")).astype(np.int64)
    if rank != 4 or pads.shape != (4, 2):
        raise ctx.fail("only 4-D (NHWC) inputs with (4, 2) paddings are supported")
    (n, c, h, w) = [tuple(int(p) for p in pads[i]) for i in TO_NCHW]
    if any(n) or min(pads.reshape(-1)) < 0:
        raise ctx.fail("padding the batch axis, or negative pads, are not supported")
    value = 0.0
    if node.op_type == "PADV2" and len(node.inputs) > 2 and node.inputs[2]:
        value = float(np.asarray(ctx.need_const(node.inputs[2], "the pad value")).reshape(-1)[0])
    ctx.emit("Pad", node.inputs[:1], node.outputs,
             dict(pad_t=h[0], pad_b=h[1], pad_l=w[0], pad_r=w[1], pad_c_begin=c[0],
                  pad_c_end=c[1], mode=0, value=value))


@converts("MEAN", "SUM", attrs=("keep_dims",))
def reduce(ctx: Context, node: Node) -> None:
    """Reduced with kept dims in TNN's layout, then reshaped when TFLite drops them."""
    rank = ctx.rank(node.inputs[0])
    axes = sorted({_axis(ctx, a, rank) for a in _ints(ctx, node.inputs[1], "the axes")})
    tnn_type = "ReduceMean" if node.op_type == "MEAN" else "ReduceSum"
    params = {"keep_dims": 1, "axes": axes}
    if node.attr("keep_dims") or rank != 4:
        params["keep_dims"] = int(bool(node.attr("keep_dims")))
        ctx.emit(tnn_type, node.inputs[:1], node.outputs, params)
        return
    shape = tuple(1 if i in axes else d for i, d in enumerate(ctx.shape(node.inputs[0])))
    kept = ctx.new_value(f"{node.outputs[0]}_kept", shape)
    ctx.emit(tnn_type, node.inputs[:1], [kept], params)
    emit_reshape(ctx, kept, node.outputs[0], f"{node.label}_drop")


@converts("SOFTMAX", attrs=("beta",))
def softmax(ctx: Context, node: Node) -> None:
    if node.attr("beta", 1.0) != 1.0:
        raise ctx.fail(f"beta {node.attr('beta')} is not supported (only 1)")
    axis = _axis(ctx, -1, ctx.rank(node.inputs[0]))
    ctx.emit("SoftmaxCaffe", node.inputs[:1], node.outputs, {"axis": axis})


@converts("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", attrs=("align_corners", "half_pixel_centers"))
def resize(ctx: Context, node: Node) -> None:
    """TensorFlow's coordinate rules, in ONNX's names for importer.resize."""
    bilinear = node.op_type == "RESIZE_BILINEAR"
    if node.attr("align_corners"):
        rule, rounding = "align_corners", "round_prefer_ceil"
    elif node.attr("half_pixel_centers"):
        rule, rounding = ("half_pixel" if bilinear else "tf_half_pixel_for_nn"), "floor"
    else:
        rule, rounding = "asymmetric", "floor"
    emit_upsample(ctx, node.inputs[0], node.outputs[0], "linear" if bilinear else "nearest",
                  rule, rounding, None)


def _slice_range(ctx: Context, node: Node, axis: int, dim: int, begin: int, end: int,
                 stride: int) -> range:
    bit = 1 << axis
    if stride <= 0:
        raise ctx.fail("only positive strides are supported")
    if node.attr("offset"):
        end = begin + end
    if node.attr("shrink_axis_mask") & bit:
        begin = begin + dim if begin < 0 else begin
        return range(dim)[begin:begin + 1]
    start = None if node.attr("begin_mask") & bit else begin
    stop = None if node.attr("end_mask") & bit else end
    return range(dim)[start:stop:stride]


@converts("STRIDED_SLICE", attrs=("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                   "shrink_axis_mask", "offset"))
def strided_slice(ctx: Context, node: Node) -> None:
    if node.attr("ellipsis_mask") or node.attr("new_axis_mask"):
        raise ctx.fail("ellipsis and new-axis masks are not supported")
    source = node.inputs[0]
    shape = ctx.shape(source)
    file_shape = [shape[i] for i in NCHW_AXIS] if len(shape) == 4 else list(shape)
    begins, ends, strides = (_ints(ctx, name, what) for name, what in
                             zip(node.inputs[1:4], ("begin", "end", "strides")))
    if not len(begins) == len(ends) == len(strides) <= len(file_shape):
        raise ctx.fail("begin, end and strides must have one value per sliced axis")
    params = dict(begins=[], ends=[], axes=[], strides=[])
    sliced = list(shape)
    for axis, (begin, end, stride) in enumerate(zip(begins, ends, strides)):
        picked = _slice_range(ctx, node, axis, file_shape[axis], begin, end, stride)
        if not len(picked):
            raise ctx.fail(f"axis {axis} is sliced to nothing, which TNN cannot hold")
        tnn = _axis(ctx, axis, len(shape))
        params["begins"].append(picked.start)
        params["ends"].append(picked[-1] + 1)
        params["axes"].append(tnn)
        params["strides"].append(picked.step)
        sliced[tnn] = len(picked)
    out = node.outputs[0]
    if tuple(sliced) == ctx.shape(out):
        ctx.emit("StridedSliceV2", [source], [out], params)
        return
    kept = ctx.new_value(f"{out}_unshrunk", tuple(sliced))
    ctx.emit("StridedSliceV2", [source], [kept], params)
    emit_reshape(ctx, kept, out, f"{node.label}_shrink")


@converts("DEPTH_TO_SPACE", attrs=("block_size",))
def depth_to_space(ctx: Context, node: Node) -> None:
    """NHWC's out[n, h*b + i, w*b + j, c] = in[n, h, w, (i*b + j)*C + c], in NCHW: channels
    split to (b, b, C), moved beside H and W, merged."""
    b = int(node.attr("block_size", 0))
    n, c, h, w = ctx.shape(node.inputs[0])
    if b < 1 or c % (b * b):
        raise ctx.fail(f"block size {b} does not divide {c} channels")
    out_c = c // (b * b)
    split_shape = (n, b, b, out_c, h, w)
    moved_shape = (n, out_c, h, b, w, b)
    split_value = ctx.new_value(f"{node.outputs[0]}_blocks", split_shape)
    moved = ctx.new_value(f"{node.outputs[0]}_moved", moved_shape)
    _reshape(ctx, node.inputs[0], split_value, split_shape, f"{node.label}_split")
    ctx.emit("Permute", [split_value], [moved], {"orders": [0, 3, 4, 1, 5, 2]},
             name=f"{node.label}_move")
    _reshape(ctx, moved, node.outputs[0], ctx.shape(node.outputs[0]), node.label)


@converts("DEQUANTIZE")
def dequantize(ctx: Context, node: Node) -> None:
    raise ctx.fail("only constant tensors can be dequantized (this one is computed)")
