"""What to quantize and how: plain config objects, resolved once at the edge.

`QuantConfig` holds a default for blobs (activations) and one for weighted layers, plus
overrides matched by layer name (exact or glob), layer type or blob name, in the spirit of
NNCF's `ignored_scope` and PyTorch's `QConfigMapping`. TNN's `-b -w -t` integers become a
config in one place (`from_tnn_flags`); a JSON file gives the same objects (`load_json`).
Nothing below this module sees TNN's numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from tnnformat.files import read_regular_text

MIN_BITS, MAX_BITS = 2, 8
GRANULARITIES = ("channel", "tensor")


class ConfigError(ValueError):
    """A config that cannot apply (unknown method, bits out of range, a pattern that matches
    nothing); the message names the key, file or layer."""


def qmax(bits: int) -> int:
    """The largest code of a symmetric signed grid of `bits` bits (127 at 8 bits)."""
    return 2 ** (bits - 1) - 1


def _check_bits(bits: Any, where: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{where}: bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def _check_granularity(value: Any, where: str) -> str:
    if value not in GRANULARITIES:
        raise ConfigError(f"{where}: granularity must be one of {', '.join(GRANULARITIES)}, got {value!r}")
    return value


@dataclass(frozen=True)
class BlobConfig:
    """How one blob's scale is found: a range method (by name), per channel or per tensor,
    the bit width, symmetric or not (None: the method's own choice), and the method's one
    parameter where it has one (PERCENTILE's percentile, QUANTILE_*'s outlier probability;
    None: the method's default)."""

    method: str = "MIN_MAX"
    granularity: str = "channel"
    bits: int = 8
    symmetric: Optional[bool] = None
    param: Optional[float] = None

    @property
    def per_tensor(self) -> bool:
        return self.granularity == "tensor"

    def check(self, where: str) -> "BlobConfig":
        from .blob_methods import blob_method

        method = blob_method(self.method, where)
        _check_granularity(self.granularity, where)
        _check_bits(self.bits, where)
        if self.symmetric is not None and self.symmetric not in method.symmetry:
            kinds = "symmetric" if self.symmetric else "asymmetric"
            raise ConfigError(f"{where}: blob method {self.method} has no {kinds} form")
        if self.param is not None:
            if method.param_range is None:
                raise ConfigError(f"{where}: blob method {self.method} takes no param")
            low, high = method.param_range
            if isinstance(self.param, bool) or not isinstance(self.param, (int, float)) \
                    or not low < self.param < high:
                raise ConfigError(f"{where}: {self.method}'s param must be a number in ({low}, {high}), "
                                  f"got {self.param!r}")
        return self


@dataclass(frozen=True)
class LayerConfig:
    """How one weighted layer is quantized: its weight method (by name), per output channel
    or per tensor, the bit width, or kept float (`quantize=False`)."""

    weight_method: str = "MIN_MAX"
    granularity: str = "channel"
    bits: int = 8
    quantize: bool = True

    @property
    def per_tensor(self) -> bool:
        return self.granularity == "tensor"

    def check(self, where: str) -> "LayerConfig":
        from .weight_methods import weight_method

        weight_method(self.weight_method, where)
        _check_granularity(self.granularity, where)
        _check_bits(self.bits, where)
        return self


@dataclass(frozen=True)
class Override:
    """Settings for the layers and blobs a scope matches.

    Scope: `layers` (names or glob patterns), `types` (layer types), `blobs` (blob names or
    globs). `weights` and `activations` hold the fields to change (a dict of LayerConfig /
    BlobConfig fields); `activations` on a layer scope applies to the layers' output blobs.
    `float_layers=True` keeps the matched layers float."""

    layers: Tuple[str, ...] = ()
    types: Tuple[str, ...] = ()
    blobs: Tuple[str, ...] = ()
    weights: Dict[str, Any] = field(default_factory=dict)
    activations: Dict[str, Any] = field(default_factory=dict)
    float_layers: bool = False
    origin: str = "override"


@dataclass(frozen=True)
class QuantConfig:
    """The whole quantization config: defaults and overrides (later overrides win)."""

    activations: BlobConfig = BlobConfig()
    weights: LayerConfig = LayerConfig()
    overrides: Tuple[Override, ...] = ()

    def with_overrides(self, *more: Override) -> "QuantConfig":
        return replace(self, overrides=self.overrides + tuple(more))

    def check(self) -> "QuantConfig":
        self.activations.check("activations")
        self.weights.check("weights")
        for o in self.overrides:
            apply_changes(self.activations, o.activations, o.origin).check(o.origin)
            apply_changes(self.weights, o.weights, o.origin).check(o.origin)
        return self


def apply_changes(base, changes: Dict[str, Any], where: str):
    """`base` with the fields in `changes`; an unknown field is a ConfigError naming it."""
    names = {f.name for f in fields(base)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(names))})")
    return replace(base, **changes)

# TNN's integer flags, in this one place.
TNN_BLOB_METHODS = {0: "MIN_MAX", 2: "KL_DIVERGENCE", 3: "ASY_MIN_MAX", 4: "ACIQ_GAUS", 5: "ACIQ_LAPLACE"}
TNN_WEIGHT_METHODS = {0: "MIN_MAX", 1: "ADMM", 3: "ASY_MIN_MAX"}
#: -t: (blob granularity, weight granularity)
TNN_MERGE_TYPES = {0: ("channel", "channel"), 1: ("tensor", "channel"), 2: ("tensor", "tensor")}


def from_tnn_flags(blob_method: int = 0, weight_method: int = 0, merge_type: int = 0) -> QuantConfig:
    """The config TNN's `quantization_cmd -b -w -t` asks for."""
    blobs, weights = TNN_MERGE_TYPES[merge_type]
    return QuantConfig(BlobConfig(TNN_BLOB_METHODS[blob_method], blobs),
                       LayerConfig(TNN_WEIGHT_METHODS[weight_method], weights))


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a name or a list of names, got {value!r}")
    return tuple(value)


def _settings(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object of settings, got {value!r}")
    return dict(value)


OVERRIDE_KEYS = ("layers", "types", "blobs", "weights", "activations", "float")


def _override(item: Any, where: str) -> Override:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an object, got {item!r}")
    unknown = sorted(set(item) - set(OVERRIDE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(OVERRIDE_KEYS)})")
    scope = {k: _strings(item[k], f"{where}.{k}") for k in ("layers", "types", "blobs") if k in item}
    if not scope:
        raise ConfigError(f"{where}: give a scope: 'layers', 'types' or 'blobs'")
    float_layers = item.get("float", False)
    if not isinstance(float_layers, bool):
        raise ConfigError(f"{where}.float: expected true or false, got {float_layers!r}")
    return Override(**scope, weights=_settings(item.get("weights", {}), f"{where}.weights"),
                    activations=_settings(item.get("activations", {}), f"{where}.activations"),
                    float_layers=float_layers, origin=where)


def load_json(path: str, base: QuantConfig) -> QuantConfig:
    """A config file on top of `base` (the flags): top-level 'activations' and 'weights'
    replace fields of the defaults, 'overrides' are appended. Errors name the file and key."""
    name = Path(path).name
    try:
        data = json.loads(read_regular_text(path))
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file '{path}' is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a JSON object at the top")
    unknown = sorted(set(data) - {"activations", "weights", "overrides"})
    if unknown:
        raise ConfigError(f"{name}: unknown key '{unknown[0]}' (known: activations, weights, overrides)")
    activations = apply_changes(base.activations, _settings(data.get("activations", {}), f"{name}: activations"),
                         f"{name}: activations")
    weights = apply_changes(base.weights, _settings(data.get("weights", {}), f"{name}: weights"), f"{name}: weights")
    items = data.get("overrides", [])
    if not isinstance(items, list):
        raise ConfigError(f"{name}: overrides must be a list")
    overrides = tuple(_override(item, f"{name}: overrides[{i}]") for i, item in enumerate(items))
    return QuantConfig(activations, weights, base.overrides + overrides).check()


def float_layers_override(patterns: Sequence[str], origin: str = "--float_layers") -> Override:
    """`--float_layers a,b*,InnerProduct`: each item is a layer name, a glob or a layer type
    (an item that names a type present in the model is taken as a type)."""
    return Override(layers=tuple(patterns), types=tuple(patterns), float_layers=True, origin=origin)
