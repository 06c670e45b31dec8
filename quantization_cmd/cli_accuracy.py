"""quantization_cmd's `--sensitivity` and `--max_drop` flags: checked before any work, run
after calibration, printed as tables and steps. The work itself is in `sensitivity` and
`accuracy_control`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import click
import numpy as np

from .accuracy_control import METRICS, Evaluator, MixedPrecision, Step, accuracy_control
from .api import QuantResult
from .cli_support import ProgressRenderer, Samples
from .sensitivity import Sensitivity, format_sensitivity, sensitivity

#: Sensitivity ranks on at most this many of the evaluation samples (the table says how many).
SENSITIVITY_SAMPLES = 100


def accuracy_options(command: Callable) -> Callable:
    """The flags, in the order --help lists them."""
    options = [
        click.option("--sensitivity", "show_sensitivity", is_flag=True,
                     help="Print per-layer sensitivity: the output error with only that layer int8, and with "
                          "only that layer float (on up to 100 of the evaluation inputs); with --report, the "
                          "table and a bit-width what-if (4, 6, 8 bits per layer) go in the report too."),
        click.option("--diagnose", is_flag=True,
                     help="Print the diagnosis: causes of int8 error by layer, with a fix for each (and the measured "
                          "gain where the fix is automatic), on up to 100 of the evaluation inputs."),
        click.option("--max_drop", type=click.FloatRange(0, 100),
                     help="Accuracy-aware mixed precision: keep layers float, most sensitive first, until the "
                          "metric drops at most this many points from float; writes the mixed model."),
        click.option("--metric", type=click.Choice(METRICS), default="agreement", show_default=True,
                     help="--max_drop's metric: top-1 agreement with float, 100 x output cosine, or top-1 "
                          "accuracy (needs -g or --synsets), in percent."),
        click.option("--max_float_layers", type=click.IntRange(min=0),
                     help="--max_drop keeps at most this many layers float."),
        click.option("--strict", is_flag=True, help="With --max_drop: exit 1 when the target is not met."),
        click.option("-g", "--ground_truth", type=click.Path(dir_okay=False),
                     help="Labels of the evaluation images for --metric top1: lines '<file name> <class index>'."),
        click.option("--synsets", type=click.Path(dir_okay=False),
                     help="Synset list (line k = class k) for --metric top1; labels from file names '<synset>_...'."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class AccuracyRequest:
    """What the flags ask for, checked."""

    show_sensitivity: bool
    diagnose: bool
    max_drop: Optional[float]
    metric: str
    max_float_layers: Optional[int]
    strict: bool
    ground_truth: Optional[str]
    synsets: Optional[str]

    @property
    def wanted(self) -> bool:
        return self.show_sensitivity or self.diagnose or self.max_drop is not None

    def check(self, has_inputs: bool) -> None:
        """Flag combinations that make no sense: usage errors naming the flag."""
        if self.max_drop is None:
            for flag, used in (("--max_float_layers", self.max_float_layers is not None), ("--strict", self.strict),
                               ("--metric", self.metric != "agreement")):
                if used:
                    raise click.UsageError(f"{flag} goes with --max_drop")
        labelled = self.ground_truth is not None or self.synsets is not None
        if self.ground_truth is not None and self.synsets is not None:
            raise click.UsageError("give the labels with one of -g/--ground_truth and --synsets, not both")
        if self.metric == "top1" and not labelled:
            raise click.UsageError("--metric top1 needs labels: -g/--ground_truth or --synsets")
        if labelled and self.metric != "top1":
            raise click.UsageError("-g/--ground_truth and --synsets are for --metric top1")
        if self.wanted and not has_inputs:
            flag = "--sensitivity" if self.show_sensitivity else "--diagnose" if self.diagnose else "--max_drop"
            raise click.UsageError(f"{flag} measures on inputs: give -i (and --eval_path)")

    def labels(self, samples: Samples, classes: int) -> Optional[List[int]]:
        """One label per evaluation sample (images only), or None without labels; labels that
        do not cover the images are an error naming the flag."""
        from .eval_cmd import LabelError, check_classes, labels_from_file, labels_from_synsets

        if self.ground_truth is None and self.synsets is None:
            return None
        flag = "'-g' / '--ground_truth'" if self.ground_truth else "'--synsets'"
        files = [next(iter(item.values())) for item in samples.items]
        try:
            by_name = labels_from_file(Path(self.ground_truth), files) if self.ground_truth \
                else labels_from_synsets(Path(self.synsets), files)
            check_classes(by_name, classes, self.ground_truth or self.synsets)
        except LabelError as exc:
            raise click.BadParameter(exc.message, param_hint=flag) from None
        return [by_name[f.name] for f, size in zip(files, samples.sizes) for _ in range(size)]


VERDICTS = {"revert": ("kept float", "no gain, back to int8"), "int8 again": ("int8: not needed", "stays float"),
            "int8 model": ("", "")}


def print_step(step: Step, metric: str) -> None:
    """One line per model tried."""
    digits = 3 if metric == "cosine" else 2
    verdict = VERDICTS[step.action][0 if step.accepted else 1]
    click.echo(f"  {step.action} {step.layer}".rstrip() + f": {metric} {step.score:.{digits}f}% "
               f"(drop {step.drop:.{digits}f})" + (f", {verdict}" if verdict else ""))


def run_sensitivity(result: QuantResult, batches: Sequence[dict], source: str, events: ProgressRenderer,
                    whatif: bool = False) -> tuple:
    """The table on up to SENSITIVITY_SAMPLES samples of `batches`, printed, and the report's
    sections: the table and (with `whatif`) the bit-width what-if."""
    from .bitwidth import bitwidth_whatif, whatif_rows
    from .sensitivity import SENSITIVITY_NOTE, sensitivity_rows

    first = _first_samples(batches, SENSITIVITY_SAMPLES)
    ranked = sensitivity(result, first, on_event=events)
    events.close()
    click.echo(f"sensitivity on {source}:")
    click.echo(format_sensitivity(ranked))
    sections = [(f"Per-layer sensitivity ({ranked.samples} samples of {source})", SENSITIVITY_NOTE,
                 sensitivity_rows(ranked))]
    if whatif:
        table = bitwidth_whatif(result, first, on_event=events)
        events.close()
        sections.append((f"Bit-width what-if ({table.samples} samples)",
                         "output SQNR in dB against float with only that layer quantized, its weights or its input "
                         "activations at 4, 6 or 8 bits (the other at 8; narrower grids simulated)",
                         whatif_rows(table)))
    return ranked, sections


def run_diagnosis(result: QuantResult, batches: Sequence[dict], source: str, events: ProgressRenderer,
                  calibration: Optional[Samples]) -> None:
    """The findings on up to SENSITIVITY_SAMPLES samples of `batches`, printed; fixes by
    config are calibrated on `calibration` (the -i inputs) where there are some."""
    from .diagnosis import diagnose, format_findings

    findings = diagnose(result, _first_samples(batches, SENSITIVITY_SAMPLES), on_event=events,
                        calibration=calibration)
    events.close()
    click.echo(f"on {source}:")
    click.echo(format_findings(findings))


def _first_samples(batches: Sequence[dict], count: int) -> List[dict]:
    """The batches cut to their first `count` samples: sensitivity and diagnosis need no more."""
    taken, out = 0, []
    for batch in batches:
        if taken >= count:
            break
        size = len(next(iter(batch.values())))
        out.append({k: v[:count - taken] for k, v in batch.items()})
        taken += min(size, count - taken)
    return out


def run_max_drop(request: AccuracyRequest, result: QuantResult, batches: Sequence[dict],
                 labels: Optional[Sequence[int]], source: str, ranking: Optional[Sensitivity],
                 events: ProgressRenderer) -> MixedPrecision:
    """Accuracy control, each step printed as it is scored."""
    evaluator = Evaluator(result.float_net, batches, request.metric, labels, on_event=events)
    events.close()
    metric = request.metric
    click.echo(f"accuracy control on {source} ({evaluator.samples} samples), {metric}: float "
               f"{evaluator.float_score:.2f}%, target drop <= {request.max_drop:.2f}")

    def step(s: Step) -> None:
        events.close()
        print_step(s, metric)

    mixed = accuracy_control(result, evaluator, _first_samples(batches, SENSITIVITY_SAMPLES), request.max_drop,
                             request.max_float_layers, on_event=events, on_step=step,
                             ranking=None if ranking is None else ranking.ranking)
    events.close()
    listed = ", ".join(mixed.float_layers) if mixed.float_layers else "none"
    verdict = "target met" if mixed.met else "target NOT met: writing the best model found"
    click.echo(f"float layers ({len(mixed.float_layers)}): {listed}; {metric} {mixed.score:.2f}% "
               f"(drop {mixed.drop:.2f}, target {request.max_drop:.2f}): {verdict}")
    return mixed


def materialize(samples: Samples) -> List[dict]:
    """Every batch in memory: accuracy control scores the same inputs many times."""
    return [{k: np.asarray(v) for k, v in batch.items()} for batch in samples]
