"""Calibration tables: the scales of a run as readable text, and back (the form tpu-mlir's and
ncnn's tables take); and AIMET's JSON encodings for people who mix tools.

A table line is one observed blob, `key=value` fields, lists with one value per channel
(one value per tensor):

    conv1 method=KL_DIVERGENCE granularity=channel bits=8 min=... max=... threshold=... scale=... zero_point=...

Asymmetric blobs have `threshold_min` and `threshold_max` instead of `threshold`. On load,
`scale` and `zero_point` are what counts; a line without `scale` takes it from its
threshold(s) (scale = threshold / qmax). `min`, `max` and the thresholds are for the reader.
Floats are written in the shortest form that reads back to the same float32.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from tnnformat import BlobScale, write_atomically
from tnnformat.files import read_regular_text

from .config import ConfigError, Override, qmax
from .events import Progress, TaskDone
from .pipeline import RANGES, Pass, QuantState
from .statistics import RANGE, StatKey

MAGIC = "# tnn-quantization calibration table"
CONFIG_FIELDS = ("method", "granularity", "bits")


class TableError(ConfigError):
    """A table that cannot be read or does not fit the model; names the file, line and blob."""


def _floats(values: np.ndarray) -> str:
    return ",".join(str(np.float32(v)) for v in np.asarray(values, np.float32).reshape(-1))


def _ints(values: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in np.asarray(values).reshape(-1))


def _line(result, blob: str) -> str:
    config, scale = result.plan.blobs[blob], result.scales[blob]
    fields = [blob, f"method={config.method}", f"granularity={config.granularity}", f"bits={config.bits}"]
    value_range = result.statistics.get(StatKey(blob, RANGE, config.per_tensor))
    if value_range is not None:
        fields += [f"min={_floats(value_range.min)}", f"max={_floats(value_range.max)}"]
    top, zero = np.float32(qmax(config.bits)), scale.zero_point.astype(np.float32)
    if np.any(scale.zero_point != 0):
        fields += [f"threshold_min={_floats(scale.scale * (-top - zero))}",
                   f"threshold_max={_floats(scale.scale * (top - zero))}"]
    else:
        fields.append(f"threshold={_floats(scale.scale * top)}")
    fields += [f"scale={_floats(scale.scale)}", f"zero_point={_ints(scale.zero_point)}"]
    return " ".join(fields)


def atomic_write(path: str, text: str) -> None:
    """Write `text` to `path` so that no half file is ever left (tnnformat.write_atomically)."""
    write_atomically([(path, lambda f: f.write(text.encode("utf-8")))])


def dump_table(path: str, result, header: Sequence[str] = ()) -> None:
    """Write the table of a `QuantResult`'s observed blobs; `header` lines (model, inputs,
    flags) first."""
    lines = [MAGIC] + [f"# {h}" for h in header]
    lines.append("# one line per blob: name, then key=value; lists hold one value per channel")
    lines += [_line(result, blob) for blob in result.plan.blobs]
    atomic_write(path, "\n".join(lines) + "\n")


@dataclass
class TableEntry:
    blob: str
    line: int
    config: Dict[str, object]
    scale: np.ndarray
    zero_point: np.ndarray


def _parse_numbers(text: str, kind, where: str) -> np.ndarray:
    try:
        values = np.array([kind(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise TableError(f"{where}: '{text[:40]}' is not a comma-separated list of numbers") from None
    if not np.all(np.isfinite(values)):
        raise TableError(f"{where}: values must be finite")
    return values


def _entry(path: str, number: int, text: str) -> TableEntry:
    where = f"{path}, line {number}"
    name, *pairs = text.split()
    fields: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise TableError(f"{where}: expected key=value, got '{pair}'")
        fields[key] = value
    config: Dict[str, object] = {k: fields[k] for k in ("method", "granularity") if k in fields}
    bits = 8
    if "bits" in fields:
        if not fields["bits"].isdigit():
            raise TableError(f"{where}: bits must be an integer, got '{fields['bits']}'")
        bits = config["bits"] = int(fields["bits"])
    zero = _parse_numbers(fields.get("zero_point", "0"), int, where)
    if "scale" in fields:
        scale = _parse_numbers(fields["scale"], float, where)
    elif "threshold" in fields:
        scale = _parse_numbers(fields["threshold"], float, where) / qmax(min(max(bits, 2), 8))
    else:
        raise TableError(f"{where}: blob '{name}' has neither scale= nor threshold=")
    if np.any(scale <= 0):
        raise TableError(f"{where}: blob '{name}' has a scale that is not positive")
    if zero.size not in (1, scale.size):
        raise TableError(f"{where}: blob '{name}' has {scale.size} scales and {zero.size} zero points")
    if np.any(np.abs(zero) > 127):
        raise TableError(f"{where}: blob '{name}' has a zero point outside [-127, 127]")
    return TableEntry(name, number, config, scale.astype(np.float32),
                      np.broadcast_to(zero, scale.shape).astype(np.int8))


def load_table(path: str) -> Dict[str, TableEntry]:
    """The table's entries by blob; a TableError names the file and line of a bad one."""
    try:
        lines = read_regular_text(path).splitlines()
    except OSError as exc:
        raise TableError(f"cannot read table '{path}': {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TableError(f"table '{path}' is not a text file") from None
    entries: Dict[str, TableEntry] = {}
    for number, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        entry = _entry(path, number, text)
        if entry.blob in entries:
            raise TableError(f"{path}, line {number}: blob '{entry.blob}' is listed twice")
        entries[entry.blob] = entry
    if not entries:
        raise TableError(f"table '{path}' lists no blobs")
    return entries


def table_overrides(path: str, entries: Dict[str, TableEntry]) -> List[Override]:
    """Each line's method, granularity and bits as an override of its blob, so the plan
    takes the table's settings (and a blob the model does not have is an error naming it)."""
    return [Override(blobs=(e.blob,), activations=dict(e.config), origin=f"{path}, line {e.line}")
            for e in entries.values()]


class TableScales(Pass):
    """Scales from a calibration table instead of from data; every observed blob must be in
    the table with one scale per channel (one per tensor), and nothing else may be."""

    name = "table"
    stage = RANGES

    def __init__(self, entries: Dict[str, TableEntry], path: str = "table"):
        self.entries, self.path = entries, path

    def apply(self, state: QuantState) -> None:
        plan = state.plan
        missing = [b for b in plan.blobs if b not in self.entries]
        if missing:
            raise TableError(f"{self.path}: no line for blob '{missing[0]}', which the model quantizes")
        extra = [b for b in self.entries if b not in plan.blobs]
        if extra:
            raise TableError(f"{self.path}, line {self.entries[extra[0]].line}: blob '{extra[0]}' is not "
                             "one the model quantizes")
        for blob, config in plan.blobs.items():
            entry = self.entries[blob]
            shape = plan.sample_shape(blob)
            wanted = 1 if config.per_tensor else (shape[0] if shape else 1)
            if entry.scale.size != wanted:
                what = "per tensor" if config.per_tensor else "per channel"
                raise TableError(f"{self.path}, line {entry.line}: blob '{blob}' has {entry.scale.size} "
                                 f"scales; the model needs {wanted} ({what})")
            state.scales[blob] = BlobScale(entry.scale, entry.zero_point)
        state.emit(Progress("reading the table", len(plan.blobs), len(plan.blobs)))
        state.emit(TaskDone("reading the table"))


def _aimet(scale: np.ndarray, zero_point: np.ndarray, bits: int, symmetric: bool) -> List[dict]:
    """AIMET's encoding per channel: real = (q + offset) * scale with q in [0, 2**bits - 1];
    our codes are q - 2**(bits-1), so offset = -2**(bits-1) - zero_point."""
    out = []
    for s, z in zip(np.asarray(scale, np.float64).reshape(-1), np.asarray(zero_point).reshape(-1)):
        offset = -(2 ** (bits - 1)) - int(z)
        out.append({"bitwidth": bits, "dtype": "int", "is_symmetric": str(bool(symmetric)),
                    "max": float(s * (2 ** bits - 1 + offset)), "min": float(s * offset),
                    "offset": offset, "scale": float(s)})
    return out


def write_encodings(path: str, result) -> None:
    """A `QuantResult`'s encodings in AIMET's JSON layout: every blob with a scale (per
    channel where it is) and the weights of every weighted layer."""
    from .blob_methods import blob_method

    plan, net = result.plan, result.net
    activations = {}
    for blob, source in plan.scale_source.items():
        config, scale = plan.blobs[source], result.scales[source]
        symmetric = blob_method(config.method).is_symmetric(config) and not np.any(scale.zero_point)
        activations[blob] = _aimet(scale.scale, scale.zero_point, config.bits, symmetric)
    params = {}
    for name in plan.weighted:
        resource, config = net.resources[name], plan.layers[name]
        zero = resource["zero_point"].numpy()
        params[f"{name}.weight"] = _aimet(resource["scale"].numpy(np.float32), zero, config.bits,
                                          not np.any(zero))
    document = {"version": "0.6.1", "activation_encodings": activations, "param_encodings": params,
                "excluded_layers": list(plan.float_layers)}
    atomic_write(path, json.dumps(document, indent=1) + "\n")


def table_header(model: str, inputs: str, flags: Optional[str]) -> List[str]:
    return [f"model: {model}", f"inputs: {inputs}"] + ([f"flags: {flags}"] if flags else [])
