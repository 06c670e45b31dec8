"""Accuracy-aware mixed precision (NNCF's accuracy control, OpenVINO POT's AccuracyAware):
put layers back to float, most sensitive first, until the metric's drop from float is at most
`max_drop` or `max_float_layers` are float; then drop every float layer the target does not
need, so the model keeps as few as it can.

Metrics, each in percent so a drop is in points: `agreement`, the first output's top-1
agreement with the float model (no labels needed); `cosine`, 100 x the cosine of all outputs
against float's; `top1`, top-1 accuracy against labels. The order comes from `sensitivity`
(output SQNR with only that layer float), re-ranked on top of the current mixed model after a
revert that made the metric worse (where the first order was wrong), at most RERANKS times.
A revert is kept when the metric rises, or stays (or falls by at most one sample, a discrete
metric's noise) while the output SQNR against float rises; a kept revert that did not raise the
metric is tried back in int8 once the target is met. When the order runs out short of the
target, the undone reverts are made in a last pass, kept whatever they do (float is the
target's last resort). Each model is scored on all evaluation
samples; the run of a kept model also keeps the blobs the next trial reads, so that trial runs
only the layers from its new float layer on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from kernels import Interpreter
from tnnformat import Net

from .api import QuantResult
from .config import ConfigError
from .events import Listener, Progress, TaskDone, ignore
from .mixed import mixed_net, revertible_layers
from .sensitivity import Batch, OutputError, _made, partial_run, sensitivity

METRICS = ("agreement", "cosine", "top1")
RERANKS = 3


class Evaluator:
    """Scores models on fixed batches, held in memory, against the float model's outputs
    (computed once) or labels (one per sample, in batch order)."""

    def __init__(self, float_net: Net, batches: Iterable[Batch], metric: str = "agreement",
                 labels: Optional[Sequence[int]] = None, on_event: Listener = ignore):
        if metric not in METRICS:
            raise ConfigError(f"unknown metric '{metric}' (one of {', '.join(METRICS)})")
        if metric == "top1" and labels is None:
            raise ConfigError("the top1 metric needs labels")
        self.metric, self.on_event = metric, on_event
        self.batches = [dict(b) for b in batches]
        if not self.batches:
            raise ConfigError("accuracy control got no evaluation samples")
        self.samples = sum(len(next(iter(b.values()))) for b in self.batches)
        if labels is not None and len(labels) != self.samples:
            raise ConfigError(f"{len(labels)} labels for {self.samples} evaluation samples")
        self.labels = None if labels is None else np.asarray(labels)
        self.expected = self._outputs(float_net, "running the float model")[0]
        self.float_score = self.score_outputs(self.expected)
        #: One sample's worth of the metric: a smaller loss is noise a better SQNR outweighs.
        self.resolution = 100 / self.samples if metric != "cosine" else 0.0

    def _outputs(self, net: Net, task: str, cache: Optional[Kept] = None, prepare: Optional[Net] = None
                 ) -> Tuple[List[Dict[str, np.ndarray]], Optional[Kept]]:
        """Outputs per batch, from a partial run on `cache` where it holds what `net` reads
        (the blobs of the model `net` differs from), else a full run; with `prepare`, the
        blobs a run of that model will read from this one are kept and returned."""
        interpreter = Interpreter(net)
        outputs = list(interpreter.net.outputs)
        run, needed = partial_run(interpreter.net, cache.net, cache.available) if cache is not None else ([], set())
        partial = cache is not None and needed <= cache.available
        made = (cache.available | {b for i in run for b in interpreter.net.layers[i].outputs}) if partial \
            else _made(interpreter.net)
        ahead: Set[str] = set()
        if prepare is not None:
            ahead = partial_run(Interpreter(prepare).net, interpreter.net, _made(interpreter.net))[1]
            if not ahead <= made:
                partial, made = False, _made(interpreter.net)
        keep = sorted(ahead - set(interpreter.net.inputs))
        results, kept = [], []
        self.on_event(Progress(task, 0, len(self.batches)))
        for done, batch in enumerate(self.batches, 1):
            if partial:
                blobs = interpreter.forward_layers(cache.blobs[done - 1], run, outputs + keep)
            else:
                blobs = interpreter.forward(batch, keep=keep)
            results.append({name: blobs[name] for name in outputs})
            kept.append(dict({b: blobs[b] for b in keep}, **batch))
            self.on_event(Progress(task, done, len(self.batches)))
        self.on_event(TaskDone(task))
        available = ahead | set(interpreter.net.inputs)
        return results, (Kept(interpreter.net, available, kept) if prepare is not None else None)

    def score_outputs(self, outputs: List[Dict[str, np.ndarray]]) -> float:
        """The metric, in percent, of these outputs (one dict per batch)."""
        first = next(iter(outputs[0]))
        if self.metric == "top1":
            top = np.concatenate([o[first].reshape(len(o[first]), -1).argmax(1) for o in outputs])
            return 100 * float(np.mean(top == self.labels))
        error = OutputError()
        for expected, got in zip(self.expected, outputs):
            error.add(expected, got, first)
        if self.metric == "cosine":
            return 100 * error.error.cosine
        if error.agreement is None:
            raise ConfigError("the agreement metric needs class scores as the first output; use --metric cosine")
        return error.agree_percent

    def output_sqnr(self, outputs: List[Dict[str, np.ndarray]]) -> float:
        """SQNR of the outputs against float's, in dB: the tie-breaker of a discrete metric."""
        error = OutputError()
        first = next(iter(outputs[0]))
        for expected, got in zip(self.expected, outputs):
            error.add(expected, got, first)
        return error.sqnr_db

    def score(self, net: Net, task: str = "evaluating") -> float:
        return self.score_outputs(self._outputs(net, task)[0])

    def evaluate(self, net: Net, task: str, cache: Optional[Kept] = None, prepare: Optional[Net] = None
                 ) -> Tuple[float, float, Optional[Kept]]:
        """The metric, the output SQNR and (with `prepare`) the blobs kept for that model."""
        outputs, kept = self._outputs(net, task, cache, prepare)
        return self.score_outputs(outputs), self.output_sqnr(outputs), kept


@dataclass
class Kept:
    """Blobs of one model's run, per batch (with the inputs), for the next model's partial run."""

    net: Net  # the runtime graph they come from
    available: Set[str]
    blobs: List[Dict[str, np.ndarray]]


@dataclass
class Step:
    """One model tried: the layer reverted (or restored to int8 while pruning), its score."""

    action: str  # "int8 model" (the start), "revert", or "int8 again" while pruning
    layer: str
    score: float
    drop: float
    accepted: bool


@dataclass
class MixedPrecision:
    metric: str
    max_drop: float
    float_score: float
    int8_score: float
    float_layers: List[str]
    score: float
    net: Net
    steps: List[Step] = field(default_factory=list)
    no_gain: List[str] = field(default_factory=list)  # reverted without changing the metric

    @property
    def drop(self) -> float:
        return self.float_score - self.score

    @property
    def met(self) -> bool:
        return self.drop <= self.max_drop + 1e-9


def accuracy_control(result: QuantResult, evaluator: Evaluator, ranking_samples: Iterable[Batch],
                     max_drop: float, max_float_layers: Optional[int] = None,
                     on_event: Listener = ignore, on_step: Callable[[Step], None] = lambda step: None,
                     ranking: Optional[Sequence[str]] = None) -> MixedPrecision:
    """The mixed model with the fewest float layers found whose drop is at most `max_drop`
    (or the best one found, `met` False). `ranking_samples`: the batches sensitivity ranks on;
    `on_step` sees each model tried as it is scored; `ranking`: a first order already
    computed (`sensitivity(...).ranking` on the same samples)."""
    if not 0 <= max_drop <= 100:
        raise ConfigError(f"max_drop {max_drop} is outside [0, 100]")
    if max_float_layers is not None and max_float_layers < 0:
        raise ConfigError(f"max_float_layers {max_float_layers} is negative")
    ranking_samples = list(ranking_samples)
    cap = len(revertible_layers(result)) if max_float_layers is None else max_float_layers
    int8_score, sqnr, _ = evaluator.evaluate(result.net, "evaluating the int8 model")
    done = MixedPrecision(evaluator.metric, max_drop, evaluator.float_score, int8_score, [], int8_score, result.net)
    _record(done, Step("int8 model", "", int8_score, evaluator.float_score - int8_score, True), on_step)
    if done.met or cap == 0:
        return done
    order = list(ranking) if ranking is not None else \
        sensitivity(result, ranking_samples, int8_alone=False, on_event=on_event).ranking

    def drop(score: float) -> float:
        return evaluator.float_score - score

    reranks, ahead, kept, undone, forced = 0, None, None, [], False
    while not done.met and len(done.float_layers) < cap:
        if not order:
            if not undone or forced:
                break
            order, undone, forced, ahead = undone, [], True, None  # a last pass over the undone reverts
        layer = order.pop(0)
        trial = done.float_layers + [layer]
        net = ahead if ahead is not None and kept is not None else mixed_net(result, trial)
        ahead = mixed_net(result, trial + order[:1]) if order else None
        score, trial_sqnr, trial_kept = evaluator.evaluate(net, f"evaluating with {layer} float", kept, ahead)
        accepted = forced or score > done.score or (score == done.score and trial_sqnr >= sqnr) or \
            (score >= done.score - evaluator.resolution and trial_sqnr > sqnr)
        _record(done, Step("revert", layer, score, drop(score), accepted), on_step)
        kept, worse = (trial_kept if accepted else None), score < done.score
        if not accepted:
            undone.append(layer)
        if accepted:
            if score <= done.score:
                done.no_gain.append(layer)
            done.float_layers, done.score, done.net, sqnr = trial, score, net, trial_sqnr
        if worse and order and reranks < RERANKS and not forced:
            reranks += 1
            order = sensitivity(result, ranking_samples, layers=order, base_float=done.float_layers,
                                int8_alone=False, on_event=on_event).ranking
            kept = None
        if not accepted or kept is None:
            ahead = None
    if done.met:
        _prune(result, evaluator, done, on_step)
    return done


def _record(done: MixedPrecision, step: Step, on_step: Callable[[Step], None]) -> None:
    done.steps.append(step)
    on_step(step)


def _prune(result: QuantResult, evaluator: Evaluator, done: MixedPrecision, on_step: Callable[[Step], None]) -> None:
    """Give back to int8, first reverted first, each float layer whose revert left the metric
    where it was, where the target still holds (a revert that raised the metric is needed: one
    model evaluation per candidate is the cost, so only these are tried)."""
    for layer in [name for name in done.float_layers[:-1] if name in done.no_gain]:
        trial = [name for name in done.float_layers if name != layer]
        net = mixed_net(result, trial)
        score = evaluator.score(net, f"evaluating with {layer} int8 again")
        accepted = evaluator.float_score - score <= done.max_drop + 1e-9
        _record(done, Step("int8 again", layer, score, evaluator.float_score - score, accepted), on_step)
        if accepted:
            done.float_layers, done.score, done.net = trial, score, net
