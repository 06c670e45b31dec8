"""Auto-tuned thresholds (tpu-mlir's `--tune_num`, PPQ's layerwise range search): a blob's
threshold is chosen by the error it causes in the *next layer's output*, not by the blob's
own histogram.

For every observed blob read by quantized convolutions or inner products, candidate scales
are the method's scale times a few factors at and below 1 (clipping more), plus the scales
other range methods give from the same statistics (`--best`). On the first `samples`
calibration samples, each consumer runs on the blob fake-quantized at every candidate, with
its weights quantized as the config says at that input scale (TNN folds the input scale
into the weights before rounding them), against its float output; the candidate with
the least summed relative output error wins. The starting scale is a candidate, so the
tuned threshold is never worse than it on this objective. Asymmetric blobs keep their
method's scale (a factor would move the zero point's meaning), as do blobs no weighted layer
reads (they reach a Concat or Add first).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Sequence, Tuple

import numpy as np

from kernels.int8 import quantize as fake_quantize
from kernels.registry import kernel_for
from tnnformat import BlobScale, Layer, Resource

from .blob_methods import BlobStats, blob_method
from .calibrate import blob_stats, scale_of
from .config import LayerConfig
from .events import Notice
from .pipeline import RANGES, Pass, QuantState
from .statistics import HISTOGRAM, MEAN_ABS, StatKey, Statistic
from .quantize import dequantized, quantize_layer

NEXT_LAYER_ERROR = "next_layer_error"
FACTORS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SAMPLES = 32
WEIGHTED = ("Convolution", "InnerProduct")


@dataclass
class _Consumer:
    """A weighted layer reading the blob: its float resource, float kernel state and config."""

    layer: Layer
    resource: Resource
    float_state: object
    config: LayerConfig

    def quantized_state(self, input_scale: BlobScale):
        """The kernel state of the layer as int8 at this input scale, on float inputs."""
        int8 = quantize_layer(self.layer, self.resource, input_scale.scale, self.config)
        return kernel_for(self.layer).prepare(self.layer, dequantized(self.layer, int8, input_scale.scale))


class NextLayerError:
    """Summed squared error of each consumer's output, per candidate scale of the blob it
    reads, against its float output, and the float output's energy; on the first `limit`
    samples. Mergeable by sums."""

    kind = NEXT_LAYER_ERROR

    def __init__(self, consumers: List[_Consumer], candidates: List[BlobScale], bits: int, limit: int):
        self.consumers, self.candidates, self.bits, self.limit = consumers, candidates, bits, limit
        self.error = np.zeros((len(consumers), len(candidates)), np.float64)
        self.energy = np.zeros(len(consumers), np.float64)
        self.count = 0
        self.first = 0  # samples of the data pass before the ones this object sees

    def starts_at(self, first: int) -> None:
        """A shard of the data pass that starts after `first` samples (the limit counts them)."""
        self.first = first

    def observe(self, x: np.ndarray) -> None:
        x = x[:max(self.limit - self.first - self.count, 0)]
        if not len(x):
            return
        self.count += len(x)
        images = [fake_quantize(x, s, self.bits).dequantize() for s in self.candidates]
        for i, c in enumerate(self.consumers):
            kernel = kernel_for(c.layer)
            reference = kernel.run(c.layer, c.float_state, [x])[0].astype(np.float64)
            self.energy[i] += float(np.sum(reference * reference))
            for k, (image, scale) in enumerate(zip(images, self.candidates)):
                diff = kernel.run(c.layer, c.quantized_state(scale), [image])[0] - reference
                self.error[i, k] += float(np.sum(diff * diff))

    def merge(self, other: "NextLayerError") -> "NextLayerError":
        out = NextLayerError(self.consumers, self.candidates, self.bits, self.limit)
        out.error, out.energy, out.count = self.error + other.error, self.energy + other.energy, self.count + other.count
        out.first = min(self.first, other.first)
        return out

    def relative(self) -> np.ndarray:
        """Per candidate: the consumers' relative errors, summed."""
        return (self.error / np.maximum(self.energy, 1e-30)[:, None]).sum(axis=0)


def candidate_scales(stats: BlobStats, start: BlobScale, methods: Sequence[str],
                     factors: Sequence[float]) -> List[BlobScale]:
    """The start scale times each factor, then each named method's scale; duplicates dropped,
    the start first."""
    found: List[BlobScale] = []
    for f in (1.0,) + tuple(x for x in factors if x != 1.0):
        found.append(BlobScale((start.scale * np.float32(f)).astype(np.float32), start.zero_point))
    for name in methods:
        held = {HISTOGRAM: stats.histogram, MEAN_ABS: stats.mean_abs}
        if any(held.get(need) is None for need in blob_method(name).needs):
            continue  # the statistics this method needs were not collected
        config = replace(stats.config, method=name, symmetric=None, param=None)
        found.append(scale_of(replace(stats, config=config))[0])
    unique: List[BlobScale] = []
    for s in found:
        if not any(np.array_equal(s.scale, u.scale) for u in unique):
            unique.append(s)
    return unique


class ThresholdTuning(Pass):
    """After the scales: each tunable blob's scale is replaced by the candidate with the least
    next-layer output error (one data pass over the first `samples` samples)."""

    name = "threshold tuning"
    stage = RANGES

    def __init__(self, samples: int = SAMPLES, factors: Sequence[float] = FACTORS, methods: Sequence[str] = ()):
        self.samples, self.factors, self.methods = samples, tuple(factors), tuple(methods)

    def _consumers(self, state: QuantState) -> Dict[str, List[Layer]]:
        """Weighted quantized layers by the blob they read, for blobs whose scale can be tuned."""
        plan = state.plan
        found: Dict[str, List[Layer]] = {}
        for layer in plan.net.layers:
            if layer.name not in plan.layers or layer.type not in WEIGHTED:
                continue
            blob = layer.inputs[0]
            source = plan.scale_source[blob]
            if plan.blobs[source].symmetric is False or np.any(state.scales[source].zero_point != 0):
                continue
            found.setdefault(blob, []).append(layer)
        return found

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        plan, wanted = state.plan, {}
        for blob, layers in self._consumers(state).items():
            source = plan.scale_source[blob]
            stats = blob_stats(plan, state.statistics, source)
            candidates = candidate_scales(stats, state.scales[source], self.methods, self.factors)
            consumers = []
            for layer in layers:
                resource = state.float_net.resources[layer.name]
                consumers.append(_Consumer(layer, resource, kernel_for(layer).prepare(layer, resource),
                                           plan.layers[layer.name]))
            wanted[self._key(blob, source, stats)] = NextLayerError(consumers, candidates, plan.blobs[source].bits,
                                                                    self.samples)
        return wanted

    @staticmethod
    def _key(blob: str, source: str, stats: BlobStats) -> StatKey:
        return StatKey(blob, NEXT_LAYER_ERROR, stats.config.per_tensor, source)

    def apply(self, state: QuantState) -> None:
        by_source: Dict[str, List[NextLayerError]] = {}
        for key, stat in state.statistics.items():
            if key.kind == NEXT_LAYER_ERROR:
                by_source.setdefault(key.param, []).append(stat)
        changed: List[Tuple[str, float]] = []
        for source, stats in by_source.items():
            total = sum(s.relative() for s in stats)
            best = int(np.argmin(total))
            if best and total[best] < total[0]:
                state.scales[source] = stats[0].candidates[best]
                changed.append((source, float(total[best] / max(total[0], 1e-30))))
        if changed:
            mean = np.mean([ratio for _, ratio in changed])
            state.emit(Notice(f"threshold tuning: {len(changed)} of {len(by_source)} blobs got a new "
                              f"threshold; next-layer error x{mean:.2f} on average"))
