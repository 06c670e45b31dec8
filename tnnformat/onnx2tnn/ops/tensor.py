"""Ops that move data: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Pad.

Axes are written non-negative (TNN's Flatten and Permute reject negative ones), and slice
bounds are clamped the way ONNX clamps them, because TNN's StridedSliceV2 does not clamp.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ...importer.context import Context
from ...importer.graph import TNN_DOMAIN, Node
from . import converts

INT_MIN = -(2 ** 31)
PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2}


def _ints(value) -> List[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def int_list_arg(ctx: Context, node: Node, attr: str, index: int) -> Optional[List[int]]:
    """An int list given as an attribute (older opsets) or as a constant input (newer)."""
    if attr in node.attrs:
        return _ints(node.attrs[attr])
    if len(node.inputs) > index and node.inputs[index]:
        return _ints(ctx.need_const(node.inputs[index], f"'{attr}'"))
    return None


@converts("Reshape", attrs=("allowzero",))
def reshape(ctx: Context, node: Node) -> None:
    """A target shape whose first dimension is the input's (the batch, at the size the graph
    was converted at) is written with 0 there, TNN's "keep this dimension": the literal batch
    an exporter folded in then follows whatever batch the model runs at."""
    shape = _ints(ctx.need_const(node.inputs[1], "the target shape"))
    if node.attr("allowzero", 0) and 0 in shape:
        raise ctx.fail("allowzero=1 with a 0 in the shape is not supported")
    source = ctx.shape(node.inputs[0])
    if shape and source and shape[0] == source[0] and -1 not in shape[:1]:
        shape = [0] + shape[1:]
    ctx.emit("Reshape", node.inputs[:1], node.outputs,
             dict(axis=0, num_axes=len(shape), shape=shape, reshape_type=0))


@converts("Flatten", attrs=("axis",))
def flatten(ctx: Context, node: Node) -> None:
    rank = ctx.rank(node.inputs[0])
    axis = int(node.attr("axis", 1))
    ctx.emit("Flatten", node.inputs, node.outputs,
             {"axis": rank if axis == rank else ctx.axis(axis, rank)})


@converts("Squeeze", attrs=("axes",))
def squeeze(ctx: Context, node: Node) -> None:
    shape = ctx.shape(node.inputs[0])
    axes = int_list_arg(ctx, node, "axes", 1)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    ctx.emit("Squeeze", node.inputs[:1], node.outputs,
             {"axes": sorted(ctx.axis(a, len(shape)) for a in axes)})


@converts("Unsqueeze", attrs=("axes",))
def unsqueeze(ctx: Context, node: Node) -> None:
    axes = int_list_arg(ctx, node, "axes", 1) or []
    rank = ctx.rank(node.outputs[0])
    ctx.emit("Unsqueeze", node.inputs[:1], node.outputs, {"axes": sorted(ctx.axis(a, rank) for a in axes)})


@converts("ShuffleChannel", attrs=("group",), domain=TNN_DOMAIN)
def shuffle_channel(ctx: Context, node: Node) -> None:
    ctx.emit("ShuffleChannel", node.inputs, node.outputs, {"group": int(node.attr("group"))})


@converts("Transpose", attrs=("perm",))
def transpose(ctx: Context, node: Node) -> None:
    rank = ctx.rank(node.inputs[0])
    perm = [int(p) for p in node.attr("perm", range(rank - 1, -1, -1))]
    ctx.emit("Permute", node.inputs, node.outputs, {"orders": perm})


@converts("Concat", attrs=("axis",))
def concat(ctx: Context, node: Node) -> None:
    inputs = [name for name in node.inputs if 0 not in ctx.shape(name)]  # TNN has no empty blobs
    axis = ctx.axis(int(node.attr("axis")), ctx.rank(node.outputs[0]))
    ctx.emit("Concat", inputs, node.outputs, {"axis": axis})


@converts("Split", attrs=("axis", "split", "num_outputs"))
def split(ctx: Context, node: Node) -> None:
    axis = ctx.axis(int(node.attr("axis", 0)), ctx.rank(node.inputs[0]))
    slices = [ctx.shape(name)[axis] for name in node.outputs]
    ctx.emit("SplitV", node.inputs[:1], node.outputs, {"axis": axis, "slices": slices})


def _slice_bounds(start: int, end: int, step: int, dim: int) -> Tuple[int, int]:
    """ONNX's clamped [start, end) of one sliced axis."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def _tnn_slice_size(begin: int, end: int, step: int) -> int:
    """The extent TNN's StridedSliceV2 computes (C division; INT_MIN end means -1)."""
    end = -1 if end == INT_MIN else end
    return int((end - begin + (-1 if step > 0 else 1)) / step) + 1


@converts("Slice", attrs=("starts", "ends", "axes"))
def slice_(ctx: Context, node: Node) -> None:
    shape = ctx.shape(node.inputs[0])
    starts = int_list_arg(ctx, node, "starts", 1) or []
    ends = int_list_arg(ctx, node, "ends", 2) or []
    axes = int_list_arg(ctx, node, "axes", 3) or list(range(len(starts)))
    steps = int_list_arg(ctx, node, "steps", 4) or [1] * len(starts)
    out_shape = ctx.shape(node.outputs[0])
    begins, stops, norm_axes = [], [], []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = ctx.axis(axis, len(shape))
        begin, stop = _slice_bounds(start, end, step, shape[axis])
        stop = INT_MIN if stop == -1 else stop
        if out_shape[axis] == 0 or _tnn_slice_size(begin, stop, step) != out_shape[axis]:
            raise ctx.fail(f"slicing axis {axis} to {out_shape[axis]} elements is not expressible in TNN")
        begins.append(begin)
        stops.append(stop)
        norm_axes.append(axis)
    ctx.emit("StridedSliceV2", node.inputs[:1], node.outputs,
             dict(begins=begins, ends=stops, axes=norm_axes, strides=list(steps)))


@converts("Pad", attrs=("mode", "pads", "value"))
def pad(ctx: Context, node: Node) -> None:
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise ctx.fail(f"pad mode '{mode}' is not supported")
    rank = ctx.rank(node.inputs[0])
    if rank != 4:
        raise ctx.fail("only 4-D (NCHW) inputs can be padded")
    given = int_list_arg(ctx, node, "pads", 1) or []
    axes = int_list_arg(ctx, node, "axes", 3)
    axes = list(range(rank)) if axes is None else [ctx.axis(a, rank) for a in axes]
    begins, ends = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begins[axis], ends[axis] = given[i], given[i + len(axes)]
    value = node.attr("value", 0.0)
    if len(node.inputs) > 2 and node.inputs[2]:
        value = float(np.asarray(ctx.need_const(node.inputs[2], "the pad value")).reshape(-1)[0])
    if begins[0] or ends[0] or min(begins + ends) < 0:
        raise ctx.fail("padding the batch axis, or negative pads, are not supported")
    if mode != "constant" and (begins[1] or ends[1]):
        raise ctx.fail(f"'{mode}' padding of the channel axis is not supported")
    ctx.emit("Pad", node.inputs[:1], node.outputs,
             dict(pad_t=begins[2], pad_b=ends[2], pad_l=begins[3], pad_r=ends[3],
                  pad_c_begin=begins[1], pad_c_end=ends[1], mode=PAD_MODES[mode], value=float(value)))
