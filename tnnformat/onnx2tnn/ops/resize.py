"""Resize and Upsample -> Upsample (tnnformat.importer.resize matches the coordinates)."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ...importer.context import Context
from ...importer.resize import emit_upsample
from ...importer.graph import Node
from . import converts

RESIZE_ATTRS = ("antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a",
                "exclude_outside", "extrapolation_value", "keep_aspect_ratio_policy", "mode",
                "nearest_mode")


def _floats(ctx: Context, node: Node, index: int) -> Optional[List[float]]:
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    value = ctx.need_const(node.inputs[index], "the scales or sizes")
    return [float(v) for v in np.asarray(value).reshape(-1)] or None


@converts("Upsample", attrs=("mode", "scales", "height_scale", "width_scale"))
def upsample(ctx: Context, node: Node) -> None:
    """Upsample (opset 7-9) maps output x to input x / scale: nearest rounds down."""
    scales = list(node.attr("scales", [])) or _floats(ctx, node, 1)
    emit_upsample(ctx, node.inputs[0], node.outputs[0], node.attr("mode", "nearest"), "asymmetric", "floor", scales)


@converts("Resize", attrs=RESIZE_ATTRS)
def resize(ctx: Context, node: Node) -> None:
    if node.attr("antialias", 0):
        raise ctx.fail("antialias=1 is not supported")
    if ctx.graph.opset < 11:  # Resize-10: inputs X, scales; Upsample's coordinates
        emit_upsample(ctx, node.inputs[0], node.outputs[0], node.attr("mode", "nearest"), "asymmetric", "floor", _floats(ctx, node, 1))
        return
    scales = _floats(ctx, node, 2)
    if _floats(ctx, node, 3) or node.attr("axes") is not None:
        scales = None  # sizes given (or scales for some axes only): TNN gets the output size
    emit_upsample(ctx, node.inputs[0], node.outputs[0], node.attr("mode", "nearest"),
          node.attr("coordinate_transformation_mode", "half_pixel"),
          node.attr("nearest_mode", "round_prefer_floor"), scales)
