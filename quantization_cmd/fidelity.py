"""How far the int8 model drifts from the float one, blob by blob.

Both models run on the same inputs; for every blob the int8 model quantizes we accumulate,
over all samples, the sums that give cosine similarity, SQNR and the largest absolute error,
so nothing but one batch of blobs is held at a time. The table is sorted worst first, which
puts the layer where accuracy is lost at the top (TNN's tool says nothing about it).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from kernels import Interpreter, KernelError
from kernels.int8 import Int8Blob
from kernels.threads import map_batch_parts
from tnnformat import BlobScale, Net

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

    def add(self, f: np.ndarray, q: Union[np.ndarray, Int8Blob]) -> None:
        """The sums over `f` and `q` (int8 codes, or floats for an output), taken piece by
        piece in a working buffer that stays in cache (see _pieces), so each value is read
        from memory once. The cross term follows from the other three, fq = (ff + qq - ee) / 2."""
        ff = qq = ee = low = high = 0.0  # the padding's zeros are among the differences anyway
        nonfinite = 0
        with np.errstate(all="ignore"):
            for piece in _pieces(f, q):
                diff = np.subtract(piece[0], piece[1], out=piece[2])
                pf, pq, pe = _sums_of_squares(piece)
                ff, qq, ee = ff + pf, qq + pq, ee + pe
                low, high = min(low, float(diff.min())), max(high, float(diff.max()))
                if not math.isfinite(pq):
                    nonfinite += int(np.count_nonzero(~np.isfinite(piece[1])))
        self.ff, self.qq, self.ee = self.ff + ff, self.qq + qq, self.ee + ee
        self.fq += (ff + qq - ee) / 2
        self.nonfinite += nonfinite
        self.max_abs = math.nan if self.nonfinite else max(self.max_abs, high, -low)

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


#: Values per float32 partial sum in _sums_of_squares.
BLOCK = 64
#: Values compared at a time: a piece's float values, int8 values and differences take
#: 768 KB, inside L2, so after the first read of each value the passes run in cache.
CHUNK = 1024 * BLOCK
_local = threading.local()  # per thread: the working buffer of _pieces


def _pieces(f: np.ndarray, q: Union[np.ndarray, Int8Blob]) -> Iterator[np.ndarray]:
    """`f` and `q` about CHUNK values at a time, as (3, m) float32 working arrays: row 0 the
    float values, row 1 the int8 values as floats (codes dequantized as Int8Blob.dequantize
    does, bit for bit), row 2 free for the differences; m is a multiple of BLOCK, the rows
    padded with zeros (which add nothing to any sum). The pieces of a per-channel blob are
    whole (sample, channel) rows, so that each row has one scale."""
    if not isinstance(q, Int8Blob):
        flat_f, flat_q = f.reshape(-1), q.reshape(-1)
        for start in range(0, flat_f.size, CHUNK):
            piece = _working(min(CHUNK, flat_f.size - start))
            np.copyto(piece[1, :flat_f[start:start + CHUNK].size], flat_q[start:start + CHUNK], casting="unsafe")
            yield _with_float(piece, flat_f[start:start + CHUNK])
        return
    codes = q.values
    scale, zero = (a.reshape(-1) for a in q.scale.per_channel(codes.ndim))
    scale = scale.astype(np.float32)
    channels = scale.size
    floats = f.reshape(-1)
    if channels > 1:
        width = codes.size // max(codes.shape[0] * channels, 1)
        rows, step = codes.reshape(-1, width), max(1, CHUNK // width)
        # rows are (sample, channel): a piece's from channel c on are rows c... of this pattern
        which = np.arange(min(step, len(rows)) + channels) % channels
        scales, zeros = scale[which, None], zero[which, None].astype(np.float32)
    else:
        rows, step, width = codes.reshape(-1), CHUNK, 1
        scales, zeros = scale, zero.astype(np.float32)
    shifted = bool(zeros.any())
    for start in range(0, len(rows), step):  # rows of a per-channel blob, values of a per-tensor one
        part = rows[start:start + step]
        piece = _working(part.size)
        values = piece[1, :part.size].reshape(part.shape)
        np.copyto(values, part, casting="unsafe")
        rows_of = slice(None) if channels == 1 else slice(start % channels, start % channels + len(part))
        if shifted:
            values -= zeros[rows_of]
        values *= scales[rows_of]
        yield _with_float(piece, floats[start * width:start * width + part.size])


def _working(size: int) -> np.ndarray:
    """This thread's (3, m) working array for `size` values (m: size rounded up to BLOCK),
    reused from piece to piece and blob to blob; the padding is zeroed."""
    padded = -(-size // BLOCK) * BLOCK
    work = getattr(_local, "work", None)
    if work is None or work.shape[1] < padded:
        work = _local.work = np.empty((3, max(padded, CHUNK)), np.float32)
    piece = work[:, :padded]
    piece[:, size:] = 0
    return piece


def _with_float(piece: np.ndarray, values: np.ndarray) -> np.ndarray:
    np.copyto(piece[0, :values.size], values)
    return piece


def _sums_of_squares(piece: np.ndarray) -> Tuple[float, float, float]:
    """sum(x * x) of each row of a (3, m) working array: numpy's own float32 loop sums blocks
    of BLOCK values, and the block sums are added in float64. Five times faster than einsum
    casting every value to float64, within 1e-7 of it for one block and 1e-9 for blobs of
    SqueezeNet's size (the table prints six digits); numpy's code, not BLAS's, so the same
    shards give the same sums on any number of threads or processes. Products beyond
    float32's range (|values| above 1e19) make that row's sum again in float64."""
    blocks = piece.reshape(3, -1, BLOCK)
    totals = [float(t) for t in np.einsum("kij,kij->ki", blocks, blocks).sum(axis=1, dtype=np.float64)]
    for row, total in enumerate(totals):
        if math.isinf(total) and np.isfinite(piece[row]).all():
            totals[row] = float(np.einsum("i,i->", piece[row], piece[row], dtype=np.float64))
    return totals[0], totals[1], totals[2]


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
    return Comparison(float_net, int8_net, activation_bits, float_layers).measure(batches, emit)


class Comparison:
    """The two models made ready once for `measure` (their interpreters, hence their
    prepared weights, and which blobs are compared and how), shared by the threads that
    measure shards here and made once per worker elsewhere: two shards at once must not hold
    two copies of ResNet50's prepared weights."""

    def __init__(self, float_net: Net, int8_net: Net, activation_bits: Optional[Dict[str, int]] = None,
                 float_layers: Sequence[str] = ()):
        # the float run checks its outputs, not every layer's (the calibration pass did, on these
        # inputs as a rule); a non-finite output runs the part again to name the layer
        self.float_net = float_net
        self.float_run = Interpreter(float_net, check_finite=False)
        self.int8_run = Interpreter(int8_net, activation_bits=activation_bits, check_finite=False)
        runtime_layers = self.int8_run.net.layers
        producers = {blob: layer for layer in runtime_layers for blob in layer.outputs}
        kept_float = set(float_layers)
        compared = [blob for layer in runtime_layers if layer.quantized or layer.name in kept_float
                    for blob in layer.outputs]
        compared = [b for b in dict.fromkeys(compared) if b not in int8_net.outputs]
        self.labels = {b: producers[b].name + (FLOAT_MARK if producers[b].name in kept_float else "")
                       for b in compared}
        self.output_labels = {b: producers[b].name if b in producers else "" for b in int8_net.outputs}
        self.copies = copied_concatenations(self.int8_run, set(compared))
        self.split = self.float_run.batch_independent() and self.int8_run.batch_independent()

    def measure(self, batches: Iterable[Dict[str, np.ndarray]], emit: Listener = ignore) -> Fidelity:
        """The blob errors and output measures over `batches` (see `measure`)."""
        errors = {b: BlobError(b, label) for b, label in self.labels.items()}
        outputs = {b: BlobError(b, label) for b, label in self.output_labels.items()}
        measures: Dict[str, OutputMeasure] = {}
        samples = 0
        task = "comparing int8 with float"
        total = getattr(batches, "batches", None)
        emit(Progress(task, 0, total))
        for done, batch in enumerate(batches, 1):
            parts = map_batch_parts(self.compare_part, batch, PIECES) if self.split else [self.compare_part(batch)]
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
        first = measures.get(next(iter(self.output_labels)))
        result.top1_agree = first.agree if isinstance(first, ClassAgreement) else None
        return result

    def compare_part(self, part: Dict[str, np.ndarray]):
        """Both runs on some samples, side by side: the float run goes ahead only as far as
        the int8 run's next compared blob, and each float blob is dropped once compared, so a
        few blobs are held at a time, not the whole float run's. The blob errors over the
        samples and both models' outputs."""
        part_errors = {b: BlobError(b, label) for b, label in self.labels.items()}
        copies, outputs = self.copies, self.output_labels
        reference: Dict[str, np.ndarray] = {}
        expected: Dict[str, np.ndarray] = {}
        float_steps = self.float_run.steps(part)

        def advance(until: Optional[str]) -> None:
            for _, blob, value in float_steps:
                if blob in outputs:
                    expected[blob] = value
                if blob in part_errors and blob not in copies:
                    reference[blob] = value
                if blob == until:
                    return
            if until is not None:
                raise KernelError(f"the float model never produces blob '{until}', which the int8 model does")

        def compare(layer, blob: str, value) -> None:
            if blob in copies:
                for source in copies[blob]:
                    part_errors[blob] = part_errors[blob].merge(part_errors[source])
            elif blob in part_errors:
                if blob not in reference:
                    advance(blob)
                part_errors[blob].add(reference.pop(blob), value)

        with np.errstate(all="ignore"):
            got = self.int8_run.forward(part, hook=compare, codes=True)
            advance(None)
        if not all(np.isfinite(v).all() for v in expected.values()):
            Interpreter(self.float_net).forward(part, hook=lambda *_: None)  # checks every layer: raises
        return part_errors, expected, got


def copied_concatenations(run: Interpreter, compared: Set[str]) -> Dict[str, List[str]]:
    """Int8 concatenations along channels whose values are their inputs' values: the codes
    copied (TNN's per-channel concatenation) under the very scales and zero points the inputs
    have, channel for channel, and no narrower bits; per-channel ranges give that, as a
    channel's range is the same in the concatenation as in its input. Their sums are their
    compared inputs' sums, not taken again (a third of SqueezeNet's compared values at -t 0)."""
    copies: Dict[str, List[str]] = {}
    shapes = run.sample_shapes
    int8_made = {b for layer, scales in zip(run.net.layers, run.scales) if scales is not None for b in layer.outputs}
    for layer, scales in zip(run.net.layers, run.scales):
        if layer.type != "Concat" or scales is None or shapes is None or len(layer.outputs) != 1:
            continue
        ins, (out,) = scales
        blob = layer.outputs[0]
        # its inputs compared as int8 codes (not a float layer's values, quantized here first)
        if blob not in compared or not all(b in compared and b in int8_made for b in layer.inputs) or \
                run.activation_bits.get(blob, 8) < 8 or layer.params["axis"] % len(shapes[blob]) != 1 or \
                all(s.scale.size == 1 for s in ins + [out]):
            continue
        parts = [_per_channel(s, shapes[b][1]) for s, b in zip(ins + [out], layer.inputs + [blob])]
        if all(p is not None for p in parts) and np.array_equal(np.concatenate(parts[:-1], axis=1), parts[-1]):
            copies[blob] = list(layer.inputs)
    return copies


def _per_channel(scale: BlobScale, channels: int) -> Optional[np.ndarray]:
    """(2, channels): the float32 scale and the zero point each channel is dequantized with;
    None if the scale fits neither one value nor one per channel."""
    values = np.stack([scale.scale.astype(np.float32).reshape(-1), scale.zero_point.astype(np.float32).reshape(-1)])
    return np.broadcast_to(values, (2, channels)) if values.shape[1] in (1, channels) else None


FidelityJob = Tuple[Net, Net, Optional[Dict[str, int]], Sequence[str], bool]


def _shard_setup(shared: FidelityJob) -> Tuple[Comparison, bool]:
    float_net, int8_net, bits, float_layers, one_at_a_time = shared
    return Comparison(float_net, int8_net, bits, float_layers), one_at_a_time


def _measure_shard(context: Tuple[Comparison, bool], shard: Shard) -> Fidelity:
    comparison, one_at_a_time = context
    return comparison.measure(SampleSource(shard.samples, comparison.float_net, one_at_a_time))


MEASURE = Work(_shard_setup, _measure_shard)


def measure_sharded(float_net: Net, int8_net: Net, samples: SampleSource,
                    activation_bits: Optional[Dict[str, int]] = None, float_layers: Sequence[str] = (),
                    emit: Listener = ignore, runner: Runner = LOCAL) -> Fidelity:
    """`measure` in shards of the data (here, one shard per core at once, or on the runner's
    workers), merged in order: the same sums in the same order wherever the shards ran. Here,
    shards in threads leave no core waiting for the other at each batch's end (as the batch's
    halves did): SqueezeNet's check on 100 images 2.33-2.38 -> 2.16-2.25 s."""
    job: FidelityJob = (float_net, int8_net, activation_bits, tuple(float_layers), samples.one_at_a_time)
    # shards run here share one Comparison: made now for a local runner, else for the shards a
    # remote runner leaves here (samples it cannot cut), which then run one at a time
    here = None if runner.remote else _shard_setup(job)[0]

    def measure_here(first: int, batches) -> Fidelity:
        nonlocal here
        if here is None:
            here = _shard_setup(job)[0]
        return here.measure(batches)

    # in threads where a batch splits into parts (each thread then holds one part's blobs, as
    # the batch's parts did in threads before); a batch that cannot split runs one at a time
    threads = here is not None and here.split
    total: Optional[Fidelity] = None
    for part in data_pass(samples, runner, MEASURE, job, measure_here, emit, "comparing int8 with float",
                          threads=threads):
        total = part if total is None else total.merge(part)
    return total
