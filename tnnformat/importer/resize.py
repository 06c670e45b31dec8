"""Resizing as TNN's Upsample does it (mode 1 nearest, 2 bilinear, on H and W of NCHW).

Source formats have many coordinate rules; TNN has two per mode (source/tnn/device/cpu/acc/
cpu_upsample_layer_acc.cc). At static shapes we compute, for each output row and column,
the input coordinate the source reads and the one TNN reads, and convert only when they
agree. Rules are named as ONNX's coordinate_transformation_mode names them.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .context import Context

MODES = {"nearest": 1, "linear": 2, "bilinear": 2}


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


def tnn_align_corners(mode: int, rule: str, rounding: str, sizes, outs, scales) -> Optional[int]:
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


def emit_upsample(ctx: Context, source: str, out: str, mode_name: str, rule: str, rounding: str,
                  scales: Optional[Sequence[float]]) -> None:
    """An Upsample of NCHW `source` that reads the inputs the source's coordinate `rule`
    (ONNX's coordinate_transformation_mode names) and nearest `rounding` read, or an error."""
    shape, out_shape = ctx.shape(source), ctx.shape(out)
    if len(shape) != 4 or shape[:2] != out_shape[:2]:
        raise ctx.fail("only resizing the H and W of an NCHW tensor is supported")
    mode = MODES.get(mode_name)
    if mode is None:
        raise ctx.fail(f"mode '{mode_name}' is not supported")
    sizes, outs = shape[2:], out_shape[2:]
    ratios: List[float] = list(scales[2:]) if scales else [o / s for o, s in zip(outs, sizes)]
    align_corners = tnn_align_corners(mode, rule, rounding, sizes, outs, ratios)
    if align_corners is None:
        raise ctx.fail(f"mode '{mode_name}' with coordinate_transformation_mode '{rule}' reads "
                       "other inputs than TNN's Upsample does")
    params = dict(mode=mode, scale_h=0.0, scale_w=0.0, align_corners=align_corners)
    if scales and all(int(round(s * r)) == o for s, r, o in zip(sizes, ratios, outs)):
        params.update(scale_h=float(ratios[0]), scale_w=float(ratios[1]))
    else:
        params.update(output_h=int(outs[0]), output_w=int(outs[1]))
    ctx.emit("Upsample", [source], [out], params)
