"""Convolution and Deconvolution (TNN's cpu_conv/cpu_deconv and layer shape rules).

Convolutions are one BLAS matrix product per group over im2col columns (1x1 stride-1
convolutions skip im2col); depthwise convolutions are a multiply-add per kernel offset over
whole tensors. Deconvolution is a matrix product followed by col2im, one add per offset.
A quantized convolution runs the same convolution on exact integers: in float32 where no sum
can reach 2**24 (most layers; BLAS's fast path), else in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tnnformat import BlobScale, Layer, Resource

from ..errors import KernelError
from ..int8 import accumulator_dtype, centered_input, channel_values, requant_multiplier, requantized
from ..registry import Kernel, float_buffer, register
from ..rounding import float2int8, relu_float2int8
from ..tnn_optimizer import CONV_ACTIVATION_ADD, CONV_ADD_ACTIVATION, RELU, RELU6, SIGMOID_MUL
from .activation import relu


def activate(y: np.ndarray, kind: int, layer: Layer) -> np.ndarray:
    """TNN's activation fused into a convolution (ActivationType)."""
    if kind == 0:
        return y
    if kind == RELU:
        return relu(y, out=y)
    if kind == RELU6:
        return np.clip(y, 0, 6, out=y)
    if kind == SIGMOID_MUL:
        return y * (1 / (1 + np.exp(-y)))
    raise KernelError(f"layer '{layer.name}': unsupported activation_type {kind}")


def _extent(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


def conv_pads(p: dict, height: int, width: int) -> Tuple[int, int, int, int, int, int]:
    """(out_h, out_w, pad_top, pad_bottom, pad_left, pad_right) by TNN's conv shape rule."""
    ext_h, ext_w = _extent(p["kernel_h"], p["dilation_h"]), _extent(p["kernel_w"], p["dilation_w"])
    sh, sw = p["stride_h"], p["stride_w"]
    pad_type = p["pad_type"]
    if pad_type == -1:
        top = bottom = p["pad_h"]
        left = right = p["pad_w"]
        return ((height + 2 * top - ext_h) // sh + 1, (width + 2 * left - ext_w) // sw + 1,
                top, bottom, left, right)
    if pad_type == 0:  # SAME
        out_h, out_w = math.ceil(height / sh), math.ceil(width / sw)
    elif pad_type == 1:  # VALID
        out_h, out_w = math.ceil((height - ext_h + 1) / sh), math.ceil((width - ext_w + 1) / sw)
    else:
        raise ValueError(f"pad_type {pad_type} is not supported by convolutions")
    along_h = (out_h - 1) * sh + ext_h - height
    along_w = (out_w - 1) * sw + ext_w - width
    top, left = int(along_h / 2), int(along_w / 2)  # C++ division truncates toward zero
    return out_h, out_w, top, max(along_h - top, 0), left, max(along_w - left, 0)


def _padded(x: np.ndarray, top: int, bottom: int, left: int, right: int, channels_last: bool = False) -> np.ndarray:
    """x (NCHW, or NHWC with `channels_last`) with zeros around its planes; negative pads
    (VALID with more input than needed) crop."""
    if top == bottom == left == right == 0:
        return x
    lead = (slice(None),) * (1 if channels_last else 2)  # the axes before the plane's rows
    h, w = x.shape[len(lead)], x.shape[len(lead) + 1]
    x = x[lead + (slice(max(-top, 0), h - max(-bottom, 0)), slice(max(-left, 0), w - max(-right, 0)))]
    top, bottom, left, right = max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
    h, w = x.shape[len(lead)], x.shape[len(lead) + 1]
    shape = list(x.shape)
    shape[len(lead)] += top + bottom
    shape[len(lead) + 1] += left + right
    out = np.empty(shape, x.dtype)  # np.pad costs 3x this
    rows = slice(top, top + h)
    out[lead + (slice(0, top),)], out[lead + (slice(top + h, None),)] = 0, 0
    out[lead + (rows, slice(0, left))], out[lead + (rows, slice(left + w, None))] = 0, 0
    out[lead + (rows, slice(left, left + w))] = x
    return out


@dataclass
class ConvWeights:
    """A filter arranged for the computation, in the dtype the computation runs in, with the
    bias (if any) where the computation adds it: as a last column of the rows when the rows
    multiply im2col columns (the columns get a row of ones, and BLAS adds the bias for free),
    else as a vector added after the product."""

    rows: List[np.ndarray]  # per group: (out_per_group, in_per_group * kh * kw [+ 1 for the bias])
    in_per_group: int
    depthwise: Optional[np.ndarray]  # (channels, kh, kw) when every group has one input channel
    bias: Optional[np.ndarray] = None  # (out,) unless it is a column of the rows
    bias_column: bool = False

    @property
    def dtype(self) -> np.dtype:
        """The dtype the convolution runs in."""
        return (self.rows[0] if self.depthwise is None else self.depthwise).dtype


def _uses_im2col(p: dict) -> bool:
    return not (p["kernel_h"] == p["kernel_w"] == 1 and p["stride_h"] == p["stride_w"] == 1)


def arrange_filter(weights: np.ndarray, layer: Layer, bias: Optional[np.ndarray] = None) -> ConvWeights:
    """`weights` (any shape holding out x in_per_group x kh x kw values) and the optional
    bias (one per output channel) for `convolve`."""
    p = layer.params
    out, group = p["output_channel"], p["group"]
    if group <= 0 or out % group:
        raise KernelError(f"layer '{layer.name}': {out} output channels in {group} groups")
    kernel = p["kernel_h"] * p["kernel_w"]
    if weights.size % (out * kernel):
        raise KernelError(f"layer '{layer.name}': filter of {weights.size} values does not fit "
                          f"{out} outputs and a {p['kernel_h']}x{p['kernel_w']} kernel")
    in_per_group = weights.size // (out * kernel)
    if bias is not None and bias.size != out:
        raise KernelError(f"layer '{layer.name}': {bias.size} bias values for {out} output channels")
    if in_per_group == 1 and out == group:
        return ConvWeights([], 1, weights.reshape(out, p["kernel_h"], p["kernel_w"]), bias)
    w = weights.reshape(group, out // group, in_per_group * kernel)
    if bias is not None and _uses_im2col(p):
        w = np.concatenate([w, bias.reshape(group, out // group, 1).astype(w.dtype)], axis=2)
        return ConvWeights([np.ascontiguousarray(g) for g in w], in_per_group, None, None, True)
    return ConvWeights([np.ascontiguousarray(g) for g in w], in_per_group, None, bias)


#: Values per block of a depthwise convolution: its output and product stay in the L2 cache.
DEPTHWISE_BLOCK = 1 << 16
#: Input planes up to this many pixels are convolved channels-last (see _depthwise).
CHANNELS_LAST_PLANE = 28 * 28

Pads = Tuple[int, int, int, int]


def _depthwise(x: np.ndarray, filt: np.ndarray, pads: Pads, out: Tuple[int, int], stride: Tuple[int, int],
               dilation: Tuple[int, int]) -> np.ndarray:
    """The depthwise convolution of NCHW `x` by `filt` (channels, kh, kw), padded by `pads`
    (top, bottom, left, right), as (n, channels, out_h, out_w): the same products added in the
    same order by either layout. Large planes run plane by plane (long contiguous rows); small
    ones, and their stride phases, would make numpy loop over many short rows, so they run
    channels-last, where every kernel offset is one operation over contiguous pixel rows of
    all channels (MobileNet v2: 2x faster on its 14x14 and 7x7 layers, 2x slower at 112x112).
    The input's plane decides, not the output's: a stride-2 layer from 56x56 to 28x28 reads
    four input pixels an output, and its transposing copy made it 1.1-1.6x slower channels-last."""
    if x.shape[2] * x.shape[3] <= CHANNELS_LAST_PLANE:
        return _depthwise_channels_last(x, filt, pads, out, stride, dilation)
    if min(pads) < 0:  # VALID with input to spare: cropped first
        x, pads = _padded(x, *pads), (0, 0, 0, 0)
    return _depthwise_planes(x, filt, pads, out, stride, dilation)


def _depthwise_channels_last(x: np.ndarray, filt: np.ndarray, pads: Pads, out: Tuple[int, int],
                             stride: Tuple[int, int], dilation: Tuple[int, int]) -> np.ndarray:
    """x goes once into a zero-bordered (n, h, w, channels) copy; each kernel offset then
    multiplies a strided view of it by the offset's weight per channel, over blocks of output
    rows small enough to stay in cache. Returns a channels-last array seen as NCHW."""
    n, c = x.shape[:2]
    (out_h, out_w), (sh, sw), (dh, dw) = out, stride, dilation
    kh, kw = filt.shape[1:]
    xp = np.ascontiguousarray(_padded(x.transpose(0, 2, 3, 1), *pads, channels_last=True))
    weights = filt.reshape(c, kh * kw).T[:, None, :]
    if sw == 1:  # as wide as an output row, so that a row's pixels and channels are one run
        weights = np.ascontiguousarray(np.broadcast_to(weights, (kh * kw, out_w, c)))
    y = np.empty((n, out_h, out_w, c), x.dtype)
    rows = max(1, DEPTHWISE_BLOCK // max(out_w * c, 1))
    temp = np.empty((min(rows, out_h), out_w, c), x.dtype)
    for image in range(n):
        for first in range(0, out_h, rows):
            count = min(first + rows, out_h) - first
            y_part, t_part = y[image, first:first + count], temp[:count]
            for i in range(kh):
                top_row = first * sh + i * dh
                for j in range(kw):
                    patch = xp[image, top_row:top_row + sh * (count - 1) + 1:sh,
                               j * dw:j * dw + sw * (out_w - 1) + 1:sw]
                    if i == j == 0:
                        np.multiply(patch, weights[0], out=y_part)
                    else:
                        np.multiply(patch, weights[i * kw + j], out=t_part)
                        y_part += t_part
    return y.transpose(0, 3, 1, 2)


def _depthwise_planes(x: np.ndarray, filt: np.ndarray, pads: Pads, out: Tuple[int, int], stride: Tuple[int, int],
                      dilation: Tuple[int, int]) -> np.ndarray:
    """One multiply-add per kernel offset over blocks of (image, channel) planes small enough to
    stay in cache. Each plane of the padded input xp (x inside zero `pads`, none negative) is
    first cut into its stride phases (xp[a::sh, b::sw]), in which every kernel offset reads a
    contiguous run: the outputs are computed on a grid as wide as a phase row (the extra columns
    are dropped at the end), so each multiply-add is one long vector operation instead of one
    per output row. x goes straight into the phases, where the padding is the zeros the phases
    start with (no padded copy of x). The sums run in the same order whatever the blocks, so
    the result does not depend on them."""
    n, c, h, w = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    (out_h, out_w), (sh, sw), (dh, dw) = out, stride, dilation
    kh, kw = filt.shape[1:]
    width = -(-wp // sw)
    rows = max(-(-hp // sh), out_h + (kh - 1) * dh // sh) + 1  # a spare row: the last offsets run past
    wide = out_h * width
    planes = x.reshape(n * c, h, w)
    # phase (a, b) holds xp[a::sh, b::sw]: x's rows r0::sh (r0 = (a - top) mod sh) from phase row (r0 + top - a) / sh
    starts = [[((a - top) % sh, ((a - top) % sh + top - a) // sh, (b - left) % sw, ((b - left) % sw + left - b) // sw)
               for b in range(sw)] for a in range(sh)]  # (r0, its phase row, c0, its phase column)
    weights = np.broadcast_to(filt.reshape(1, c, kh * kw), (n, c, kh * kw)).reshape(n * c, kh * kw)
    y = np.empty((n * c, wide), x.dtype)
    block = max(1, DEPTHWISE_BLOCK // max(wide, 1))
    phases = np.zeros((sh, sw, min(block, n * c), rows, width), x.dtype)  # padding and margins stay 0
    flat = phases.reshape(sh, sw, phases.shape[2], rows * width)
    temp = np.empty((phases.shape[2], wide), x.dtype)
    for first in range(0, n * c, block):
        count = min(first + block, n * c) - first
        for a in range(sh):
            for b in range(sw):
                r0, prow, c0, pcol = starts[a][b]
                part = planes[first:first + count, r0::sh, c0::sw]
                phases[a, b, :count, prow:prow + part.shape[1], pcol:pcol + part.shape[2]] = part
        y_part, w_part, t_part = y[first:first + count], weights[first:first + count], temp[:count]
        for i in range(kh):
            for j in range(kw):
                (row, a), (col, b) = divmod(i * dh, sh), divmod(j * dw, sw)
                patch = flat[a, b, :count, row * width + col:row * width + col + wide]
                tap = w_part[:, i * kw + j, None]
                if i == j == 0:
                    np.multiply(patch, tap, out=y_part)
                else:
                    np.multiply(patch, tap, out=t_part)
                    y_part += t_part
    return y.reshape(n, c, out_h, width)[:, :, :, :out_w]


def _rows_view(out: np.ndarray, n: int, channels: int) -> np.ndarray:
    """`out` (n, channels, h, w), e.g. a channel slice of a concatenation, seen as (n, channels,
    h * w) without a copy (assigning the shape raises if a copy were needed)."""
    rows = out.view()
    rows.shape = (n, channels, -1)
    return rows


def convolve(x: np.ndarray, weights: ConvWeights, layer: Layer, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The convolution of NCHW `x` (already offset so that padding is 0) by `weights`, plus
    their bias, computed in x's dtype: float32 for float models, float32 or float64 (exact
    integers) for int8. With `out` (of the result's shape and dtype, e.g. a channel slice of
    the concatenation it goes to) the result is written there and returned."""
    p = layer.params
    n, c, h, w = x.shape
    group, in_per_group = p["group"], weights.in_per_group
    if c != in_per_group * group:
        raise KernelError(f"layer '{layer.name}': input has {c} channels, the filter expects "
                          f"{in_per_group * group}")
    out_h, out_w, top, bottom, left, right = conv_pads(p, h, w)
    sh, sw, dh, dw = p["stride_h"], p["stride_w"], p["dilation_h"], p["dilation_w"]
    kh, kw = p["kernel_h"], p["kernel_w"]
    channels = p["output_channel"]
    rows = None if out is None else _rows_view(out, n, channels)
    if weights.depthwise is not None:
        y = _depthwise(x, weights.depthwise, (top, bottom, left, right), (out_h, out_w), (sh, sw), (dh, dw))
    elif not _uses_im2col(p):
        xp = _padded(x, top, bottom, left, right)
        pixels = np.ascontiguousarray(xp[:, :, :out_h, :out_w]).reshape(n, group, in_per_group, -1)
        if group == 1:
            y = np.matmul(weights.rows[0], pixels[:, 0], out=rows)
        else:
            y = np.concatenate([np.matmul(w, pixels[:, g]) for g, w in enumerate(weights.rows)], axis=1, out=rows)
        y = y.reshape(n, channels, out_h, out_w)
    else:
        y = _im2col_product(_padded(x, top, bottom, left, right), weights, (out_h, out_w), (kh, kw),
                            (sh, sw), (dh, dw), rows)
    if weights.bias is not None:  # a depthwise result (cropped or channels-last) is copied once here
        bias = weights.bias.astype(y.dtype, copy=False).reshape(1, -1, 1, 1)
        y = np.add(y, bias, out=out if out is not None else y if y.flags.c_contiguous else None)
    elif out is not None and weights.depthwise is not None:
        np.copyto(out, y)
    return y if out is None else out


def _im2col_product(xp: np.ndarray, weights: ConvWeights, out: Tuple[int, int], kernel: Tuple[int, int],
                    stride: Tuple[int, int], dilation: Tuple[int, int], y: Optional[np.ndarray] = None) -> np.ndarray:
    """Filter rows times im2col columns, per image and group, so that each GEMM writes NCHW
    rows directly (into `y`, (n, channels, pixels), if given); the columns live in one buffer
    reused across images (it stays in cache), with a last row of ones when the rows carry the
    bias."""
    (out_h, out_w), (kh, kw), (sh, sw), (dh, dw) = out, kernel, stride, dilation
    n, in_per_group = xp.shape[0], weights.in_per_group
    windows = sliding_window_view(xp, (_extent(kh, dh), _extent(kw, dw)), axis=(2, 3))
    windows = windows[:, :, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, ::dh, ::dw]
    out_per_group, depth = weights.rows[0].shape
    if y is None:
        y = np.empty((n, len(weights.rows) * out_per_group, out_h * out_w), xp.dtype)
    cols = np.empty((depth, out_h * out_w), xp.dtype)
    if weights.bias_column:
        cols[-1] = 1
    patches = cols[:in_per_group * kh * kw].reshape(in_per_group, kh, kw, out_h, out_w)
    for image in range(n):
        for g, rows in enumerate(weights.rows):
            np.copyto(patches, windows[image, g * in_per_group:(g + 1) * in_per_group].transpose(0, 3, 4, 1, 2))
            np.matmul(rows, cols, out=y[image, g * out_per_group:(g + 1) * out_per_group])
    return y.reshape(n, -1, out_h, out_w)


def input_patches(x: np.ndarray, layer: Layer, in_per_group: int) -> np.ndarray:
    """The im2col columns a convolution multiplies its filter rows with: (group, in_per_group *
    kh * kw, n * out_h * out_w), in the filter's (channel, kh, kw) order, padding as zeros."""
    p = layer.params
    n, c, h, w = x.shape
    out_h, out_w, top, bottom, left, right = conv_pads(p, h, w)
    xp = _padded(x, top, bottom, left, right)
    sh, sw, dh, dw, kh, kw = p["stride_h"], p["stride_w"], p["dilation_h"], p["dilation_w"], p["kernel_h"], p["kernel_w"]
    windows = sliding_window_view(xp, (_extent(kh, dh), _extent(kw, dw)), axis=(2, 3))
    windows = windows[:, :, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, ::dh, ::dw]
    group = c // in_per_group
    cols = windows.reshape(n, group, in_per_group, out_h, out_w, kh, kw).transpose(1, 2, 5, 6, 0, 3, 4)
    return np.ascontiguousarray(cols).reshape(group, in_per_group * kh * kw, -1)


def conv_shape(layer: Layer, input_shape) -> tuple:
    n, _, h, w = input_shape
    out_h, out_w = conv_pads(layer.params, h, w)[:2]
    return (n, layer.params["output_channel"], out_h, out_w)


def _finish_int8(val: np.ndarray, layer: Layer, out: BlobScale, added: Optional[np.ndarray],
                 finite: bool) -> np.ndarray:
    """The fused Add (before or after the activation), the fused activation and the final
    rounding of an int8 convolution, in TNN's order; `val` is the kernel's own and is changed,
    `finite` says it holds no NaN (exact sums times finite multipliers)."""
    channels, kind, fusion = val.shape[1], layer.params["activation_type"], layer.params.get("fusion_type", 0)
    shape = (1, -1, 1, 1)
    if fusion == CONV_ADD_ACTIVATION:
        val += added
    zero = channel_values(out.zero_point, channels)
    if kind == RELU and fusion != CONV_ACTIVATION_ADD and not zero.any():
        return relu_float2int8(val, finite=finite)
    if kind == RELU:
        relu(val, out=val)
    elif kind == RELU6:  # clipped at the int8 code of 6; TNN adds no zero point and no later Add
        top = float2int8(np.float32(6.0) / channel_values(out.scale, channels)).reshape(shape)
        return np.maximum(np.minimum(float2int8(val), top), 0).astype(np.int8)
    elif kind != 0:
        raise KernelError(f"layer '{layer.name}': activation_type {kind} is not supported in int8")
    if fusion == CONV_ACTIVATION_ADD:
        val += added
    if zero.any():
        val += zero.astype(np.float32).reshape(shape)
    return float2int8(val, finite=finite)


@register("Convolution")
class Convolution(Kernel):
    """Int8: acc = sum (x - zp_x)(w - zp_w) + bias in exact integers (padding contributes 0);
    out = float2int8(float(acc) * (w_scale / out_scale) + zp_out), activation in between."""
    per_sample = True

    def shapes(self, layer, inputs, resource):
        return [conv_shape(layer, inputs[0])]

    def prepare(self, layer: Layer, resource: Resource):
        bias = float_buffer(resource, "bias", layer).reshape(-1) if layer.params["bias"] else None
        return arrange_filter(float_buffer(resource, "filter", layer), layer, bias)

    def run(self, layer, state, inputs):
        y = np.ascontiguousarray(convolve(inputs[0], state, layer), dtype=np.float32)
        return [activate(y, layer.params["activation_type"], layer)]

    def run_into(self, layer, state, inputs, out: np.ndarray) -> None:
        """`run`, its one output written into `out` (float32, e.g. the concatenation's slice)."""
        y = activate(convolve(inputs[0].astype(np.float32, copy=False), state, layer, out),
                     layer.params["activation_type"], layer)
        if y is not out:
            np.copyto(out, y)

    def prepare_int8(self, layer, resource, inputs, outputs):
        p = layer.params
        filt = resource["filter"].numpy().reshape(-1).astype(np.float64)
        out = p["output_channel"]
        zero_w = channel_values(resource["zero_point"].numpy().reshape(-1).astype(np.float64), out)
        centered = filt.reshape(out, -1) - zero_w[:, None]
        bias = resource["bias"].numpy().reshape(-1).astype(np.int32) if p["bias"] and "bias" in resource else None
        dtype = accumulator_dtype(centered, inputs[0], bias)
        multiplier = requant_multiplier(resource["scale"].numpy(np.float32).reshape(-1), outputs[0], out)
        add_scale = requant_multiplier(inputs[1].scale, outputs[0], out) if len(inputs) > 1 else None
        per_channel = (1, -1, 1, 1)
        in_sums = bias is not None and dtype == np.float32  # exact sums: the bias goes in with the products
        weights = arrange_filter(centered.astype(dtype), layer, bias.astype(dtype) if in_sums else None)
        return (weights, None if bias is None or in_sums else bias.reshape(per_channel),
                multiplier.reshape(per_channel), add_scale)

    def run_int8(self, layer, state, inputs, outputs):
        weights, bias, multiplier, add_scale = state
        val = requantized(convolve(centered_input(inputs[0], weights.dtype), weights, layer), bias, multiplier)
        added = None
        if add_scale is not None:  # TNN's conv+add fusion: the Add's other operand, rescaled
            other, s = inputs[1], add_scale[None, :, None, None]
            zero_out = channel_values(other.scale.zero_point, val.shape[1]).astype(np.float32)[None, :, None, None]
            added = other.values.astype(np.float32) * s - zero_out * s
        # no NaN can come out: exact sums (|acc| < 2**31) times multipliers too small to overflow
        finite = bool((np.abs(multiplier) < 1e29).all()) and (add_scale is None or bool((np.abs(add_scale) < 1e29).all()))
        return [_finish_int8(val, layer, outputs[0], added, finite)]


def deconv_geometry(p: dict, height: int, width: int) -> Tuple[int, int, int, int]:
    """(out_h, out_w, pad_top, pad_left) by TNN's deconvolution shape rule."""
    ext_h, ext_w = _extent(p["kernel_h"], p["dilation_h"]), _extent(p["kernel_w"], p["dilation_w"])
    sh, sw = p["stride_h"], p["stride_w"]
    pad_type = p["pad_type"]
    if pad_type == -1:
        return (sh * (height - 1) + ext_h - 2 * p["pad_h"], sw * (width - 1) + ext_w - 2 * p["pad_w"],
                p["pad_h"], p["pad_w"])
    if pad_type in (0, 3):
        out_h, out_w = height * sh, width * sw
    elif pad_type == 1:
        out_h, out_w = height * sh + max(ext_h - sh, 0), width * sw + max(ext_w - sw, 0)
    elif pad_type == 2:
        out_h, out_w = height * sh - (sh + ext_h - 2), width * sw - (sw + ext_w - 2)
    else:
        raise ValueError(f"pad_type {pad_type} is not supported by deconvolutions")
    along_h = (height - 1) * sh + ext_h - out_h
    along_w = (width - 1) * sw + ext_w - out_w
    top, left = int(along_h / 2), int(along_w / 2)
    if pad_type == 3:  # TNN swaps begin and end pads here (room for ONNX's output_padding)
        along_h, along_w = max(along_h, 0), max(along_w, 0)
        top, left = along_h - int(along_h / 2), along_w - int(along_w / 2)
    return out_h, out_w, top, left


@register("Deconvolution")
class Deconvolution(Kernel):
    """Weights are (in_channels, out_per_group, kh, kw), as in TNN and ONNX ConvTranspose."""
    per_sample = True


    def shapes(self, layer, inputs, resource):
        n, _, h, w = inputs[0]
        out_h, out_w = deconv_geometry(layer.params, h, w)[:2]
        return [(n, layer.params["output_channel"], out_h, out_w)]

    def prepare(self, layer, resource):
        p = layer.params
        group, out = p["group"], p["output_channel"]
        weights = float_buffer(resource, "filter", layer)
        kernel = p["kernel_h"] * p["kernel_w"]
        in_channels = weights.size // (out // group * kernel)
        w = weights.reshape(group, in_channels // group, out // group * kernel)
        bias = float_buffer(resource, "bias", layer).reshape(-1) if p["bias"] else None
        return np.ascontiguousarray(w.transpose(0, 2, 1)), bias

    def run(self, layer, state, inputs):
        p = layer.params
        matrices, bias = state
        x = inputs[0]
        n, c, h, w = x.shape
        group, out = p["group"], p["output_channel"]
        kh, kw, sh, sw, dh, dw = (p["kernel_h"], p["kernel_w"], p["stride_h"], p["stride_w"],
                                  p["dilation_h"], p["dilation_w"])
        out_h, out_w, top, left = deconv_geometry(p, h, w)
        cols = np.matmul(matrices[None], x.reshape(n, group, c // group, h * w))
        cols = cols.reshape(n, group, out // group, kh, kw, h, w)
        full_h = max(sh * (h - 1) + _extent(kh, dh), top + out_h)
        full_w = max(sw * (w - 1) + _extent(kw, dw), left + out_w)
        full = np.zeros((n, group, out // group, full_h, full_w), np.float32)
        for i in range(kh):
            for j in range(kw):
                full[:, :, :, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (w - 1) + 1:sw] += cols[:, :, :, i, j]
        y = full.reshape(n, out, full_h, full_w)[:, :, top:top + out_h, left:left + out_w]
        if bias is not None:
            y = y + bias[None, :, None, None]
        return [activate(np.ascontiguousarray(y, dtype=np.float32), p["activation_type"], layer)]


