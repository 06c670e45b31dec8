"""Per-layer sensitivity, both ways AIMET's QuantAnalyzer measures it: the model's output
error when only that layer is int8 (the rest float), and when only that layer is float (the
rest int8).

Cheap by construction. Each batch runs two reference models once, all float and all int8,
keeping the blobs the variants will read; a variant then runs only the layers whose results
differ from its reference (the changed layers and what depends on them), reading everything
else from the kept blobs, and the variants of a batch are spread over the cores. A kept int8
blob is dequantized; an int8 layer downstream requantizes it with the same scale, which gives
back the very codes, so the partial run is exactly the full one.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from kernels import Interpreter
from kernels.threads import WORKERS, single_threaded_blas
from tnnformat import BLOB_SCALE_SUFFIX, Layer, Net

from .api import QuantResult
from .events import Listener, Progress, TaskDone, ignore
from .fidelity import BlobError
from .mixed import mixed_net, revertible_layers
from .output_measures import ClassAgreement, measure_for

Batch = Dict[str, np.ndarray]


@dataclass
class OutputError:
    """How far a model's outputs are from float's: SQNR and cosine over all outputs, and the
    top-1 agreement of the first output where it holds class scores."""

    error: BlobError = field(default_factory=lambda: BlobError("outputs", ""))
    agreement: Optional[ClassAgreement] = None

    def add(self, expected: Dict[str, np.ndarray], got: Dict[str, np.ndarray], first: str) -> None:
        for name, value in expected.items():
            self.error.add(value, got[name])
        if self.agreement is None and isinstance(measure_for(expected[first]), ClassAgreement):
            self.agreement = ClassAgreement()
        if self.agreement is not None:
            self.agreement.add(expected[first], got[first])

    @property
    def sqnr_db(self) -> float:
        return self.error.sqnr_db

    @property
    def agree_percent(self) -> Optional[float]:
        return None if self.agreement is None else 100 * self.agreement.rate


def _same(a: Layer, b: Layer, net_a: Net, net_b: Net) -> bool:
    """Whether two runtime layers compute the same thing: same graph position, params,
    resource objects and (for int8 layers) blob scale objects."""
    if (a.type, a.quantized, a.inputs, a.outputs, a.params) != (b.type, b.quantized, b.inputs, b.outputs, b.params):
        return False
    if net_a.resources.get(a.name) is not net_b.resources.get(b.name):
        return False
    return not a.quantized or all(net_a.resources.get(x + BLOB_SCALE_SUFFIX) is net_b.resources.get(x + BLOB_SCALE_SUFFIX)
                                  for x in a.inputs + a.outputs)


def partial_run(variant: Net, reference: Net, available: Set[str]) -> Tuple[List[int], Set[str]]:
    """For two runtime graphs: the indices of the variant's layers to run and the blobs to
    read from a run of the reference (a subset of `available`). Layers that differ run, so do
    those reading their results, and so do unchanged layers whose results the reference run
    does not hold (fused away there)."""
    by_name = {layer.name: layer for layer in reference.layers}
    producer = {blob: i for i, layer in enumerate(variant.layers) for blob in layer.outputs}
    dirty: Set[str] = set()
    run: Set[int] = set()
    for i, layer in enumerate(variant.layers):
        other = by_name.get(layer.name)
        if other is None or not _same(layer, other, variant, reference) or dirty.intersection(layer.inputs):
            run.add(i)
            dirty.update(layer.outputs)
    while True:
        needed = {b for i in run for b in variant.layers[i].inputs if producer.get(b) not in run}
        needed |= {b for b in variant.outputs if producer.get(b) not in run}
        missing = needed - available
        if not missing:
            return sorted(run), needed
        for blob in missing:
            if blob not in producer:
                raise ValueError(f"blob '{blob}' is neither produced nor kept")
            run.add(producer[blob])


class Variant:
    """One model run partially against a reference model, with its output error so far.
    `activation_bits` narrows blobs as the interpreter simulates it; `case` labels it."""

    def __init__(self, layer: str, net: Net, reference: Interpreter,
                 activation_bits: Optional[Dict[str, int]] = None, case: tuple = ()):
        self.layer, self.case = layer, case
        self.interpreter = Interpreter(net, activation_bits=activation_bits, check_finite=False)
        self.run, self.needed = partial_run(self.interpreter.net, reference.net, _made(reference.net))
        self.reference = reference
        self.error = OutputError()

    def evaluate(self, kept: Batch, expected: Dict[str, np.ndarray]) -> None:
        outputs = self.interpreter.forward_layers({b: kept[b] for b in self.needed}, self.run,
                                                  self.interpreter.net.outputs)
        self.error.add(expected, outputs, self.interpreter.net.outputs[0])


def float_reference(result: QuantResult) -> Interpreter:
    """The all-float model as mixed models are built, so that their unchanged layers match."""
    return Interpreter(mixed_net(result, revertible_layers(result)), check_finite=False)


def evaluate_variants(float_ref: Interpreter, others: Sequence[Interpreter], variants: Sequence[Variant],
                      samples: Iterable[Batch], task: str, on_event: Listener = ignore) -> Tuple[List[OutputError], int]:
    """Run every batch once through the float reference and each of `others` (keeping the
    blobs the variants read), then each variant's partial run, spread over the cores. Returns
    the output error of each of `others` and the sample count; the variants keep their own."""
    references = [float_ref] + [r for r in others if r is not float_ref]
    keep = {id(r): sorted(set().union(set(), *(v.needed for v in variants if v.reference is r)) - set(r.net.inputs))
            for r in references}
    errors = [OutputError() for _ in others]
    total = getattr(samples, "batches", None)
    on_event(Progress(task, 0, total))
    count = 0
    first = float_ref.net.outputs[0]
    with ThreadPoolExecutor(WORKERS) as pool:
        for done, batch in enumerate(samples, 1):
            kept = {id(r): dict(r.forward(batch, keep=keep[id(r)]), **batch) for r in references}
            expected = {name: kept[id(float_ref)][name] for name in float_ref.net.outputs}
            for error, other in zip(errors, others):
                error.add(expected, kept[id(other)], first)
            with single_threaded_blas():
                list(pool.map(lambda v: v.evaluate(kept[id(v.reference)], expected), variants))
            count += len(next(iter(batch.values())))
            on_event(Progress(task, done, total))
    on_event(TaskDone(task))
    return errors, count


@dataclass
class LayerSensitivity:
    layer: str
    type: str
    int8_alone: Optional[OutputError]  # only this layer int8, the rest float
    float_alone: Optional[OutputError]  # only this layer float, the rest int8 (or the base model)


@dataclass
class Sensitivity:
    """Rows in rank order (the largest gain from keeping the layer float first), the error of
    the base model (all int8, or int8 with `base_float` float) and the sample count."""

    rows: List[LayerSensitivity]
    base: OutputError
    samples: int
    base_float: Tuple[str, ...] = ()

    @property
    def ranking(self) -> List[str]:
        return [row.layer for row in self.rows]


def _rank_key(row: LayerSensitivity) -> Tuple[float, float]:
    """Highest SQNR with the layer float first; ties: the lowest SQNR with it alone int8."""
    gain = row.float_alone.sqnr_db if row.float_alone is not None else -math.inf
    alone = row.int8_alone.sqnr_db if row.int8_alone is not None else math.inf
    return (-gain, alone)


def _made(net: Net) -> Set[str]:
    """The blobs a run of `net` can keep: its inputs and every layer's outputs."""
    return set(net.inputs) | {blob for layer in net.layers for blob in layer.outputs}


def sensitivity(result: QuantResult, samples: Iterable[Batch], layers: Optional[Sequence[str]] = None,
                base_float: Sequence[str] = (), int8_alone: bool = True,
                on_event: Listener = ignore) -> Sensitivity:
    """Rank `layers` (default: every layer that can be kept float) of `result`'s int8 model.
    `base_float`: layers already float in the base model, for re-ranking during accuracy
    control; `int8_alone=False` skips the first measure (the base model is then the only
    reference). Progress per batch."""
    candidates = [name for name in (layers if layers is not None else revertible_layers(result))
                  if name not in set(base_float)]
    every = revertible_layers(result)
    float_ref = float_reference(result)
    base_ref = Interpreter(mixed_net(result, base_float), check_finite=False)
    alone = [Variant(name, mixed_net(result, [n for n in every if n != name]), float_ref)
             for name in candidates] if int8_alone else []
    reverted = [Variant(name, mixed_net(result, list(base_float) + [name]), base_ref) for name in candidates]
    (base,), count = evaluate_variants(float_ref, [base_ref], alone + reverted, samples,
                                       "sensitivity" if not base_float else "re-ranking", on_event)
    types = {layer.name: layer.type for layer in result.plan.net.layers}
    by_alone = {v.layer: v.error for v in alone}
    rows = [LayerSensitivity(v.layer, types[v.layer], by_alone.get(v.layer), v.error) for v in reverted]
    return Sensitivity(sorted(rows, key=_rank_key), base, count, tuple(base_float))


def _cell(error: Optional[OutputError]) -> str:
    if error is None:
        return f"{'-':>8} {'-':>8}"
    agree = error.agree_percent
    return f"{error.sqnr_db:8.1f} {'-' if agree is None else f'{agree:.1f}':>8}"


SENSITIVITY_NOTE = ("the model's output error against float with only that layer int8 (the rest float) and "
                    "with only that layer float (the rest int8): SQNR in dB over all outputs, higher is better; "
                    "agree: top-1 agreement with float, %; ranked by the SQNR with only that layer float")


def sensitivity_rows(result: Sensitivity) -> List[List[str]]:
    """Header and one row per layer, in rank order (for the HTML report)."""
    rows = [["layer", "type", "only this int8: SQNR dB", "agree %", "only this float: SQNR dB", "agree %"]]
    for row in result.rows:
        rows.append([row.layer, row.type] + _cell(row.int8_alone).split() + _cell(row.float_alone).split())
    return rows


def format_sensitivity(result: Sensitivity) -> str:
    """The ranked table, with the metric named."""
    width = max([len(r.layer) for r in result.rows] + [5])
    base = "int8" if not result.base_float else f"int8 with {len(result.base_float)} layers float"
    agree = result.base.agree_percent
    lines = [f"per-layer sensitivity on {result.samples} samples: the model's output error against float "
             "(SQNR in dB over all outputs, higher is better; agree: top-1 agreement with float, %),",
             "ranked by the SQNR with only that layer float (the most gained by keeping it float first)",
             f"{'':{width}}  {'':14} {'only this int8':>17}   {'only this float':>17}",
             f"{'layer':{width}}  {'type':14} {'SQNR dB':>8} {'agree':>8}   {'SQNR dB':>8} {'agree':>8}"]
    for row in result.rows:
        lines.append(f"{row.layer:{width}}  {row.type:14} {_cell(row.int8_alone)}   {_cell(row.float_alone)}")
    lines.append(f"{base}: output SQNR {result.base.sqnr_db:.1f} dB"
                 + ("" if agree is None else f", top-1 agreement {agree:.1f}%"))
    return "\n".join(lines)
