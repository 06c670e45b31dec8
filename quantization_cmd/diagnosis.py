"""Diagnosis with advice: after calibration, rules that name a cause, the layer and a fix.

Every accuracy rule estimates what the cause costs where it acts, in dB of SQNR at that blob
or weight (6.02 dB per bit lost), so findings of different rules rank on one scale, worst
first. Where the fix is automatic (a range method for one blob, a layer kept float) it is
applied and measured: the model's output SQNR against float before and after, on the samples.
The rules, on statistics of their own (one data pass per channel range, one for histograms):
  * preprocessing: the network input's channels, under one scale, use few of the 255 levels
    (a wrong or missing `-s`/`-n` for a channel);
  * outlier weight channel: a weighted layer's output channels whose weight ranges spread over
    orders of magnitude, costing bits when its weights or output blob are per tensor;
  * channel spread: a per-tensor blob whose channels' ranges spread (depthwise outputs above
    all): per-channel blobs (`-t 0`) or `--equalize`;
  * saturation and long tails: the share of values the threshold clips, and how much less
    error the best clip on the histogram has (MSE), with `--range MSE` measured for the blob;
  * scale conflict: a Concat or Add joining blobs of very different ranges under one scale;
  * float layers between int8 layers (two conversions each; TNN may be slower there than float);
  * detection heads: outputs decoded into boxes, where int8 errors move boxes: keep them float.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from kernels import Interpreter
from tnnformat import Net

from .api import QuantResult, quantize
from .config import Override
from .events import Listener, ignore
from .mixed import mixed_net
from .output_measures import TopKAnchors, measure_for
from .pipeline import SampleSource, collect
from .sensitivity import Batch, OutputError
from .statistics import HISTOGRAM, RANGE, Histogram, Range, StatKey

DB_PER_BIT = 20 * math.log10(2)
LEVELS = 255
#: Findings below this many dB (two bits) are not worth a line: a 2x spread is normal.
MIN_DB = 12.0
#: Clipped shares above this are reported as saturation.
SATURATION_SHARE = 0.01
#: Automatic fixes measured end to end (the worst first).
MEASURED_FIXES = 3


@dataclass
class Finding:
    cost_db: float  # estimated SQNR lost where the cause acts; 0 for hints
    cause: str
    layer: str
    blob: str
    detail: str
    fix: str
    override: Optional[Override] = None  # an automatic fix by config
    keep_float: Tuple[str, ...] = ()  # an automatic fix by float layers
    gain: Optional[tuple] = None  # (output SQNR before, after) in dB, measured

    def line(self) -> str:
        where = f"layer '{self.layer}'" + (f", blob '{self.blob}'" if self.blob else "")
        cost = f" (~{self.cost_db:.0f} dB lost there)" if self.cost_db else ""
        measured = ""
        if self.gain is not None:
            before, after = self.gain
            measured = f"; measured: output SQNR {before:.1f} -> {after:.1f} dB ({after - before:+.1f})"
            if after <= before:
                measured += ": no better here, leave it"
        return f"{self.cause}: {where}{cost}: {self.detail}. Fix: {self.fix}{measured}"


def _bits(ratio: float) -> float:
    return math.log2(max(ratio, 1.0))


def _threshold(result: QuantResult, blob: str) -> np.ndarray:
    """The largest |x| each channel of a blob represents (one value per tensor)."""
    scale = result.scales[result.plan.scale_source[blob]]
    s, zero = np.asarray(scale.scale, np.float64).reshape(-1), np.asarray(scale.zero_point, np.float64).reshape(-1)
    top = 127.0
    return s * (top + np.abs(zero))


def _histogram(result: QuantResult, blob: str, r: Range) -> Histogram:
    """A histogram at the blob's granularity: one over all channels for a per-tensor scale."""
    if np.asarray(result.scales[result.plan.scale_source[blob]].scale).size == 1:
        return Histogram(np.array([r.absmax.max()]), np.array([bool(r.valid.any())]), True)
    return Histogram.over(r)


def _channel_stats(result: QuantResult, samples: SampleSource, emit: Listener):
    """Per-channel ranges of every observed blob, then histograms over them."""
    plan = result.plan
    blobs = plan.observed
    ranges = {StatKey(b, RANGE, False, "diagnosis"): Range(plan.shapes[b][1] if len(plan.shapes[b]) > 1 else 1, False)
              for b in blobs}
    ranges = collect(plan.net, samples, ranges, emit, "diagnosis: ranges")
    histograms = {StatKey(k.blob, HISTOGRAM, False, "diagnosis"): _histogram(result, k.blob, r) for k, r in ranges.items()}
    histograms = collect(plan.net, samples, histograms, emit, "diagnosis: histograms")
    return ({k.blob: v for k, v in ranges.items()}, {k.blob: v for k, v in histograms.items()})


#: Clips tried for the least error, as shares of each channel's largest |x|.
CLIPS = np.linspace(0.05, 1.0, 20)


def _clip_errors(hist: Histogram, thresholds: np.ndarray) -> tuple:
    """(clipped share, error at the thresholds, least error over CLIPS) summed over channels,
    from histogram bin centres: step^2/12 below the threshold, (|x| - t)^2 above it."""
    counts = hist.counts.astype(np.float64)
    absmax = np.where(hist.valid, hist.absmax, 0).astype(np.float64)
    centres = (np.arange(counts.shape[1]) + 0.5)[None, :] * (absmax[:, None] / counts.shape[1])
    now = np.broadcast_to(thresholds, absmax.shape)[:, None]
    tried = np.concatenate([now, absmax[:, None] * CLIPS[None, :]], axis=1)  # (channels, clips)
    inside = centres[:, None, :] <= tried[:, :, None]
    rounding = (counts[:, None, :] * inside).sum(2) * (tried / 127) ** 2 / 12
    clipping = (counts[:, None, :] * ~inside * (centres[:, None, :] - tried[:, :, None]) ** 2).sum(2)
    error = rounding + clipping
    clipped = float((counts * (centres > now)).sum() / max(counts.sum(), 1.0))
    return clipped, float(error[:, 0].sum()), float(error.min(axis=1).sum())


class _Rules:
    def __init__(self, result: QuantResult, ranges: Dict[str, Range], histograms: Dict[str, Histogram]):
        self.result, self.plan, self.ranges, self.histograms = result, result.plan, ranges, histograms
        self.producers = {b: layer for layer in self.plan.net.layers for b in layer.outputs}
        self.readers: Dict[str, List[str]] = {}
        for layer in self.plan.net.layers:
            for b in layer.inputs:
                self.readers.setdefault(b, []).append(layer.name)
        self.findings: List[Finding] = []

    def per_tensor(self, blob: str) -> bool:
        return np.asarray(self.result.scales[self.plan.scale_source[blob]].scale).size == 1

    def preprocessing(self) -> None:
        for blob in self.plan.net.inputs:
            if blob not in self.plan.scale_source or blob not in self.ranges:
                continue
            absmax = self.ranges[blob].absmax.astype(np.float64)
            top = float(_threshold(self.result, blob).max())
            levels = np.maximum(2 * absmax / max(top, 1e-30) * 127, 1)
            worst = int(np.argmin(levels))
            if self.per_tensor(blob) and levels.size > 1:
                cost = _bits(LEVELS / levels[worst]) * DB_PER_BIT
                detail = (f"under one scale, input channel {worst} uses {levels[worst]:.0f} of {LEVELS} levels "
                          f"(its range {absmax[worst]:.3g} against {absmax.max():.3g} for channel {int(np.argmax(absmax))})")
            else:
                cost, detail = 0.0, ""
            if cost >= MIN_DB:
                self.findings.append(Finding(cost, "preprocessing", self.readers[blob][0], blob, detail,
                                             "check -s/-n for that channel (TNN issue #187 was a wrong -s), "
                                             "or quantize the input per channel (-t 0)"))

    def weights(self) -> None:
        for name, config in self.plan.layers.items():
            resource = self.result.float_net.resources.get(name, {})
            weights = resource.get("filter", resource.get("weight"))
            if weights is None:
                continue
            rows = np.abs(weights.numpy(np.float32).reshape(-1)).reshape(
                self.layer(name).params.get("output_channel", self.layer(name).params.get("num_output", 1)), -1).max(1)
            live = rows[rows > 0]
            if live.size < 2:
                continue
            ratio = float(live.max() / np.median(live))
            out = self.layer(name).outputs[0]
            blob_per_tensor = out in self.plan.scale_source and self.per_tensor(out)
            if not (config.per_tensor or blob_per_tensor):
                continue
            cost = _bits(ratio) * DB_PER_BIT
            if cost >= MIN_DB:
                where = "its weights are per tensor" if config.per_tensor else "its output blob is per tensor"
                self.findings.append(Finding(
                    cost, "outlier weight channel", name, "",
                    f"output channel {int(np.argmax(rows))}'s weights reach {ratio:.0f}x the median channel's, "
                    f"and {where}", "per-channel weights and blobs (-t 0), or --equalize"))

    def layer(self, name: str):
        return next(layer for layer in self.plan.net.layers if layer.name == name)

    def spread_cost(self, blob: str) -> float:
        r = self.ranges.get(blob)
        if r is None or np.count_nonzero(r.valid) < 2:
            return 0.0
        absmax = r.absmax[r.valid].astype(np.float64)
        return _bits(float(absmax.max() / np.median(absmax))) * DB_PER_BIT

    def inherited(self, sources: List[str], roots: Dict[str, Finding]) -> List[str]:
        """`sources` and the blobs downstream whose channel spread they cause (a spread input
        gives a spread output): consequences, named in their root finding instead."""
        tainted = {b: self.producers[b].name for b in sources if b in self.producers}
        for layer in self.plan.net.layers:
            origin = next((tainted[b] for b in layer.inputs if b in tainted), None)
            if origin is None:
                continue
            for out in layer.outputs:
                if out not in tainted and self.spread_cost(out) >= MIN_DB:
                    tainted[out] = origin
        for blob, origin in tainted.items():
            if origin in roots and self.producers[blob].name != origin:
                roots[origin].detail += f"; it spreads the channels of '{blob}' downstream too"
        return list(tainted)

    def spread(self, skip: Iterable[str]) -> None:
        skip = set(skip)
        for blob, r in self.ranges.items():
            if blob in skip or blob in self.plan.net.inputs or not self.per_tensor(blob):
                continue
            cost = self.spread_cost(blob)
            ratio = 2 ** (cost / DB_PER_BIT)
            producer = self.producers.get(blob)
            if cost < MIN_DB or producer is None:
                continue
            depthwise = producer.type == "Convolution" and producer.params.get("group", 1) > 1 and \
                producer.params["group"] == producer.params.get("output_channel")
            self.findings.append(Finding(
                cost, "channel spread", producer.name, blob,
                f"{'depthwise ' if depthwise else ''}output channels' ranges spread {ratio:.0f}x under one scale",
                "per-channel blobs (-t 0) or --equalize"))

    def conflicts(self) -> List[str]:
        flagged = []
        for layer in self.plan.net.layers:
            if layer.type not in ("Concat", "Add") or layer.name not in self.plan.quantized:
                continue
            out = layer.outputs[0]
            if not self.per_tensor(out) or any(b not in self.ranges for b in layer.inputs):
                continue
            tops = [float(self.ranges[b].absmax.max()) for b in layer.inputs]
            small = int(np.argmin(tops))
            ratio = max(tops) / max(tops[small], 1e-30)
            cost = _bits(ratio) * DB_PER_BIT
            keep = [layer.name] + [r for r in self.readers.get(out, []) if r in self.plan.layers]
            if cost >= MIN_DB:
                flagged.append(out)
                self.findings.append(Finding(
                    cost, "scale conflict", layer.name, out,
                    f"joins blobs whose ranges differ {ratio:.0f}x ('{layer.inputs[small]}' reaches {tops[small]:.3g}, "
                    f"the widest {max(tops):.3g}) under one scale",
                    f"keep it and its readers float (--float_layers {','.join(keep)}), or rescale the branches "
                    "(a per-channel scale there makes TNN fold unequal input scales into the readers' weights)",
                    keep_float=tuple(keep)))
        return flagged

    def clipping(self) -> None:
        for blob, hist in self.histograms.items():
            if blob in self.plan.net.inputs:
                continue
            clipped, now, best = _clip_errors(hist, _threshold(self.result, blob))
            if now <= 0 or best <= 0:
                continue
            cost = 10 * math.log10(now / best)
            producer = self.producers.get(blob)
            if cost < MIN_DB or producer is None:
                continue
            method = self.plan.blobs[self.plan.scale_source[blob]].method
            if clipped > SATURATION_SHARE:
                cause, detail = "saturation", f"{100 * clipped:.1f}% of the values are clipped by {method}'s threshold"
            else:
                cause, detail = "long tail", (f"{method}'s threshold covers a long tail: the best clip has "
                                              f"{cost:.1f} dB less error on the histogram")
            self.findings.append(Finding(cost, cause, producer.name, blob, detail,
                                         f"--range MSE for this blob (config: blobs ['{blob}'], method MSE)",
                                         override=Override(blobs=(blob,), activations={"method": "MSE"},
                                                           origin="diagnosis")))

    def hints(self) -> None:
        runtime = Interpreter(self.result.net).net
        producers = {b: layer for layer in runtime.layers for b in layer.outputs}
        readers: Dict[str, List] = {}
        for layer in runtime.layers:
            for b in layer.inputs:
                readers.setdefault(b, []).append(layer)
        for layer in runtime.layers:
            if layer.quantized:
                continue
            fed = any(b in producers and producers[b].quantized for b in layer.inputs)
            feeds = any(r.quantized for b in layer.outputs for r in readers.get(b, []))
            if fed and feeds:
                self.findings.append(Finding(0.0, "float between int8", layer.name, "",
                                             f"{layer.type_str} runs in float between int8 layers: two conversions",
                                             "int8 may be slower than float here (TNN issue #945); measure on the "
                                             "device, or keep the neighbours float too"))
        shapes = self.plan.shapes
        for out in self.plan.net.outputs:
            if out in shapes and isinstance(measure_for(np.zeros(shapes[out], np.float32)), TopKAnchors):
                producer = self.producers[out]
                self.findings.append(Finding(0.0, "detection head", producer.name, out,
                                             "this output is decoded into boxes, where int8 error moves them",
                                             f"keep the head float: --float_layers {producer.name}"))


def diagnose(result: QuantResult, samples: Iterable[Batch], on_event: Listener = ignore,
             measure: int = MEASURED_FIXES, calibration: Optional[Iterable[Batch]] = None) -> List[Finding]:
    """Findings, worst first (hints last); the `measure` worst automatic fixes measured on
    `samples`, a fix by config re-calibrated on `calibration` (default: `samples`)."""
    source = SampleSource(samples, result.float_net) if not isinstance(samples, SampleSource) else samples
    ranges, histograms = _channel_stats(result, source, on_event)
    rules = _Rules(result, ranges, histograms)
    rules.preprocessing()
    rules.weights()
    flagged = rules.conflicts()
    roots = {f.layer: f for f in rules.findings if f.cause == "outlier weight channel"}
    rules.spread(rules.inherited(flagged + [b for b, p in rules.producers.items() if p.name in roots], roots))
    rules.clipping()
    rules.hints()
    findings = sorted(rules.findings, key=lambda f: -f.cost_db)
    automatic = [f for f in findings if f.override is not None or f.keep_float][:measure]
    if automatic:
        batches = list(source)
        base = _output_sqnr(result.float_net, result.net, batches)
        requantized: Optional[float] = None
        for finding in automatic:
            if finding.keep_float:
                finding.gain = (base, _output_sqnr(result.float_net, mixed_net(result, finding.keep_float), batches))
                continue
            calib = calibration if calibration is not None else batches
            if requantized is None:  # the same default passes on both sides
                requantized = _output_sqnr(result.float_net, quantize(result.float_net, calib, result.config).net,
                                           batches)
            fixed = quantize(result.float_net, calib, result.config.with_overrides(finding.override)).net
            finding.gain = (requantized, _output_sqnr(result.float_net, fixed, batches))
    return findings


def _output_sqnr(float_net: Net, net: Net, batches: List[Batch]) -> float:
    expected, got = Interpreter(float_net), Interpreter(net)
    error = OutputError()
    for batch in batches:
        error.add(expected.forward(batch), got.forward(batch), float_net.outputs[0])
    return error.sqnr_db


def format_findings(findings: List[Finding]) -> str:
    if not findings:
        return f"diagnosis: nothing found (no rule's estimated cost reaches {MIN_DB:.0f} dB)"
    return "\n".join(["diagnosis, worst first:"] + [f"{k}. {f.line()}" for k, f in enumerate(findings, 1)])
