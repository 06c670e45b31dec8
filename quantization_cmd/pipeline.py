"""A pipeline of passes over one quantization state (the shape of NNCF's Algorithm/Pipeline).

Each pass declares the statistics it needs (`statistics(state)`: empty statistics keyed by
what they measure) and then changes the state (`apply(state)`). Before a pass applies, one
data pass over the calibration samples fills every statistic it asked for that the state does
not hold yet, so statistics given from outside (merged shards, a previous run) are not
collected again. Stages, in order: passes that change only the float model, range estimation
(statistics, then scales), writing the int8 model, and passes that refine the int8 model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from kernels import Interpreter
from tnnformat import BlobScale, Net

from .config import QuantConfig
from .events import Listener, Progress, TaskDone, ignore
from .plan import Plan
from .statistics import StatKey, Statistic, Statistics

Batch = Dict[str, np.ndarray]
#: Calibration samples: a re-iterable of batches (a list, the CLI's file reader), a callable
#: giving a fresh iterable per data pass, a dict of arrays (one per input, samples first), or
#: one array for a model with one input.
Samples = Union[Iterable[Batch], Callable[[], Iterable[Batch]], Mapping[str, np.ndarray], np.ndarray]
BATCH = 8  # samples per forward pass: statistics do not depend on it, speed does

FLOAT_MODEL, RANGES, QUANTIZE, REFINE = "float model", "ranges", "quantize", "refine"
STAGES = (FLOAT_MODEL, RANGES, QUANTIZE, REFINE)


class SampleSource:
    """Samples as the pipeline reads them: batches, again for each data pass. With
    `one_at_a_time` (models whose shapes do not follow the batch) every batch is cut into
    single samples."""

    def __init__(self, samples: Samples, net: Net, one_at_a_time: bool = False):
        self.one_at_a_time = one_at_a_time
        if isinstance(samples, np.ndarray):
            if len(net.inputs) != 1:
                raise ValueError(f"the model has {len(net.inputs)} inputs: give a dict of arrays")
            samples = {next(iter(net.inputs)): samples}
        if isinstance(samples, Mapping):
            arrays = {k: np.asarray(v, np.float32) for k, v in samples.items()}
            count = min(len(v) for v in arrays.values())
            self._make = lambda: ({k: v[i:i + BATCH] for k, v in arrays.items()} for i in range(0, count, BATCH))
            self.batches = -(-count // BATCH)
        elif callable(samples):
            self._make, self.batches = samples, None
        else:
            if iter(samples) is samples:
                raise TypeError("samples must be re-iterable (a list of batches, or a callable that "
                                "returns a fresh iterable): calibration reads them more than once")
            self._make = lambda: samples
            self.batches = len(samples) if hasattr(samples, "__len__") else None

    def __iter__(self) -> Iterator[Batch]:
        for batch in self._make():
            count = len(next(iter(batch.values())))
            if not self.one_at_a_time or count == 1:
                yield batch
                continue
            for i in range(count):
                yield {name: value[i:i + 1] for name, value in batch.items()}


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


def collect(net: Net, samples: Optional[SampleSource], requests: Mapping[StatKey, Statistic],
            emit: Listener = ignore, task: str = "calibration") -> Statistics:
    """One pass of the float model over every batch, feeding each blob to its statistics."""
    if samples is None:
        missing = sorted({key.blob for key in requests})
        raise ValueError(f"calibration needs samples: no statistics for blob '{missing[0]}'")
    by_blob: Dict[str, List[Statistic]] = {}
    for key, stat in requests.items():
        by_blob.setdefault(key.blob, []).append(stat)
    interpreter = Interpreter(net)

    def hook(layer, blob: str, value: np.ndarray) -> None:
        for stat in by_blob.get(blob, ()):
            stat.observe(value)

    done = 0
    emit(Progress(task, 0, samples.batches))
    for batch in samples:
        interpreter.forward(batch, hook=hook)
        done += 1
        emit(Progress(task, done, samples.batches))
    emit(TaskDone(task))
    if done == 0:
        raise ValueError("calibration got no samples")
    return dict(requests)


def run(passes: Sequence[Pass], state: QuantState, samples: Optional[SampleSource]) -> QuantState:
    """Apply the passes in stage order, each after the data pass its statistics need."""
    for p in sorted(passes, key=lambda p: STAGES.index(p.stage)):
        wanted = {k: s for k, s in p.statistics(state).items() if k not in state.statistics}
        if wanted:
            state.statistics.update(collect(state.plan.net, samples, wanted, state.emit,
                                            f"calibration pass: {p.name}"))
        p.apply(state)
    return state
