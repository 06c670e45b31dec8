"""Resize and Upsample -> Upsample (mode 1 nearest, 2 bilinear) on the H and W of NCHW.

ONNX has many coordinate rules; TNN has two per mode (source/tnn/device/cpu/acc/
cpu_upsample_layer_acc.cc). At static shapes we compute, for each output row and column,
the input coordinate ONNX reads and the one TNN reads, and convert only when they agree.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ...importer.context import Context
from ...importer.graph import Node
from . import converts

MODES = {"nearest": 1, "linear": 2, "bilinear": 2}
RESIZE_ATTRS = ("antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a",
                "exclude_outside", "extrapolation_value", "keep_aspect_ratio_policy", "mode",
                "nearest_mode")


def onnx_coordinates(rule: str, size: int, out: int, scale: float) -> Optional[np.ndarray]:
    """The input coordinate of each output index under an ONNX coordinate_transformation_mode."""
    x = np.arange(out, dtype=np.float64)
    if rule == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if rule == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if rule == "align_corners":  # ONNX divides by the unrounded resized length
        return x * (size - 1) / (size * scale - 1) if out > 1 else np.zeros(out)
    if rule == "asymmetric":
        return x / scale
    if rule == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    return None


def onnx_nearest(coordinates: np.ndarray, rounding: str, size: int) -> Optional[np.ndarray]:
    rounded = {"round_prefer_floor": np.ceil(coordinates - 0.5),
               "round_prefer_ceil": np.floor(coordinates + 0.5),
               "floor": np.floor(coordinates), "ceil": np.ceil(coordinates)}.get(rounding)
    return None if rounded is None else np.clip(rounded, 0, size - 1).astype(np.int64)


def tnn_nearest(size: int, out: int) -> np.ndarray:
    ratio = np.float32(size) / np.float32(out)
    return (np.arange(out, dtype=np.float32) * ratio).astype(np.int64)


def tnn_linear(size: int, out: int, align_corners: int) -> np.ndarray:
    x = np.arange(out, dtype=np.float64)
    if align_corners:
        return x * ((size - 1) / (out - 1) if out > 1 else 0.0)
    return np.clip((x + 0.5) * (size / out if out > 1 else 0.0) - 0.5, 0, size - 1)


def _match(mode: int, rule: str, rounding: str, sizes, outs, scales) -> Optional[int]:
    """The align_corners value that makes TNN read the inputs ONNX reads, or None."""
    for align_corners in (0, 1):
        agree = True
        for size, out, scale in zip(sizes, outs, scales):
            onnx = onnx_coordinates(rule, size, out, scale)
            if onnx is None:
                return None
            if mode == 1:
                onnx = onnx_nearest(onnx, rounding, size)
                agree = agree and onnx is not None and np.array_equal(onnx, tnn_nearest(size, out))
            else:
                tnn = tnn_linear(size, out, align_corners)
                agree = agree and np.allclose(np.clip(onnx, 0, size - 1), tnn, rtol=0, atol=1e-5)
        if agree:
            return align_corners
    return None


def _emit(ctx: Context, node: Node, mode_name: str, rule: str, rounding: str,
          scales: Optional[Sequence[float]]) -> None:
    shape, out_shape = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    if len(shape) != 4 or shape[:2] != out_shape[:2]:
        raise ctx.fail("only resizing the H and W of an NCHW tensor is supported")
    mode = MODES.get(mode_name)
    if mode is None:
        raise ctx.fail(f"mode '{mode_name}' is not supported")
    sizes, outs = shape[2:], out_shape[2:]
    ratios: List[float] = list(scales[2:]) if scales else [o / s for o, s in zip(outs, sizes)]
    align_corners = _match(mode, rule, rounding, sizes, outs, ratios)
    if align_corners is None:
        raise ctx.fail(f"mode '{mode_name}' with coordinate_transformation_mode '{rule}' reads "
                       "other inputs than TNN's Upsample does")
    params = dict(mode=mode, scale_h=0.0, scale_w=0.0, align_corners=align_corners)
    if scales and all(int(round(s * r)) == o for s, r, o in zip(sizes, ratios, outs)):
        params.update(scale_h=float(ratios[0]), scale_w=float(ratios[1]))
    else:
        params.update(output_h=int(outs[0]), output_w=int(outs[1]))
    ctx.emit("Upsample", node.inputs[:1], node.outputs, params)


def _floats(ctx: Context, node: Node, index: int) -> Optional[List[float]]:
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    value = ctx.need_const(node.inputs[index], "the scales or sizes")
    return [float(v) for v in np.asarray(value).reshape(-1)] or None


@converts("Upsample", attrs=("mode", "scales", "height_scale", "width_scale"))
def upsample(ctx: Context, node: Node) -> None:
    """Upsample (opset 7-9) maps output x to input x / scale: nearest rounds down."""
    scales = list(node.attr("scales", [])) or _floats(ctx, node, 1)
    _emit(ctx, node, node.attr("mode", "nearest"), "asymmetric", "floor", scales)


@converts("Resize", attrs=RESIZE_ATTRS)
def resize(ctx: Context, node: Node) -> None:
    if node.attr("antialias", 0):
        raise ctx.fail("antialias=1 is not supported")
    if ctx.graph.opset < 11:  # Resize-10: inputs X, scales; Upsample's coordinates
        _emit(ctx, node, node.attr("mode", "nearest"), "asymmetric", "floor", _floats(ctx, node, 1))
        return
    scales = _floats(ctx, node, 2)
    if _floats(ctx, node, 3) or node.attr("axes") is not None:
        scales = None  # sizes given (or scales for some axes only): TNN gets the output size
    _emit(ctx, node, node.attr("mode", "nearest"),
          node.attr("coordinate_transformation_mode", "half_pixel"),
          node.attr("nearest_mode", "round_prefer_floor"), scales)
