"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> Pooling (2-D).

TNN's average pooling divides by the window clipped to the input (ONNX count_include_pad=0);
count_include_pad=1 becomes an explicit zero Pad before an unpadded pooling. Max pooling
whose pads no TNN pad type reproduces is padded explicitly with -FLT_MAX; a single window
over the whole input is written as TNN's global pooling.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from ...importer.builders import AVERAGE_POOL, MAX_POOL, emit_spatial_pad, pool_params
from ...importer.context import Context
from ...importer.graph import Node
from ...importer.spatial import Axis, first_match, onnx_pads, onnx_pool_out, tnn_pool
from ...layer_types import FLT_MAX
from . import converts

POOL_ATTRS = ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides")


def _candidates(auto_pad: str, pads: Sequence[Tuple[int, int]], ceil_mode: int) -> List[tuple]:
    """TNN's converter's choice first, then the explicit pad type with either rounding."""
    begins = tuple(b for b, _ in pads)
    preferred: List[tuple] = []
    if auto_pad == "SAME_UPPER":
        preferred = [(0, 0, 0, ceil_mode)]
    elif auto_pad == "VALID":
        preferred = [(1, 0, 0, ceil_mode)]
    elif all(b == e for b, e in pads):
        preferred = [(-1, *begins, ceil_mode)]
    elif all(b <= e for b, e in pads):
        preferred = [(0, *begins, ceil_mode)]
    return preferred + [(-1, *begins, 0), (-1, *begins, 1)]


@converts("MaxPool", "AveragePool", attrs=POOL_ATTRS + ("count_include_pad", "storage_order"))
def pool(ctx: Context, node: Node) -> None:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise ctx.fail("the Indices output is not supported")
    if ctx.rank(node.inputs[0]) != 4:
        raise ctx.fail("only 2-D pooling (NCHW input) is supported")
    kernel = list(node.attr("kernel_shape"))
    strides = list(node.attr("strides", [1, 1]))
    if any(d != 1 for d in node.attr("dilations", [1, 1])):
        raise ctx.fail("dilated pooling is not supported")
    pool_type = MAX_POOL if node.op_type == "MaxPool" else AVERAGE_POOL
    sizes, outs = ctx.shape(node.inputs[0])[2:], ctx.shape(node.outputs[0])[2:]
    auto_pad, ceil_mode = node.attr("auto_pad", "NOTSET"), int(node.attr("ceil_mode", 0))
    pads = onnx_pads(auto_pad, node.attr("pads", []), sizes, kernel, strides, outs)
    if auto_pad in ("NOTSET", "VALID") and list(outs) != [onnx_pool_out(size, k, s, b, e, ceil_mode) for
                                               size, k, s, (b, e) in zip(sizes, kernel, strides, pads)]:
        raise ctx.fail("ceil_mode=1 drops a last window on one axis only, which TNN cannot express")
    source = node.inputs[0]
    if pool_type == AVERAGE_POOL and node.attr("count_include_pad", 0) and any(map(any, pads)):
        source = emit_spatial_pad(ctx, source, pads, 0.0)  # padding zeros count in the mean
        pads = [(0, 0), (0, 0)]
        sizes = ctx.shape(source)[2:]
    axes = [Axis(size, k, s, b, e, out) for size, k, s, (b, e), out in zip(sizes, kernel, strides, pads, outs)]
    if all(a.out == 1 and a.begin <= 0 and a.kernel - a.begin >= a.size for a in axes):
        choice = (-1, 0, 0, 0)  # one window over the whole input: global pooling
        kernel = [0, 0]
    else:
        choice = first_match(axes, _candidates(auto_pad, pads, ceil_mode), tnn_pool)
    if choice is None and pool_type == MAX_POOL:  # pad with -FLT_MAX, pool unpadded
        source = emit_spatial_pad(ctx, source, pads, -FLT_MAX)
        axes = [Axis(size + b + e, k, s, 0, 0, out) for size, k, s, (b, e), out
                in zip(sizes, kernel, strides, pads, outs)]
        choice = first_match(axes, _candidates("NOTSET", [(0, 0), (0, 0)], ceil_mode), tnn_pool)
    if choice is None:
        raise ctx.fail(f"pads {[list(p) for p in pads]} with ceil_mode {ceil_mode} give an "
                       "output TNN's Pooling cannot reproduce")
    ctx.emit("Pooling", [source], node.outputs[:1], pool_params(pool_type, kernel, strides, choice))


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: Context, node: Node) -> None:
    if ctx.rank(node.inputs[0]) != 4:
        raise ctx.fail("only 2-D global pooling (NCHW input) is supported")
    pool_type = AVERAGE_POOL if node.op_type == "GlobalAveragePool" else MAX_POOL
    ctx.emit("Pooling", node.inputs, node.outputs, pool_params(pool_type, [0, 0], [1, 1], (-1, 0, 0, 0)))
