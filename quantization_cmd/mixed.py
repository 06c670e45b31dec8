"""Mixed models: an int8 model with some of its layers put back to float, without calibrating
or quantizing weights again.

The plan is made again with those layers float (graph only, milliseconds), so the layers
that were int8 only because of them (the max pooling after a float convolution) follow them;
every layer that stays int8 keeps the int8 weights and blob scales of the full int8 model
(AdaRound's and bias correction's included). TNN converts at the boundaries, as it does for
`--float_layers`; the result is a model TNN's runtime loads.
"""
from __future__ import annotations

import copy
from typing import Dict, Iterable, List

from tnnformat import BLOB_SCALE_SUFFIX, Net, Resource

from .api import QuantResult
from .config import ConfigError, Override
from .plan import Plan, make_plan


def revertible_layers(result: QuantResult) -> List[str]:
    """The int8 layers a user can keep float (convolutions, inner products, Concats, Adds), in
    layer order; ReLUs and poolings are int8 only as their producer is."""
    plan = result.plan
    return [layer.name for layer in plan.net.layers if layer.name in plan.quantized
            and layer.type in ("Convolution", "InnerProduct", "Concat", "Add")]


def mixed_plan(result: QuantResult, float_layers: Iterable[str]) -> Plan:
    """The full model's plan with `float_layers` also kept float."""
    names = tuple(sorted(set(float_layers)))
    config = result.config.with_overrides(Override(layers=names, float_layers=True, origin="mixed precision")) \
        if names else result.config
    return make_plan(result.plan.net, config, result.plan.shapes)


def mixed_net(result: QuantResult, float_layers: Iterable[str]) -> Net:
    """`result.net` with `float_layers` (and what follows from them) float."""
    if result.float_net is None:
        raise ConfigError("a mixed model needs the result's float model (quantize() records it)")
    plan = mixed_plan(result, float_layers)
    resources: Dict[str, Resource] = dict(result.float_net.resources)
    for name in plan.layers:
        resources[name] = result.net.resources[name]
    for blob in plan.scale_source:
        key = blob + BLOB_SCALE_SUFFIX
        if key not in result.net.resources:
            raise ConfigError(f"blob '{blob}' has no scale in the int8 model; it cannot be int8 in a mixed one")
        resources[key] = result.net.resources[key]
    layers = []
    for layer in plan.net.layers:
        layer = copy.copy(layer)
        layer.quantized = layer.name in plan.quantized
        layers.append(layer)
    net = copy.copy(result.net)
    net.layers, net.resources = layers, resources
    return net
