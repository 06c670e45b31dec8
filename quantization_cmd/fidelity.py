"""How far the int8 model drifts from the float one, blob by blob.

Both models run on the same inputs; for every blob the int8 model quantizes we accumulate,
over all samples, the sums that give cosine similarity, SQNR and the largest absolute error,
so nothing but one batch of blobs is held at a time. The table is sorted worst first, which
puts the layer where accuracy is lost at the top (TNN's tool says nothing about it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from kernels import Interpreter
from kernels.threads import map_batch_parts
from tnnformat import Net

from .events import Listener, Progress, TaskDone, ignore
from .output_measures import ClassAgreement, OutputMeasure, measure_for
from .pipeline import SampleSource, Shard, data_pass
from .shards import LOCAL, Runner, Work


@dataclass
class BlobError:
    """Running sums of one blob's float (f) and int8 (q) values."""

    name: str
    layer: str
    fq: float = 0.0
    ff: float = 0.0
    qq: float = 0.0
    ee: float = 0.0
    max_abs: float = 0.0
    nonfinite: int = 0  # int8 values that were NaN or infinite

    def add(self, f: np.ndarray, q: np.ndarray) -> None:
        """Sums of products of the float32 values (see _sum_of_products); the error comes
        from its own differences. The cross term follows from the other three, fq = (ff +
        qq - ee) / 2, one pass fewer."""
        f, q = f.reshape(-1), q.reshape(-1)
        with np.errstate(all="ignore"):
            diff = f - q
            ff, qq, ee = _sum_of_products(f, f), _sum_of_products(q, q), _sum_of_products(diff, diff)
        self.ff, self.qq, self.ee = self.ff + ff, self.qq + qq, self.ee + ee
        self.fq += (ff + qq - ee) / 2
        if not math.isfinite(self.qq):
            self.nonfinite += int(np.count_nonzero(~np.isfinite(q)))
        self.max_abs = math.nan if self.nonfinite else max(self.max_abs, float(diff.max(initial=0.0)),
                                                            -float(diff.min(initial=0.0)))

    def merge(self, other: "BlobError") -> "BlobError":
        """The sums of two shards of the data, the first's first."""
        nonfinite = self.nonfinite + other.nonfinite
        return BlobError(self.name, self.layer, self.fq + other.fq, self.ff + other.ff, self.qq + other.qq,
                         self.ee + other.ee, math.nan if nonfinite else max(self.max_abs, other.max_abs), nonfinite)

    @property
    def cosine(self) -> float:
        if self.ff == 0 and self.qq == 0:
            return 1.0
        return self.fq / math.sqrt(self.ff * self.qq) if self.ff and self.qq else 0.0

    @property
    def sqnr_db(self) -> float:
        if self.ee == 0:
            return math.inf
        return 10 * math.log10(self.ff / self.ee) if self.ff else -math.inf


#: Values per float32 partial sum in _sum_of_products.
BLOCK = 64


def _sum_of_products(x: np.ndarray, y: np.ndarray) -> float:
    """sum(x * y) of float32 vectors: numpy's own float32 loop sums blocks of BLOCK values,
    and the block sums are added in float64. Five times faster than einsum casting every
    value to float64, within 1e-7 of it for one block and 1e-9 for blobs of SqueezeNet's
    size (the table prints six digits); numpy's code, not BLAS's, so the same shards give
    the same sums on any number of threads or processes. Products beyond float32's range
    (|values| above 1e19) make the whole sum again in float64."""
    whole = x.size - x.size % BLOCK
    blocks = np.einsum("ij,ij->i", x[:whole].reshape(-1, BLOCK), y[:whole].reshape(-1, BLOCK))
    total = float(blocks.sum(dtype=np.float64)) + float(np.einsum("i,i->", x[whole:], y[whole:], dtype=np.float64))
    if math.isinf(total) and np.isfinite(x).all() and np.isfinite(y).all():
        return float(np.einsum("i,i->", x, y, dtype=np.float64))
    return total


@dataclass
class Fidelity:
    blobs: List[BlobError]
    outputs: List[BlobError]
    samples: int = 0
    top1_agree: Optional[int] = None  # None when the first output does not look like class scores
    measures: Dict[str, OutputMeasure] = field(default_factory=dict)  # by output, where one applies

    @property
    def worst_first(self) -> List[BlobError]:
        """Blobs with NaN or infinite int8 values first, then by cosine and SQNR."""
        return sorted(self.blobs, key=lambda b: (b.nonfinite == 0, b.cosine if b.nonfinite == 0 else 0,
                                                 b.sqnr_db if b.nonfinite == 0 else 0))

    @property
    def nonfinite_blobs(self) -> int:
        return sum(1 for b in self.blobs + self.outputs if b.nonfinite)

    def merge(self, other: "Fidelity") -> "Fidelity":
        """Two shards of the data, the first's first; an output measure is kept where both
        shards chose the same kind."""
        measures = {name: m.merge(other.measures[name]) for name, m in self.measures.items()
                    if type(other.measures.get(name)) is type(m)}
        out = Fidelity([a.merge(b) for a, b in zip(self.blobs, other.blobs)],
                       [a.merge(b) for a, b in zip(self.outputs, other.outputs)],
                       self.samples + other.samples, measures=measures)
        first = measures.get(out.outputs[0].name) if out.outputs else None
        out.top1_agree = first.agree if isinstance(first, ClassAgreement) else None
        return out


FLOAT_MARK = "(float)"
#: Each batch is compared in this many pieces (in threads where the cores allow), a number
#: fixed so that the sums, added piece by piece, are the same on any machine and with -j.
PIECES = 2


def measure(float_net: Net, int8_net: Net, batches: Iterable[Dict[str, np.ndarray]],
            activation_bits: Optional[Dict[str, int]] = None, float_layers: Sequence[str] = (),
            emit: Listener = ignore) -> Fidelity:
    """Run both models on every batch and compare each int8 blob, and each output of a layer
    the config kept float, with its float value (blobs that TNN's runtime fuses away, such as
    a convolution's output before a fused Add, do not exist in the int8 run and are not
    listed). `activation_bits` simulates blobs below 8 bits. Float layers are marked."""
    float_run, int8_run = Interpreter(float_net), Interpreter(int8_net, activation_bits=activation_bits,
                                                                    check_finite=False)
    runtime_layers = int8_run.net.layers
    producers = {blob: layer for layer in runtime_layers for blob in layer.outputs}
    kept_float = set(float_layers)
    compared = [blob for layer in runtime_layers if layer.quantized or layer.name in kept_float
                for blob in layer.outputs]
    compared = [b for b in dict.fromkeys(compared) if b not in int8_net.outputs]

    def label(blob: str) -> str:
        name = producers[blob].name
        return name + FLOAT_MARK if name in kept_float else name

    errors = {b: BlobError(b, label(b)) for b in compared}
    outputs = {b: BlobError(b, producers[b].name if b in producers else "") for b in int8_net.outputs}
    measures: Dict[str, OutputMeasure] = {}
    samples = 0
    task = "comparing int8 with float"
    total = getattr(batches, "batches", None)
    emit(Progress(task, 0, total))
    split = float_run.batch_independent() and int8_run.batch_independent()

    def compare_part(part: Dict[str, np.ndarray]):
        """Both runs on some samples: the blob errors over them and both models' outputs."""
        part_errors = {b: BlobError(b, e.layer) for b, e in errors.items()}
        reference: Dict[str, np.ndarray] = {}

        def keep(layer, blob: str, value: np.ndarray) -> None:
            if blob in part_errors:
                reference[blob] = value

        def compare(layer, blob: str, value: np.ndarray) -> None:
            if blob in part_errors:
                part_errors[blob].add(reference.pop(blob), value)

        expected = float_run.forward(part, hook=keep)
        return part_errors, expected, int8_run.forward(part, hook=compare)

    for done, batch in enumerate(batches, 1):
        parts = map_batch_parts(compare_part, batch, PIECES) if split else [compare_part(batch)]
        for part_errors, _, _ in parts:
            for blob, err in part_errors.items():
                errors[blob] = errors[blob].merge(err)
        expected = {name: np.concatenate([p[1][name] for p in parts]) for name in outputs}
        got = {name: np.concatenate([p[2][name] for p in parts]) for name in outputs}
        if done == 1:
            measures = {name: m for name in outputs if (m := measure_for(expected[name])) is not None}
        for name, err in outputs.items():
            err.add(expected[name], got[name])
            if name in measures:
                measures[name].add(expected[name], got[name])
        samples += next(iter(batch.values())).shape[0]
        emit(Progress(task, done, total))
    emit(TaskDone(task))
    result = Fidelity(list(errors.values()), list(outputs.values()), samples, measures=measures)
    first = measures.get(int8_net.outputs[0])
    result.top1_agree = first.agree if isinstance(first, ClassAgreement) else None
    return result


FidelityJob = Tuple[Net, Net, Optional[Dict[str, int]], Sequence[str], bool]


def _shard_setup(shared: FidelityJob) -> FidelityJob:
    return shared


def _measure_shard(job: FidelityJob, shard: Shard) -> Fidelity:
    float_net, int8_net, bits, float_layers, one_at_a_time = job
    return measure(float_net, int8_net, SampleSource(shard.samples, float_net, one_at_a_time), bits, float_layers)


MEASURE = Work(_shard_setup, _measure_shard)


def measure_sharded(float_net: Net, int8_net: Net, samples: SampleSource,
                    activation_bits: Optional[Dict[str, int]] = None, float_layers: Sequence[str] = (),
                    emit: Listener = ignore, runner: Runner = LOCAL) -> Fidelity:
    """`measure` in shards of the data (here or on the runner's workers), merged in order:
    the same sums in the same order wherever the shards ran."""
    job: FidelityJob = (float_net, int8_net, activation_bits, tuple(float_layers), samples.one_at_a_time)
    total: Optional[Fidelity] = None
    for part in data_pass(samples, runner, MEASURE, job,
                          lambda first, batches: measure(float_net, int8_net, batches, activation_bits, float_layers),
                          emit, "comparing int8 with float"):
        total = part if total is None else total.merge(part)
    return total
