"""What to quantize and where each blob's scale comes from, decided before any data is seen.

TNN's tool (tools/quantization/calibration.cc) works on the graph after its load-time
rewrites (a ReLU that follows a convolution is fused into it), then:
  * makes Convolution, InnerProduct, Concat and Add quantized (not an Add with a constant
    operand: that stays float);
  * walks the layers in order: a ReLU or a max Pooling whose producer is quantized becomes
    quantized too, and its input blob takes its output blob's scale, so the int8 values pass
    through unchanged; the rule repeats upward through chains of such layers;
  * quantizes the blobs around an InnerProduct per tensor, calibrates the network input by
    MIN_MAX, and falls back to MIN_MAX for blobs of fewer than 100 values per channel
    (unless the method says otherwise).
Unlike TNN, a blob that a standalone int8 ReLU reads or writes is never asymmetric: that
ReLU clamps codes at 0 and ignores the zero point, so an asymmetric range (ASY_MIN_MAX) turns
into garbage there, in TNN's runtime as in ours; such blobs use MIN_MAX.
On top of that the config is resolved here, once: layers kept float, per-layer weight
settings and per-blob settings from the overrides. An override that names a blob's method
explicitly wins over TNN's fallbacks. Everything depends only on the graph, so calibration
observes only the blobs whose statistics end up in the model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Dict, List, Optional, Set, Tuple

from kernels.tnn_optimizer import fuse_conv_activation, fuse_conv_add
from tnnformat import Layer, Net

from .blob_methods import blob_method
from .config import BlobConfig, ConfigError, LayerConfig, Override, QuantConfig, apply_changes

QUANTIZABLE = ("Convolution", "InnerProduct", "Concat", "Add")
WEIGHTED = ("Convolution", "InnerProduct")
SCALE_MERGING = ("ReLU", "Pooling")
MIN_SPATIAL = 100


@dataclass
class Plan:
    """The runtime graph, the layers that become int8 (with their weight settings), the layers
    the config keeps float, and the scale source and settings of every observed blob."""

    net: Net
    quantized: Set[str]
    scale_source: Dict[str, str]
    blobs: Dict[str, BlobConfig] = field(default_factory=dict)
    layers: Dict[str, LayerConfig] = field(default_factory=dict)
    float_layers: List[str] = field(default_factory=list)
    shapes: Dict[str, tuple] = field(default_factory=dict)

    @property
    def observed(self) -> List[str]:
        """Blobs whose statistics are needed, in first-use order."""
        return list(dict.fromkeys(self.scale_source.values()))

    @property
    def weighted(self) -> List[str]:
        """Quantized layers that get integer weights, in layer order."""
        return [layer.name for layer in self.net.layers if layer.name in self.layers]

    def sample_shape(self, blob: str) -> Tuple[int, ...]:
        return tuple(self.shapes[blob][1:])


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


class _Scopes:
    """Matches overrides against the model, remembering which patterns matched something."""

    def __init__(self):
        self.matched: Set[Tuple[int, str]] = set()

    def layer(self, index: int, o: Override, layer: Layer) -> bool:
        hit = False
        for pattern in o.layers:
            if fnmatchcase(layer.name, pattern):
                self.matched.add((index, pattern))
                hit = True
        for pattern in o.types:
            if layer.type == pattern or layer.type_str == pattern:
                self.matched.add((index, pattern))
                hit = True
        return hit

    def blob(self, index: int, o: Override, names: List[str]) -> bool:
        """Whether a blob pattern matches any of `names` (a blob and those sharing its scale)."""
        hit = False
        for pattern in o.blobs:
            if any(fnmatchcase(name, pattern) for name in names):
                self.matched.add((index, pattern))
                hit = True
        return hit

    def check(self, overrides: Tuple[Override, ...]) -> None:
        for index, o in enumerate(overrides):
            for pattern in dict.fromkeys(o.layers + o.types + o.blobs):
                if (index, pattern) not in self.matched:
                    raise ConfigError(f"{o.origin}: '{pattern}' matches no layer, layer type or blob "
                                      "of the model")


def _layer_config(config: QuantConfig, scopes: _Scopes, layer: Layer) -> LayerConfig:
    result = config.weights
    for index, o in enumerate(config.overrides):
        if scopes.layer(index, o, layer):
            result = apply_changes(result, o.weights, o.origin)
            if o.float_layers:
                result = apply_changes(result, {"quantize": False}, o.origin)
    return result


def _blob_config(config: QuantConfig, scopes: _Scopes, names: List[str], producer: Optional[Layer],
                 fallback: bool) -> BlobConfig:
    """An observed blob's settings: the default with TNN's fallback to MIN_MAX where it
    applies, then every override whose scope holds the blob, a blob sharing its scale (the
    input of the max pooling that produces it), or its producer."""
    result = config.activations
    if fallback:
        result = BlobConfig("MIN_MAX", result.granularity, result.bits)
    for index, o in enumerate(config.overrides):
        by_blob = scopes.blob(index, o, names)
        if by_blob or (producer is not None and scopes.layer(index, o, producer)):
            result = apply_changes(result, o.activations, o.origin)
    return result


def _int8_graph(float_net: Net, will_quantize: Set[str]) -> Net:
    """The graph TNN's runtime will see for the int8 model: activations fused into the
    convolutions before them by the rules for quantized convolutions (only ReLU and ReLU6;
    the others run as layers of their own, in float). A Mul(conv output, sigmoid output)
    after a quantized convolution gets its operands swapped, or TNN's fusion pass would drop
    the Sigmoid (see kernels.tnn_optimizer)."""
    layers = [copy.copy(layer) for layer in float_net.layers]
    for index, layer in enumerate(layers):
        layer.quantized = layer.name in will_quantize
        after = layers[index + 2] if index + 2 < len(layers) else None
        if (after is not None and layer.quantized and layer.type == "Convolution"
                and layers[index + 1].type == "Sigmoid" and after.type == "Mul"
                and after.inputs == [layer.outputs[0], layers[index + 1].outputs[0]]):
            layers[index + 2] = copy.copy(after)
            layers[index + 2].inputs = list(reversed(after.inputs))
    marked = copy.copy(float_net)
    marked.layers = layers
    net = fuse_conv_activation(marked)
    net.layers = [copy.copy(layer) for layer in net.layers]
    for layer in net.layers:
        layer.quantized = False
    return net


def _adds_kept_float(net: Net, quantized: Set[str]) -> List[str]:
    """Quantized Adds that TNN's runtime would fuse into the 1x1 convolution before them
    (kernels.tnn_optimizer.fuse_conv_add) and then fuse an activation after, which is a float
    layer here (ReLU6): the fused convolution would write that activation's output in int8,
    and TNN has no int8 ReLU6 layer to give that blob a scale. These Adds stay float."""
    marked = copy.copy(net)
    marked.layers = [copy.copy(layer) for layer in net.layers]
    for layer in marked.layers:
        layer.quantized = layer.name in quantized
    producers = _producers(net)
    return [producers[producers[layer.outputs[0]].inputs[0]].name for layer in fuse_conv_add(marked).layers
            if layer.params.get("fusion_type") and producers[layer.outputs[0]].name not in quantized]


def make_plan(float_net: Net, config: QuantConfig, shapes: Dict[str, tuple]) -> Plan:
    """Plan the quantization of `float_net` under `config`; `shapes` gives every blob's shape
    (batch first)."""
    config.check()
    scopes = _Scopes()
    settings = {layer.name: _layer_config(config, scopes, layer) for layer in float_net.layers}
    net = _int8_graph(float_net, {layer.name for layer in float_net.layers
                                  if _is_quantizable(layer, float_net) and settings[layer.name].quantize})
    float_layers = [layer.name for layer in net.layers
                    if _is_quantizable(layer, net) and not settings[layer.name].quantize]
    quantized = {layer.name for layer in net.layers
                 if _is_quantizable(layer, net) and settings[layer.name].quantize}
    producers = _producers(net)
    alias: Dict[str, str] = {}
    relu_outputs: Set[str] = set()
    for layer in net.layers:
        if not _merges_scale(layer) or not settings[layer.name].quantize:
            continue
        producer: Optional[Layer] = producers.get(layer.inputs[0])
        if producer is not None and producer.name in quantized:
            alias[layer.inputs[0]] = layer.outputs[0]
            quantized.add(layer.name)
            if layer.type == "ReLU":
                relu_outputs.add(layer.outputs[0])
    quantized.difference_update(_adds_kept_float(net, quantized))

    def resolve(blob: str) -> str:
        while blob in alias:
            blob = alias[blob]
        return blob

    scale_source = {blob: resolve(blob) for layer in net.layers if layer.name in quantized
                    for blob in layer.inputs + layer.outputs}
    forced_tensor = {resolve(blob) for layer in net.layers
                     if layer.type == "InnerProduct" and layer.name in quantized
                     for blob in layer.inputs + layer.outputs}
    method = blob_method(config.activations.method)
    sharing: Dict[str, List[str]] = {}
    for blob, source in scale_source.items():
        sharing.setdefault(source, []).append(blob)
    blobs: Dict[str, BlobConfig] = {}
    for blob in sharing:
        spatial = 1
        for dim in shapes[blob][2:4]:
            spatial *= dim
        fallback = blob in net.inputs or (spatial < MIN_SPATIAL and method.small_blob_fallback)
        blob_config = _blob_config(config, scopes, sharing[blob], producers.get(blob), fallback)
        if blob in forced_tensor:
            blob_config = apply_changes(blob_config, {"granularity": "tensor"}, blob)
        if any(b in relu_outputs for b in sharing[blob]) and \
                not blob_method(blob_config.method).is_symmetric(blob_config):
            # TNN's int8 ReLU clamps codes at 0 whatever the zero point: such blobs stay symmetric
            blob_config = BlobConfig("MIN_MAX", blob_config.granularity, blob_config.bits)
        blobs[blob] = blob_config.check(f"blob '{blob}'")
    layers = {layer.name: settings[layer.name] for layer in net.layers
              if layer.name in quantized and layer.type in WEIGHTED}
    scopes.check(config.overrides)
    return Plan(net, quantized, scale_source, blobs, layers, float_layers, dict(shapes))
