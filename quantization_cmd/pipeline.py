"""A pipeline of passes over one quantization state (the shape of NNCF's Algorithm/Pipeline).

Each pass declares the statistics it needs (`statistics(state)`: empty statistics keyed by
what they measure) and then changes the state (`apply(state)`). Before a pass applies, one
data pass over the calibration samples fills every statistic it asked for that the state does
not hold yet, so statistics given from outside (merged shards, a previous run) are not
collected again. Stages, in order: passes that change only the float model, range estimation
(statistics, then scales), writing the int8 model, and passes that refine the int8 model.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from kernels import Interpreter
from kernels.threads import single_threaded_blas
from tnnformat import BlobScale, Net

from .config import QuantConfig
from .events import Listener, Progress, TaskDone, ignore
from .plan import Plan
from .shards import LOCAL, Runner, Work, shard_batches, side_by_side
from .statistics import StatKey, Statistic, Statistics, Summed

Batch = Dict[str, np.ndarray]
#: Calibration samples: a re-iterable of batches (a list, the CLI's file reader), a callable
#: giving a fresh iterable per data pass, a dict of arrays (one per input, samples first), or
#: one array for a model with one input.
Samples = Union[Iterable[Batch], Callable[[], Iterable[Batch]], Mapping[str, np.ndarray], np.ndarray]
BATCH = 8  # samples per forward pass: statistics do not depend on it, speed does
R = TypeVar("R")

FLOAT_MODEL, RANGES, QUANTIZE, REFINE = "float model", "ranges", "quantize", "refine"
STAGES = (FLOAT_MODEL, RANGES, QUANTIZE, REFINE)


@dataclass(frozen=True)
class Shard:
    """A run of whole batches of a data pass: its `samples` (in a form SampleSource takes,
    picklable), the number of samples before it and its batch count."""

    samples: Samples
    first: int
    batches: int


class SampleSource:
    """Samples as the pipeline reads them: batches, again for each data pass. With
    `one_at_a_time` (models whose shapes do not follow the batch) every batch is cut into
    single samples. Arrays, lists of batches and collections with a `shards(batches)` method
    (the CLI's files) can be cut into shards for worker processes."""

    def __init__(self, samples: Samples, net: Net, one_at_a_time: bool = False):
        self.one_at_a_time = one_at_a_time
        self.batch_size = getattr(samples, "size", BATCH)  # samples per batch, as given (about)
        self._cut: Optional[Callable[[int], List[Tuple[int, Samples, int]]]] = None
        if isinstance(samples, np.ndarray):
            if len(net.inputs) != 1:
                raise ValueError(f"the model has {len(net.inputs)} inputs: give a dict of arrays")
            samples = {next(iter(net.inputs)): samples}
        if isinstance(samples, Mapping):
            arrays = {k: np.asarray(v, np.float32) for k, v in samples.items()}
            count = min(len(v) for v in arrays.values())
            self._make = lambda: ({k: v[i:i + BATCH] for k, v in arrays.items()} for i in range(0, count, BATCH))
            self.batches = -(-count // BATCH)
            self._cut = lambda per: [(i, {k: v[i:min(i + per * BATCH, count)] for k, v in arrays.items()},
                                      -(-(min(i + per * BATCH, count) - i) // BATCH))
                                     for i in range(0, count, per * BATCH)]
        elif callable(samples):
            self._make, self.batches = samples, None
        else:
            if iter(samples) is samples:
                raise TypeError("samples must be re-iterable (a list of batches, or a callable that "
                                "returns a fresh iterable): calibration reads them more than once")
            self._make = lambda: samples
            self.batches = len(samples) if hasattr(samples, "__len__") else None
            if hasattr(samples, "shards"):
                self._cut = samples.shards
            elif isinstance(samples, Sequence):
                self._cut = lambda per: _list_shards(list(samples), per)

    def _samples(self, batch: Batch) -> Iterator[Batch]:
        count = len(next(iter(batch.values())))
        if not self.one_at_a_time or count == 1:
            yield batch
            return
        for i in range(count):
            yield {name: value[i:i + 1] for name, value in batch.items()}

    def __iter__(self) -> Iterator[Batch]:
        for batch in self._make():
            yield from self._samples(batch)

    def grouped(self, per: int) -> Iterator[Tuple[int, List[Batch]]]:
        """The batches in runs of `per` (of the batches as given, before any cut into single
        samples), each with the number of samples before it: the shards, read here."""
        first, run, given, size = 0, [], 0, 0
        for batch in self._make():
            run.extend(self._samples(batch))
            given, size = given + 1, size + len(next(iter(batch.values())))
            if given == per:
                yield first, run
                first, run, given, size = first + size, [], 0, 0
        if given:
            yield first, run

    def shards(self, per: int) -> Optional[List[Shard]]:
        """The source cut into shards of `per` batches, or None if it cannot be cut (a
        callable or an iterator: then the shards are read in this process)."""
        parts = self._cut(per) if self._cut is not None else None
        return None if parts is None else [Shard(part, first, batches) for first, part, batches in parts]


def _list_shards(batches: List[Batch], per: int) -> List[Tuple[int, List[Batch], int]]:
    sizes = [len(next(iter(b.values()))) for b in batches]
    return [(sum(sizes[:i]), batches[i:i + per], len(batches[i:i + per])) for i in range(0, len(batches), per)]


@dataclass
class QuantState:
    """Everything passes read and change: the float model (weight passes may rewrite it), the
    plan, the statistics so far, the blob scales and finally the quantized model."""

    float_net: Net
    config: QuantConfig
    plan: Plan
    statistics: Statistics = field(default_factory=dict)
    scales: Dict[str, BlobScale] = field(default_factory=dict)
    net: Optional[Net] = None
    emit: Listener = ignore


class Pass:
    """One step of the pipeline. `stage` orders it; `statistics` declares what it needs."""

    name = "pass"
    stage = RANGES

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        return {}

    def apply(self, state: QuantState) -> None:
        raise NotImplementedError


def fresh(stats: Mapping[StatKey, Statistic], first: int) -> Statistics:
    """Empty copies of `stats` for a shard that starts after `first` samples (statistics with
    a sample limit, `starts_at`, are told where)."""
    out: Statistics = {}
    for key, stat in stats.items():
        out[key] = copy.deepcopy(stat)
        if hasattr(out[key], "starts_at"):
            out[key].starts_at(first)
    return out


def observe(interpreter: Interpreter, stats: Mapping[StatKey, Statistic], batches: Iterable[Batch],
            locks: Mapping[StatKey, threading.Lock] = {}) -> None:
    """The float model over `batches`, feeding each blob to its statistics; those with a lock
    are shared with other threads and are added to under it."""
    by_blob: Dict[str, List[Tuple[Statistic, Optional[threading.Lock]]]] = {}
    for key, stat in stats.items():
        by_blob.setdefault(key.blob, []).append((stat, locks.get(key)))

    def hook(layer, blob: str, value: np.ndarray) -> None:
        for stat, lock in by_blob.get(blob, ()):
            if lock is None:
                stat.observe(value)
            else:
                summary = stat.summary(value)
                with lock:
                    stat.add(summary)

    for batch in batches:
        interpreter.forward(batch, hook=hook)


def _collect_setup(shared: Tuple[Net, Statistics, bool]) -> Tuple[Interpreter, Statistics, Net, bool]:
    net, requests, one_at_a_time = shared
    return Interpreter(net), requests, net, one_at_a_time


def _collect_shard(context: Tuple[Interpreter, Statistics, Net, bool], shard: Shard) -> Statistics:
    interpreter, requests, net, one_at_a_time = context
    stats = fresh(requests, shard.first)
    observe(interpreter, stats, SampleSource(shard.samples, net, one_at_a_time))
    return stats


COLLECT = Work(_collect_setup, _collect_shard)


def data_pass(samples: SampleSource, runner: Runner, work: Work, shared: object,
              local: Callable[[int, List[Batch]], R], emit: Listener, task: str,
              threads: bool = False) -> Iterator[R]:
    """Each shard's result, in shard order: from the runner's workers (`work` on `shared`)
    when the runner is remote and the samples can be cut, else from `local(first, batches)`
    here, with `threads` on one thread per core at once (`local` must then be safe to run
    in parallel). BLAS runs one thread in all of these (the results do not depend on where
    shards ran, and a forward pass with a hook gains little from BLAS threads: measured 7x
    less CPU time on SqueezeNet). Progress is reported per shard; ValueError if there were
    no samples."""
    per = shard_batches(samples.batch_size)
    shards = samples.shards(per) if runner.remote else None
    done = 0
    emit(Progress(task, 0, samples.batches))
    if shards is not None:
        for shard, result in zip(shards, runner.map(work, shared, shards)):
            done += shard.batches
            emit(Progress(task, done, samples.batches))
            yield result
    else:
        with single_threaded_blas():  # as in the workers: a threaded BLAS sums dot products in another order
            for count, result in side_by_side(lambda group: (len(group[1]), local(*group)), samples.grouped(per),
                                              threads):
                done += count
                emit(Progress(task, done, samples.batches))
                yield result
    emit(TaskDone(task))
    if done == 0:
        raise ValueError(f"{task}: got no samples")


#: Shards run one per core at once only when what each thread adds stays bounded: the blobs
#: of its forward pass (all of a batch's blobs, an upper bound: SqueezeNet 138 MB at batch 8,
#: ResNet50 and Inception v3 670-720 MB; measured, the second thread adds 100-250 MB to their
#: peak, which stays below onnxruntime's). The statistics accumulated in place are shared
#: (per-channel histograms of SqueezeNet: 106 MB, once).
THREAD_BLOB_BYTES = 1 << 30


def _batch_blob_bytes(interpreter: Interpreter, batch: int) -> int:
    """Bytes of all of a batch's float blobs (inf if the shapes cannot be inferred)."""
    shapes = interpreter.sample_shapes
    if shapes is None:
        return 1 << 62
    return 4 * batch * sum(int(np.prod(shape)) for shape in shapes.values())


def collect(net: Net, samples: Optional[SampleSource], requests: Mapping[StatKey, Statistic],
            emit: Listener = ignore, task: str = "calibration", runner: Runner = LOCAL) -> Statistics:
    """One pass of the float model over every batch, feeding each blob to its statistics, in
    shards (see shards.py) that run here or on the `runner`'s workers; the same result either way."""
    if samples is None:
        missing = sorted({key.blob for key in requests})
        raise ValueError(f"calibration needs samples: no statistics for blob '{missing[0]}'")
    interpreter = Interpreter(net)
    # statistics whose merge is exact in any order (ranges, integer counts) accumulate in place
    # into one copy that threads reading shards here share; the others start afresh in every shard
    pooled = {k: s for k, s in requests.items() if isinstance(s, Summed)}
    per_shard = {k: s for k, s in requests.items() if k not in pooled}
    threads = _batch_blob_bytes(interpreter, samples.batch_size) <= THREAD_BLOB_BYTES
    locks = {key: threading.Lock() for key in pooled} if threads else {}
    shared = fresh(pooled, 0)  # the requests stay empty
    observed = False

    def local(first: int, batches: List[Batch]) -> Statistics:
        nonlocal observed
        observed = True
        part = fresh(per_shard, first)
        observe(interpreter, {**shared, **part}, batches, locks)
        return part

    total: Statistics = {}
    for part in data_pass(samples, runner, COLLECT, (net, dict(requests), samples.one_at_a_time),
                          local, emit, task, threads):
        for key, stat in part.items():  # a worker's shard: its exact statistics merge in place
            if key not in total:
                total[key] = stat
            elif key in pooled:
                total[key].add(stat.totals())
            else:
                total[key] = total[key].merge(stat)
    if observed:
        total.update(shared)
    return {key: total[key] for key in requests}


def run(passes: Sequence[Pass], state: QuantState, samples: Optional[SampleSource],
        runner: Runner = LOCAL) -> QuantState:
    """Apply the passes in stage order, each after the data pass its statistics need."""
    for p in sorted(passes, key=lambda p: STAGES.index(p.stage)):
        wanted = {k: s for k, s in p.statistics(state).items() if k not in state.statistics}
        if wanted:
            state.statistics.update(collect(state.plan.net, samples, wanted, state.emit,
                                            f"calibration pass: {p.name}", runner))
        p.apply(state)
    return state
