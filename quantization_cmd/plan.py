"""What to quantize and where each blob's scale comes from, decided before any data is seen.

TNN's tool (tools/quantization/calibration.cc) works on the graph after its load-time
rewrites (a ReLU that follows a convolution is fused into it), then:
  * makes Convolution, InnerProduct, Concat and Add quantized (not an Add with a constant
    operand: that stays float);
  * walks the layers in order: a ReLU or a max Pooling whose producer is quantized becomes
    quantized too, and its input blob takes its output blob's scale, so the int8 values pass
    through unchanged; the rule repeats upward through chains of such layers.
Everything here depends only on the graph, so calibration observes only the blobs whose
statistics end up in the model (TNN observes every input and output of those layer types).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from kernels.tnn_optimizer import fuse_conv_activation
from tnnformat import Layer, Net

from .blob_methods import ASY_MIN_MAX, MIN_MAX

QUANTIZABLE = ("Convolution", "InnerProduct", "Concat", "Add")
SCALE_MERGING = ("ReLU", "Pooling")
#: TNN estimates a scale from the data only for blobs with at least this many values per
#: channel (H x W); smaller ones fall back to MIN_MAX (except with ASY_MIN_MAX).
MIN_SPATIAL = 100


@dataclass
class Plan:
    """The fused graph, the layers that become int8, and the scale source of every blob."""

    net: Net
    quantized: Set[str]
    scale_source: Dict[str, str]
    per_tensor: Set[str] = field(default_factory=set)
    methods: Dict[str, int] = field(default_factory=dict)

    @property
    def observed(self) -> List[str]:
        """Blobs whose statistics are needed, in first-use order."""
        seen: Dict[str, None] = {}
        for source in self.scale_source.values():
            seen.setdefault(source)
        return list(seen)


def _producers(net: Net) -> Dict[str, Layer]:
    producers: Dict[str, Layer] = {}
    for layer in net.layers:
        for blob in layer.outputs:
            producers.setdefault(blob, layer)
    return producers


def _is_quantizable(layer: Layer, net: Net) -> bool:
    if layer.type not in QUANTIZABLE:
        return False
    return not (layer.type == "Add" and layer.name in net.resources)


def _merges_scale(layer: Layer) -> bool:
    if layer.type not in SCALE_MERGING or len(layer.inputs) != 1 or len(layer.outputs) != 1:
        return False
    return not (layer.type == "Pooling" and layer.params.get("pool_type") == 1)


def make_plan(float_net: Net, blob_method: int, per_tensor_blobs: bool,
              shapes: Dict[str, tuple]) -> Plan:
    """Plan the quantization of `float_net`; `shapes` gives every blob's shape (batch first)."""
    net = fuse_conv_activation(float_net)
    quantized = {layer.name for layer in net.layers if _is_quantizable(layer, net)}
    producers = _producers(net)
    alias: Dict[str, str] = {}
    for layer in net.layers:
        if not _merges_scale(layer):
            continue
        producer: Optional[Layer] = producers.get(layer.inputs[0])
        if producer is not None and producer.name in quantized:
            alias[layer.inputs[0]] = layer.outputs[0]
            quantized.add(layer.name)

    def resolve(blob: str) -> str:
        while blob in alias:
            blob = alias[blob]
        return blob

    scale_source = {blob: resolve(blob) for layer in net.layers if layer.name in quantized
                    for blob in layer.inputs + layer.outputs}
    per_tensor = set()
    for layer in net.layers:
        if layer.type == "InnerProduct" and layer.name in quantized:
            per_tensor.update(resolve(blob) for blob in layer.inputs + layer.outputs)
    methods = {}
    for blob in set(scale_source.values()):
        if per_tensor_blobs:
            per_tensor.add(blob)
        spatial = 1
        for dim in shapes[blob][2:4]:
            spatial *= dim
        if blob in net.inputs or (spatial < MIN_SPATIAL and blob_method != ASY_MIN_MAX):
            methods[blob] = MIN_MAX
        else:
            methods[blob] = blob_method
    return Plan(net, quantized, scale_source, per_tensor, methods)
