"""The library entry point: a float Net, samples and a config in, the int8 Net and what was
learned on the way out. The CLI is a thin shell around `quantize`.

    import tnnformat
    from quantization_cmd import QuantConfig, quantize

    net = tnnformat.load("m.tnnproto", "m.tnnmodel")
    result = quantize(net, batches, QuantConfig())
    result.save("m_int8")
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kernels.shapes import batch_mismatch, infer_shapes
from tnnformat import BlobScale, Net, save

from .adaround import RoundingOptimisation
from .bias_correction import BiasCorrection
from .calibrate import ComputeScales, HistogramStatistics, RangeStatistics
from .equalization import CrossLayerEqualization
from .config import ConfigError, QuantConfig
from .events import Listener, ignore
from .fidelity import Fidelity, measure_sharded
from .pipeline import Pass, QuantState, SampleSource, Samples, run
from .plan import Plan, make_plan
from .quantize import WriteInt8
from .shards import Runner, running
from .statistics import Statistics
from .table import TableEntry, TableScales, load_table, table_overrides
from .threshold_tuning import ThresholdTuning


@dataclass
class QuantResult:
    """The quantized model and how it came about."""

    net: Net
    scales: Dict[str, BlobScale]
    statistics: Statistics
    plan: Plan
    config: QuantConfig
    fidelity: Optional[Fidelity] = None
    #: The float model the int8 one was made from (after passes that rewrite it, such as
    #: equalization): where mixed models take their float layers' weights.
    float_net: Optional[Net] = None

    def save(self, prefix: str) -> None:
        """Write `<prefix>.tnnproto` and `<prefix>.tnnmodel`."""
        save(self.net, f"{prefix}.tnnproto", f"{prefix}.tnnmodel")

    @property
    def activation_bits(self) -> Dict[str, int]:
        """Blobs quantized below 8 bits, as our interpreter simulates them (TNN's runtime
        clamps every int8 blob at +-127, so below 8 bits it computes finer than this)."""
        return activation_bits(self.plan)


def activation_bits(plan: Plan) -> Dict[str, int]:
    return {blob: plan.blobs[source].bits for blob, source in plan.scale_source.items()
            if plan.blobs[source].bits < 8}


def default_passes(histograms: bool = False, table: Optional[Dict[str, TableEntry]] = None,
                   table_name: str = "table", bias_correction: bool = False,
                   equalization: bool = False, rounding: bool = False, tuning: bool = False) -> List[Pass]:
    """Range statistics, scales and the int8 model; scales from a table need no data;
    `equalization` rescales the float model first (no data), `tuning` re-chooses thresholds
    by the next layer's error, `rounding` re-rounds the weights (AdaRound) and
    `bias_correction` refines the int8 model (one more data pass each)."""
    first: List[Pass] = [CrossLayerEqualization()] if equalization else []
    after: List[Pass] = ([RoundingOptimisation()] if rounding else []) + ([BiasCorrection()] if bias_correction else [])
    if table is not None:
        return first + [TableScales(table, table_name), WriteInt8()] + after
    ranges: List[Pass] = [RangeStatistics(), HistogramStatistics(all_blobs=histograms), ComputeScales()]
    return first + ranges + ([ThresholdTuning()] if tuning else []) + [WriteInt8()] + after


#: `--best`: rounding optimisation then bias correction, from TNN's `-b 3` unless the user picks
#: a method: an asymmetric range gives a ReLU output's [0, max] all 255 levels. Equalization
#: joins where weights are per tensor (`best_passes`), the case it is for; with per-channel
#: weights it only makes per-tensor blobs' channels unequal. Chosen by the ablations in
#: benchmarks/range_methods.py and ppocr_cls_accuracy.py.
BEST = dict(rounding=True, bias_correction=True)
BEST_FLAGS = dict(blob_method=3, weight_method=0)
#: --best's candidate blob granularities, by TNN's merge type: asymmetric blobs per tensor
#: (-t 1, weights per channel: spares the weights TNN's folding of per-channel input scales
#: into them, and a per-tensor range holds better on unseen data; SqueezeNet's best) or per
#: channel (-t 0: keeps channel ranges apart, which PP-OCR's detector and classifier need).
#: Each model gets the one its own outputs prefer on calibration samples left out.
BEST_MERGE_TYPES = (1, 0)


def best_passes(config: QuantConfig) -> Dict[str, bool]:
    """`default_passes` flags of `--best` under `config`: BEST, and equalization where the
    weights are per tensor (PP-OCR's classifier at -t 2: 98.1% agreement with it, 97.6% without)."""
    return dict(BEST, equalization=config.weights.per_tensor)


def prepare(net: Net, config: QuantConfig, table: Union[str, Dict[str, TableEntry], None] = None
            ) -> Tuple[QuantConfig, Plan, Optional[Dict[str, TableEntry]], str]:
    """The config (with a table's per-blob settings), the plan, the table's entries and its
    name: everything checked against the model before any data is read (ConfigError)."""
    already = next((layer for layer in net.layers if layer.quantized), None)
    if already is not None:
        raise ConfigError(f"the model is already int8 (layer '{already.name}' is {already.type_str}); "
                          "quantize its float model instead")
    table_name = table if isinstance(table, str) else "table"
    if isinstance(table, str):
        table = load_table(table)
    if table is not None:
        config = config.with_overrides(*table_overrides(table_name, table))
    return config, make_plan(net, config, infer_shapes(net)), table, table_name


@dataclass
class Choice:
    """The candidate a comparison chose and every candidate's score."""

    chosen: int
    scores: Dict[int, float]


def output_sqnr(fidelity: Fidelity) -> float:
    """The model outputs' mean SQNR in dB (-inf if an output went NaN or infinite)."""
    values = [-math.inf if o.nonfinite else o.sqnr_db for o in fidelity.outputs]
    return sum(values) / len(values) if values else -math.inf


def spread_split(count: int, part: int) -> Tuple[List[int], List[int]]:
    """`part` of the indices 0..count-1, spread evenly (files sorted by name are often sorted by
    class), and the others: check samples and the calibration left for `choose_config`."""
    chosen = sorted(set(np.linspace(0, count, max(part, 0), endpoint=False).astype(int).tolist()))
    taken = set(chosen)
    return chosen, [i for i in range(count) if i not in taken]


def choose_config(net: Net, samples: Samples, candidates: Dict[int, QuantConfig], check_samples: Samples, *,
                  on_event: Listener = ignore, jobs: Union[int, Runner] = 1) -> Choice:
    """Of `candidates` (configs by key), each calibrated on `samples`, the one whose plain int8
    model keeps the float model's outputs closest on `check_samples` (output SQNR). The check
    samples should be calibration samples left out of `samples`: ranges fitted to the very data
    they are judged on flatter the finer granularities (SqueezeNet's per-channel ranges score
    0.8 dB above per-tensor on the 32 images they were fitted to, and 15 dB below on 32 they were
    not; the 400 held-out images side with the latter)."""
    scores = {}
    for key, config in candidates.items():
        result = quantize(net, samples, config, fidelity_samples=check_samples, on_event=on_event, jobs=jobs)
        scores[key] = output_sqnr(result.fidelity)
    return Choice(max(scores, key=lambda k: scores[k]), scores)


def quantize(net: Net, samples: Optional[Samples] = None, config: QuantConfig = QuantConfig(), *,
             table: Union[str, Dict[str, TableEntry], None] = None, statistics: Optional[Statistics] = None,
             histograms: bool = False, fidelity_samples: Optional[Samples] = None,
             passes: Optional[Sequence[Pass]] = None, on_event: Listener = ignore,
             jobs: Union[int, Runner] = 1) -> QuantResult:
    """Quantize `net` under `config`, calibrated on `samples`.

    `table`: a calibration table (its path or `table.load_table`'s entries) whose scales and
    per-blob settings are used instead of calibrating; `statistics`:
    statistics already collected (e.g. merged from shards), not collected again; `histograms`:
    keep every observed blob's histogram (for the HTML report); `fidelity_samples`: compare the
    int8 model with the float one on these (the result's `fidelity`); `passes`: the pipeline,
    `default_passes()` unless given; `on_event`: progress and warnings (see `events`); `jobs`: worker
    processes for the data passes and the comparison, or a `shards.Runner` (e.g.
    `shards.DaskCluster(address)`), with the very same result as one process."""
    config, plan, table, table_name = prepare(net, config, table)
    state = QuantState(net, config, plan, dict(statistics or {}), emit=on_event)
    one_at_a_time = batch_mismatch(net) is not None
    source = SampleSource(samples, net, one_at_a_time) if samples is not None else None
    with running(jobs) as runner:
        run(passes if passes is not None else default_passes(histograms, table, table_name), state, source, runner)
        result = QuantResult(state.net, state.scales, state.statistics, state.plan, config,
                             float_net=state.float_net)
        if fidelity_samples is not None:
            result.fidelity = measure_sharded(state.plan.net, state.net,
                                              SampleSource(fidelity_samples, net, one_at_a_time),
                                              activation_bits(state.plan), state.plan.float_layers, on_event, runner)
    return result


def quantize_best(net: Net, samples: Samples, check_samples: Samples, choice_samples: Samples, *,
                  weight_method: int = 0, on_event: Listener = ignore, jobs: Union[int, Runner] = 1
                  ) -> Tuple[QuantResult, Choice]:
    """`--best` in Python: -b 3 blobs at the granularity `choose_config` picks from
    BEST_MERGE_TYPES (candidates calibrated on `choice_samples`, judged on `check_samples`: split
    the calibration samples so that the two do not overlap), then the BEST passes on all of
    `samples`."""
    from .config import from_tnn_flags

    candidates = {m: from_tnn_flags(BEST_FLAGS["blob_method"], weight_method, m) for m in BEST_MERGE_TYPES}
    choice = choose_config(net, choice_samples, candidates, check_samples, on_event=on_event, jobs=jobs)
    config = candidates[choice.chosen]
    result = quantize(net, samples, config, passes=default_passes(**best_passes(config)), on_event=on_event, jobs=jobs)
    return result, choice
