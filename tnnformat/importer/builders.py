"""TNN-side layer builders both front ends emit through: params and resources as TNN's
converter writes them, given values already in TNN's NCHW terms."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .context import Context, buffer

MAX_POOL, AVERAGE_POOL = 0, 1


def emit_binary(ctx: Context, tnn_type: str, a: str, b: str, out: str) -> None:
    """A two-operand element-wise layer; a constant operand goes to the resource (`element`)
    and `weight_input_index` says which side it was on, -1 when both are computed."""
    constant_b, constant_a = ctx.const(b), ctx.const(a)
    if constant_b is not None:
        ctx.emit(tnn_type, [a], [out], {"weight_input_index": 1}, {"element": buffer(constant_b)})
    elif constant_a is not None:
        ctx.emit(tnn_type, [b], [out], {"weight_input_index": 0}, {"element": buffer(constant_a)})
    else:
        ctx.emit(tnn_type, [a, b], [out], {"weight_input_index": -1})


def emit_inner_product(ctx: Context, source: str, out: str, weight: np.ndarray,
                       bias: np.ndarray) -> None:
    """`out = source @ weight.T + bias` for a 2-D `source`; weight is (num_output, K)."""
    ctx.emit("InnerProduct", [source], [out],
             dict(num_output=int(weight.shape[0]), has_bias=1, transpose=0, axis=1),
             {"weight": buffer(weight), "bias": buffer(bias)})


def emit_spatial_pad(ctx: Context, source: str, pads: Sequence[Tuple[int, int]], value: float,
                     padded: Optional[str] = None) -> str:
    """Pad the H and W of an NCHW blob with `value` in a Pad layer; returns the padded value."""
    (top, bottom), (left, right) = pads
    n, c, h, w = ctx.shape(source)
    if padded is None:
        padded = ctx.new_value(f"{source}_pad", (n, c, h + top + bottom, w + left + right))
    assert ctx.node is not None
    ctx.emit("Pad", [source], [padded], dict(pad_t=top, pad_b=bottom, pad_l=left, pad_r=right,
                                             mode=0, value=float(value)),
             name=f"{ctx.node.label}_pad")
    return padded


def conv_params(kernel, strides, dilations, group, in_channels, out_channels,
                has_bias, choice, activation: int = 0) -> dict:
    """Convolution/Deconvolution params; `choice` is (pad_type, pad_h, pad_w)."""
    pad_type, pad_h, pad_w = choice
    return dict(group=group, input_channel=in_channels, output_channel=out_channels,
                kernel_h=kernel[0], kernel_w=kernel[1], stride_h=strides[0], stride_w=strides[1],
                pad_h=pad_h, pad_w=pad_w, bias=int(has_bias), pad_type=pad_type,
                dilation_h=dilations[0], dilation_w=dilations[1], activation_type=activation)


def conv_resource(weight: np.ndarray, bias) -> dict:
    """The filter (out, in / group, kh, kw; Deconvolution: in, out / group, kh, kw) and bias."""
    resource = {"filter": buffer(weight)}
    if bias is not None:
        resource["bias"] = buffer(bias)
    return resource


def pool_params(pool_type: int, kernel, strides, choice) -> dict:
    """Pooling params; `choice` is (pad_type, pad_h, pad_w, ceil_mode), kernel 0, 0 global."""
    pad_type, pad_h, pad_w, ceil_mode = choice
    return dict(pool_type=pool_type, kernel_h=kernel[0], kernel_w=kernel[1],
                stride_h=strides[0], stride_w=strides[1], pad_h=pad_h, pad_w=pad_w,
                kernel_index_h=-1, kernel_index_w=-1, pad_type=pad_type, ceil_mode=ceil_mode,
                is_adaptive=0, output_h=-1, output_w=-1)
