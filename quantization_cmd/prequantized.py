"""Int8 models from the scales a pre-quantized source carries (a QDQ ONNX, an int8 TFLite),
with no calibration data: the source's scales become a calibration table (each mapped onto
TNN's int8 by tnnformat.importer.scales.FileScale: with a zero point, as TNN's ASY_MIN_MAX
writes blobs, or symmetric), and weights are quantized from the dequantized float weights with
MIN_MAX, per channel or per tensor as the source's were (for symmetric int8 weights whose
largest code is 127, that gives the source's codes back).

The blobs of a quantized ReLU that is not fused into a convolution stay symmetric: TNN's int8
ReLU clamps codes at 0, right only for zero point 0. A blob TNN would quantize that the source
left float makes the layers around it stay float.
"""
from __future__ import annotations

from typing import Dict, List, Set

import numpy as np

from kernels.shapes import infer_shapes
from tnnformat import Net
from tnnformat.importer.scales import FileScales

from .api import QuantResult, quantize
from .config import BlobConfig, ConfigError, LayerConfig, Override, QuantConfig
from .events import Listener, ignore
from .plan import Plan, make_plan
from .table import TableEntry


def _scale_of(plan: Plan, scales: FileScales, blob: str):
    """The source's scale of an observed blob, or of a blob sharing its scale; None if none."""
    if blob in scales:
        return scales[blob]
    for other, source in plan.scale_source.items():
        if source == blob and other in scales:
            return scales[other]
    return None


def _uncovered_layers(plan: Plan, scales: FileScales) -> Set[str]:
    missing = {blob for blob in plan.blobs if _scale_of(plan, scales, blob) is None}
    return {layer.name for layer in plan.net.layers if layer.name in plan.quantized
            and any(plan.scale_source.get(b) in missing for b in layer.inputs + layer.outputs)}


def _relu_blobs(plan: Plan) -> Set[str]:
    """The observed blobs a standalone quantized ReLU reads or writes."""
    return {plan.scale_source[blob] for layer in plan.net.layers
            if layer.type in ("ReLU", "Relu") and layer.name in plan.quantized
            for blob in layer.inputs + layer.outputs}


def quantize_with_file_scales(net: Net, scales: FileScales, weights_per_channel: bool = True,
                              symmetric: bool = False, on_event: Listener = ignore) -> QuantResult:
    """The int8 model of `net` (the dequantized float model) at the source's `scales` (by
    blob): blobs with zero points, or all symmetric with `symmetric=True`."""
    granularity = "channel" if weights_per_channel else "tensor"
    method = "MIN_MAX" if symmetric else "ASY_MIN_MAX"
    config = QuantConfig(BlobConfig(method, "tensor", 8), LayerConfig(granularity=granularity))
    shapes = infer_shapes(net)
    kept_float: List[str] = []
    for _ in range(len(net.layers) + 1):
        plan = make_plan(net, config, shapes)
        uncovered = sorted(_uncovered_layers(plan, scales) - set(kept_float))
        if not uncovered:
            break
        kept_float += uncovered
        config = config.with_overrides(Override(layers=tuple(uncovered), float_layers=True,
                                                origin="the source's unquantized blobs"))
    if not plan.blobs:
        raise ConfigError("the source's scales cover no blob TNN quantizes")
    entries: Dict[str, TableEntry] = {}
    clamped_at_zero = _relu_blobs(plan)
    for blob in plan.blobs:
        found = _scale_of(plan, scales, blob)
        scale, zero = ((found.symmetric_scale(), 0) if symmetric or blob in clamped_at_zero
                       else found.asymmetric())
        entries[blob] = TableEntry(blob, 0, {}, np.array([scale], np.float32), np.array([zero], np.int8))
    return quantize(net, None, config, table=entries, on_event=on_event)
