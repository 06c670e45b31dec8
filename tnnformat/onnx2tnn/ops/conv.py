"""Conv -> Convolution, ConvTranspose -> Deconvolution (2-D, constant weights)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ...importer.builders import conv_params, conv_resource, emit_spatial_pad
from ...importer.context import Context, buffer
from ...importer.graph import Node
from ...importer.spatial import Axis, first_match, onnx_pads, tnn_conv, tnn_deconv
from . import converts

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _window(ctx: Context, node: Node, weight: np.ndarray):
    """kernel, strides, dilations of a 2-D window node, checked against its weight."""
    if ctx.rank(node.inputs[0]) != 4 or weight.ndim != 4:
        raise ctx.fail("only 2-D convolutions (NCHW input, 4-D weight) are supported")
    kernel = list(node.attr("kernel_shape", weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        raise ctx.fail(f"kernel_shape {kernel} does not match the weight's {list(weight.shape[2:])}")
    strides = list(node.attr("strides", [1, 1]))
    dilations = list(node.attr("dilations", [1, 1]))
    return kernel, strides, dilations


def _axes(ctx: Context, node: Node, kernel, strides, dilations,
          pads: Sequence[Tuple[int, int]]) -> List[Axis]:
    sizes, outs = ctx.shape(node.inputs[0])[2:], ctx.shape(node.outputs[0])[2:]
    return [Axis(size, dilation * (k - 1) + 1, stride, begin, end, out)
            for size, k, stride, dilation, (begin, end), out
            in zip(sizes, kernel, strides, dilations, pads, outs)]


def _preferred(auto_pad: str, pads: Sequence[Tuple[int, int]]) -> List[Tuple[int, int, int]]:
    """The pad type TNN's converter writes for these ONNX pads."""
    begins = tuple(b for b, _ in pads)
    if auto_pad == "SAME_UPPER":
        return [(0, 0, 0)]
    if auto_pad == "VALID":
        return [(1, 0, 0)]
    if all(b == e for b, e in pads):
        return [(-1, *begins)]
    if all(b <= e for b, e in pads):
        return [(0, *begins)]
    return []


@converts("Conv", attrs=CONV_ATTRS)
def conv(ctx: Context, node: Node) -> None:
    weight = ctx.need_const(node.inputs[1], "the weight")
    bias = ctx.need_const(node.inputs[2], "the bias") if len(node.inputs) > 2 and node.inputs[2] else None
    kernel, strides, dilations = _window(ctx, node, weight)
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    auto_pad = node.attr("auto_pad", "NOTSET")
    pads = onnx_pads(auto_pad, node.attr("pads", []), ctx.shape(node.inputs[0])[2:], extents,
                     strides, ctx.shape(node.outputs[0])[2:])
    axes = _axes(ctx, node, kernel, strides, dilations, pads)
    begins = tuple(b for b, _ in pads)
    source = node.inputs[0]
    choice = first_match(axes, _preferred(auto_pad, pads) + [(-1, *begins)], tnn_conv)
    if choice is None:  # pads TNN cannot express: pad explicitly, then convolve unpadded
        source = emit_spatial_pad(ctx, source, pads, 0.0)
        choice = (-1, 0, 0)
    group = int(node.attr("group", 1))
    params = conv_params(kernel, strides, dilations, group, weight.shape[1],
                          weight.shape[0], bias is not None, choice)
    ctx.emit("Convolution", [source], node.outputs[:1], params, conv_resource(weight, bias))


def _deconv_pads(ctx: Context, node: Node, extents, strides) -> List[Tuple[int, int]]:
    """(begin, end) crop per axis of ConvTranspose, as the ONNX spec resolves it."""
    sizes, outs = ctx.shape(node.inputs[0])[2:], ctx.shape(node.outputs[0])[2:]
    auto_pad = node.attr("auto_pad", "NOTSET")
    output_padding = list(node.attr("output_padding", [0, 0]))
    if auto_pad == "NOTSET" and node.attr("output_shape") is None:
        pads = list(node.attr("pads", [0, 0, 0, 0]))
        return [(pads[0], pads[2]), (pads[1], pads[3])]
    result = []
    for size, extent, stride, extra, out in zip(sizes, extents, strides, output_padding, outs):
        total = stride * (size - 1) + extra + extent - out
        half = total // 2
        result.append((half, total - half) if auto_pad == "SAME_UPPER" else (total - half, half))
    return result


@converts("ConvTranspose", attrs=CONV_ATTRS + ("output_padding", "output_shape"))
def conv_transpose(ctx: Context, node: Node) -> None:
    weight = ctx.need_const(node.inputs[1], "the weight")
    bias = ctx.need_const(node.inputs[2], "the bias") if len(node.inputs) > 2 and node.inputs[2] else None
    kernel, strides, dilations = _window(ctx, node, weight)
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    pads = _deconv_pads(ctx, node, extents, strides)
    axes = _axes(ctx, node, kernel, strides, dilations, pads)
    begins = tuple(b for b, _ in pads)
    auto_pad = node.attr("auto_pad", "NOTSET")
    preferred = [(3, *begins)] if any(node.attr("output_padding", [0, 0])) else []
    candidates = preferred + _preferred(auto_pad, pads) + [(-1, *begins), (3, *begins), (0, *begins)]
    choice = first_match(axes, candidates, tnn_deconv)
    group = int(node.attr("group", 1))
    channels = (weight.shape[0] // group, weight.shape[1] * group)
    if choice is not None:
        params = conv_params(kernel, strides, dilations, group, *channels, bias is not None, choice)
        ctx.emit("Deconvolution", [node.inputs[0]], node.outputs[:1], params, conv_resource(weight, bias))
        return
    # No pad type fits: the full transposed convolution, then ONNX's window of it.
    n, _, h, w = ctx.shape(node.inputs[0])
    full = ctx.new_value(f"{node.outputs[0]}_full",
                         (n, channels[1], *[(size - 1) * s + e for size, s, e in zip((h, w), strides, extents)]))
    params = conv_params(kernel, strides, dilations, group, *channels, False, (-1, 0, 0))
    ctx.emit("Deconvolution", [node.inputs[0]], [full], params, conv_resource(weight, None))
    _window_of(ctx, node, full, begins, bias)


def _window_of(ctx: Context, node: Node, full: str, begins: Sequence[int], bias) -> None:
    """Cut [begin, begin + out) out of `full` per spatial axis, zeros where it reaches past
    either end (ONNX's output_padding and output_shape), then add the bias."""
    n, c, *sizes = ctx.shape(full)
    outs = ctx.shape(node.outputs[0])[2:]
    crop = [(max(b, 0), min(size, b + out)) for b, size, out in zip(begins, sizes, outs)]
    fill = [(max(-b, 0), max(b + out - size, 0)) for b, size, out in zip(begins, sizes, outs)]
    steps = [step for step, needed in (("crop", crop != [(0, size) for size in sizes]),
                                       ("fill", any(map(any, fill))), ("bias", bias is not None)) if needed]
    current, label = full, node.label
    for index, step in enumerate(steps):
        shape = (n, c, *([e - b for b, e in crop] if step == "crop" else outs))
        out = node.outputs[0] if index == len(steps) - 1 else ctx.new_value(f"{full}_{step}", shape)
        if step == "crop":
            ctx.emit("StridedSliceV2", [current], [out], dict(
                begins=[b for b, _ in crop], ends=[e for _, e in crop], axes=[2, 3], strides=[1, 1]),
                name=f"{label}_crop")
        elif step == "fill":
            emit_spatial_pad(ctx, current, fill, 0.0, out)
        else:
            ctx.emit("Add", [current], [out], {"weight_input_index": 1},
                     {"element": buffer(np.asarray(bias).reshape(1, -1, 1, 1))}, name=f"{label}_bias")
        current = out
