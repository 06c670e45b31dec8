"""CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, AVERAGE/MAX_POOL_2D.

Weights arrive in TNN's layout (rank-4 constants were made NCHW when read): a CONV_2D filter
(O, H, W, I) is then (O, I, H, W), TNN's; a depthwise filter (1, H, W, C*M) is (1, C*M, H, W)
and is reshaped to (C*M, 1, H, W); a TRANSPOSE_CONV filter (O, H, W, I) is (O, I, H, W) and is
swapped to TNN's Deconvolution (I, O, H, W). SAME pads like ONNX's SAME_UPPER, VALID none.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ...importer.builders import (AVERAGE_POOL, MAX_POOL, conv_params, conv_resource,
                                  emit_inner_product, emit_spatial_pad, pool_params)
from ...importer.context import Context
from ...importer.graph import Node
from ...importer.spatial import Axis, first_match, onnx_pads, tnn_conv, tnn_deconv, tnn_pool
from ...layer_types import FLT_MAX
from . import converts, with_activation
from .tensor import emit_reshape

PADDING = {0: "SAME_UPPER", 1: "VALID"}
CONV_OPTIONS = ("padding", "stride_w", "stride_h", "fused_activation_function", "dilation_w",
                "dilation_h")


def _axes(ctx: Context, node: Node, source: str, kernel: Sequence[int],
          dilations: Sequence[int]) -> Tuple[List[Axis], List[Tuple[int, int]]]:
    """The spatial axes of a window op and its (begin, end) pads."""
    padding = PADDING.get(int(node.attr("padding", 0)))
    if padding is None:
        raise ctx.fail(f"padding {node.attr('padding')} is not SAME or VALID")
    strides = [int(node.attr("stride_h", 1)), int(node.attr("stride_w", 1))]
    if min(strides) < 1 or min(dilations) < 1:
        raise ctx.fail("strides and dilations must be positive")
    sizes, outs = ctx.shape(source)[2:], ctx.shape(node.outputs[0])[2:]
    if len(outs) != len(sizes):
        raise ctx.fail(f"output of shape {list(ctx.shape(node.outputs[0]))} for an input of shape "
                       f"{list(ctx.shape(source))}")
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    pads = onnx_pads(padding, [], sizes, extents, strides, outs)
    axes = [Axis(size, extent, stride, begin, end, out)
            for size, extent, stride, (begin, end), out in zip(sizes, extents, strides, pads, outs)]
    return axes, pads


def _candidates(node: Node, pads: Sequence[Tuple[int, int]], ceil: Tuple[int, ...] = ()) -> list:
    preferred = (0, 0, 0) if int(node.attr("padding", 0)) == 0 else (1, 0, 0)
    return [preferred + ceil, (-1, *(b for b, _ in pads)) + ceil]


def _bias(ctx: Context, node: Node, index: int, channels: int) -> np.ndarray:
    if len(node.inputs) > index and node.inputs[index]:
        return ctx.need_const(node.inputs[index], "the bias").reshape(-1).astype(np.float32)
    return np.zeros(channels, np.float32)


def _conv(ctx: Context, node: Node, weight: np.ndarray, group: int) -> None:
    source = node.inputs[0]
    if ctx.rank(source) != 4:
        raise ctx.fail("only 4-D (NHWC) inputs are supported")
    dilations = [int(node.attr("dilation_h", 1)), int(node.attr("dilation_w", 1))]
    kernel = list(weight.shape[2:])
    axes, pads = _axes(ctx, node, source, kernel, dilations)
    bias = _bias(ctx, node, 2, weight.shape[0])
    choice = first_match(axes, _candidates(node, pads), tnn_conv)

    def emit(out: str) -> None:
        padded, picked = source, choice
        if picked is None:  # pads TNN cannot express: pad explicitly, then convolve unpadded
            padded, picked = emit_spatial_pad(ctx, source, pads, 0.0), (-1, 0, 0)
        params = conv_params(kernel, [a.stride for a in axes], dilations, group,
                             weight.shape[1] * group, weight.shape[0], True, picked)
        ctx.emit("Convolution", [padded], [out], params, conv_resource(weight, bias))

    with_activation(ctx, node, emit)


def _input_channels(ctx: Context, node: Node) -> int:
    """Channels of a convolution's image input, which must be 4-D."""
    if ctx.rank(node.inputs[0]) != 4:
        raise ctx.fail(f"input of shape {list(ctx.shape(node.inputs[0]))}: a convolution takes a 4-D image")
    return ctx.shape(node.inputs[0])[1]


@converts("CONV_2D", attrs=CONV_OPTIONS)
def conv2d(ctx: Context, node: Node) -> None:
    weight = ctx.need_const(node.inputs[1], "the filter").astype(np.float32)
    in_channels = _input_channels(ctx, node)
    if weight.ndim != 4 or weight.shape[1] == 0 or in_channels % weight.shape[1]:
        raise ctx.fail(f"filter of shape {list(weight.shape)} does not fit {in_channels} channels")
    _conv(ctx, node, weight, in_channels // weight.shape[1])


@converts("DEPTHWISE_CONV_2D", attrs=CONV_OPTIONS + ("depth_multiplier",))
def depthwise(ctx: Context, node: Node) -> None:
    weight = ctx.need_const(node.inputs[1], "the filter").astype(np.float32)
    in_channels = _input_channels(ctx, node)
    if weight.ndim != 4 or weight.shape[0] != 1 or in_channels == 0 or weight.shape[1] % in_channels:
        raise ctx.fail(f"filter of shape {list(weight.shape)} does not fit {in_channels} channels")
    _conv(ctx, node, weight.reshape(weight.shape[1], 1, *weight.shape[2:]), in_channels)


@converts("TRANSPOSE_CONV", attrs=("padding", "stride_w", "stride_h", "fused_activation_function"))
def transpose_conv(ctx: Context, node: Node) -> None:
    """Inputs: output shape, filter, input, optional bias."""
    weight = ctx.need_const(node.inputs[1], "the filter").astype(np.float32)
    source = node.inputs[2]
    if weight.ndim != 4 or ctx.rank(source) != 4 or weight.shape[1] != ctx.shape(source)[1]:
        raise ctx.fail(f"filter of shape {list(weight.shape)} does not fit the input")
    weight = np.ascontiguousarray(weight.transpose(1, 0, 2, 3))
    kernel = list(weight.shape[2:])
    strides = [int(node.attr("stride_h", 1)), int(node.attr("stride_w", 1))]
    sizes, outs = ctx.shape(source)[2:], ctx.shape(node.outputs[0])[2:]
    if min(strides) < 1:
        raise ctx.fail("strides must be positive")
    totals = [max((size - 1) * s + k - out, 0) for size, s, k, out in zip(sizes, strides, kernel, outs)]
    axes = [Axis(size, k, s, total // 2, total - total // 2, out)
            for size, k, s, total, out in zip(sizes, kernel, strides, totals, outs)]
    begins = tuple(a.begin for a in axes)
    preferred = (0,) if int(node.attr("padding", 0)) == 0 else (1,)
    choice = first_match(axes, [preferred + begins, (-1, *begins), (3, *begins)], tnn_deconv)
    if choice is None:
        raise ctx.fail("its output size and padding have no TNN Deconvolution pad type")
    bias = _bias(ctx, node, 3, weight.shape[1])
    params = conv_params(kernel, strides, [1, 1], 1, weight.shape[0], weight.shape[1], True, choice)
    with_activation(ctx, node, lambda out: ctx.emit("Deconvolution", [source], [out], params,
                                                    conv_resource(weight, bias)))


@converts("FULLY_CONNECTED", attrs=("fused_activation_function", "weights_format", "keep_num_dims"))
def fully_connected(ctx: Context, node: Node) -> None:
    """out = x @ W.T + b over the last axis; x is first flattened to (-1, K) in NHWC order."""
    if int(node.attr("weights_format", 0)):
        raise ctx.fail("shuffled weights are not supported")
    weight = ctx.need_const(node.inputs[1], "the weights").astype(np.float32)
    out_shape = ctx.shape(node.outputs[0])
    if weight.ndim != 2 or len(out_shape) != 2:
        raise ctx.fail("only 2-D weights and outputs are supported")
    source = node.inputs[0]
    rows = out_shape[0]
    if ctx.shape(source) != (rows, weight.shape[1]):
        flat = ctx.new_value(f"{source}_2d", (rows, weight.shape[1]))
        emit_reshape(ctx, source, flat, f"{node.label}_flatten")
        source = flat
    bias = _bias(ctx, node, 2, weight.shape[0])
    with_activation(ctx, node, lambda out: emit_inner_product(ctx, source, out, weight, bias))


@converts("AVERAGE_POOL_2D", "MAX_POOL_2D",
          attrs=("padding", "stride_w", "stride_h", "filter_w", "filter_h", "fused_activation_function"))
def pool(ctx: Context, node: Node) -> None:
    """TFLite's average pooling divides by the window clipped to the input, as TNN's does."""
    source = node.inputs[0]
    if ctx.rank(source) != 4:
        raise ctx.fail("only 4-D (NHWC) inputs are supported")
    kernel = [int(node.attr("filter_h", 0)), int(node.attr("filter_w", 0))]
    if min(kernel) < 1:
        raise ctx.fail(f"filter {kernel} is not positive")
    axes, pads = _axes(ctx, node, source, kernel, [1, 1])
    pool_type = MAX_POOL if node.op_type == "MAX_POOL_2D" else AVERAGE_POOL
    choice = first_match(axes, _candidates(node, pads, (0,)) + [(-1, *(b for b, _ in pads), 1)], tnn_pool)
    if choice is None and pool_type == MAX_POOL:
        source = emit_spatial_pad(ctx, source, pads, -FLT_MAX)
        choice = (-1, 0, 0, 0)
    if choice is None:
        raise ctx.fail("its padding has no TNN Pooling pad type")
    params = pool_params(pool_type, kernel, [a.stride for a in axes], choice)
    with_activation(ctx, node, lambda out: ctx.emit("Pooling", [source], [out], params))
