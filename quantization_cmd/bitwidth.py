"""Bit-width what-if: for each weighted layer, the model's output error when that layer alone is
quantized (the rest float) with its weights, or its input activations, at 4, 6 and 8 bits, so
a user sees where fewer bits would be safe. TNN stores int8; narrower grids are simulated
(weights on the smaller grid written as int8 values, activations on a coarser scale with their
codes clamped, as `--weight_bits` / `--blob_bits` do). Each case is a partial run of the
sensitivity machinery: only the layers from the quantized one on run.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from tnnformat import BLOB_SCALE_SUFFIX, BlobScale, Net

from .api import QuantResult
from .config import apply_changes
from .events import Listener, ignore
from .mixed import mixed_net, revertible_layers
from .quantize import quantize_layer
from .sensitivity import Batch, OutputError, Variant, evaluate_variants, float_reference

BITS = (4, 6, 8)


@dataclass
class WhatIf:
    """Output errors by layer, then by (kind, bits); kind is "weights" or "activations"."""

    errors: Dict[str, Dict[tuple, OutputError]]
    bits: Sequence[int]
    samples: int


def _narrower(scale: BlobScale, bits: int) -> BlobScale:
    """The same range on a `bits`-bit grid: steps (2**(bits-1) - 1) / 127 times as many."""
    ratio = 127.0 / (2 ** (bits - 1) - 1)
    zero = np.round(scale.zero_point.astype(np.float64) / ratio).astype(np.int8)
    return BlobScale((scale.scale * ratio).astype(np.float32), zero)


def _case(result: QuantResult, alone: Net, layer: str, kind: str, bits: int) -> tuple:
    """The net with `layer` alone int8 at `bits` for `kind`, and the activation bits to simulate."""
    plan = result.plan
    runtime_layer = next(l for l in plan.net.layers if l.name == layer)
    blob = runtime_layer.inputs[0]
    scale = result.scales[plan.scale_source[blob]]
    config = plan.layers[layer]
    narrowing: Optional[Dict[str, int]] = None
    if kind == "weights":
        config = apply_changes(config, {"bits": bits}, "what-if")
    elif bits < 8:
        scale, narrowing = _narrower(scale, bits), {blob: bits}
    net = copy.copy(alone)
    net.resources = dict(alone.resources)
    net.resources[layer] = quantize_layer(runtime_layer, result.float_net.resources[layer], scale.scale, config)
    if narrowing:
        net.resources[blob + BLOB_SCALE_SUFFIX] = scale.to_resource()
    return net, narrowing


def bitwidth_whatif(result: QuantResult, samples: Iterable[Batch], layers: Optional[Sequence[str]] = None,
                    bits: Sequence[int] = BITS, on_event: Listener = ignore) -> WhatIf:
    """The output error of every (layer, kind, bits) case; `layers` defaults to every weighted
    int8 layer."""
    every = revertible_layers(result)
    chosen = [name for name in (layers if layers is not None else every) if name in result.plan.layers]
    float_ref = float_reference(result)
    variants: List[Variant] = []
    for layer in chosen:
        alone = mixed_net(result, [n for n in every if n != layer])
        for kind in ("weights", "activations"):
            for b in bits:
                net, narrowing = _case(result, alone, layer, kind, b)
                variants.append(Variant(layer, net, float_ref, narrowing, (kind, b)))
    _, count = evaluate_variants(float_ref, [], variants, samples, "bit-width what-if", on_event)
    errors: Dict[str, Dict[tuple, OutputError]] = {}
    for v in variants:
        errors.setdefault(v.layer, {})[v.case] = v.error
    return WhatIf(errors, tuple(bits), count)


def whatif_rows(whatif: WhatIf) -> List[List[str]]:
    """Header and one row per layer: output SQNR (dB) per case."""
    cases = [(kind, b) for kind in ("weights", "activations") for b in whatif.bits]
    rows = [["layer"] + [f"{kind} {b}-bit" for kind, b in cases]]
    for layer, by_case in whatif.errors.items():
        rows.append([layer] + [f"{by_case[c].sqnr_db:.1f}" for c in cases])
    return rows


def format_whatif(whatif: WhatIf) -> str:
    rows = whatif_rows(whatif)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    title = (f"bit-width what-if on {whatif.samples} samples: output SQNR in dB against float with only that "
             "layer quantized, its weights or its input activations at the given bits (the other 8-bit; the rest "
             "of the model float)")
    return "\n".join([title] + ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                                for r in rows])
