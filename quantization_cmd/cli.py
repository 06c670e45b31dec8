"""quantization_cmd: TNN's command, flags and methods, with an honest report at the end.

The command only turns flags into a config and samples, calls the library's `quantize`, and
prints; everything else is in the library.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import click
from click.core import ParameterSource

import tnnformat

from .cli_accuracy import AccuracyRequest, accuracy_options
from .cli_support import (ALL_INPUTS, BATCH, KEPT_BYTES, KeptArrays, NumberChoice, ProgressRenderer, Samples,
                          check_writable, check_file_writable, model_inputs, one_line_errors, open_runner,
                          parallel_options, preprocessing_options, warn_skipped)
from .config import (MAX_BITS, MIN_BITS, TNN_BLOB_METHODS, TNN_WEIGHT_METHODS,
                     QuantConfig, apply_changes, float_layers_override, from_tnn_flags,
                     load_json)
from .inputs import SUFFIXES, list_input_files

#: --best compares its candidate granularities on this many calibration files (at most a third,
#: spread over the list), left out of the candidates' calibration.
BEST_CHECK_SAMPLES = 32
MERGE_TYPES = {0: "per-channel: blobs and weights per channel",
               1: "mix: weights per channel, blobs per tensor",
               2: "per-tensor: blobs and weights per tensor"}


def _method_help(numbers: Dict[int, str], kind: str) -> str:
    from .blob_methods import BLOB_METHODS
    from .weight_methods import WEIGHT_METHODS

    methods = BLOB_METHODS if kind == "blob" else WEIGHT_METHODS
    return "; ".join(f"{k}: {name} ({methods[name].help})" for k, name in numbers.items())


def check_report_writable(path: str, inputs: Sequence[Optional[str]]) -> None:
    """--report needs a writable place, checked before calibration."""
    check_file_writable(path, "'--report'", inputs)


def calibration_files(folder: Path) -> List[Path]:
    """The folder's input files; a one-line error if there are none."""
    if not folder.is_dir():
        raise click.ClickException(f"input folder '{folder}' does not exist")
    try:
        files = list_input_files(folder, warn_skipped)
    except OSError as exc:
        raise click.ClickException(f"cannot read input folder '{folder}': {exc.strerror}") from None
    if not files:
        raise click.ClickException(f"no calibration files ({' '.join(SUFFIXES)}) in '{folder}'")
    return files


def input_items(values: Sequence[str], inputs: Dict[str, tuple], flag: str) -> List[Dict[str, Path]]:
    """`-i folder` (one input, or .npz files holding every input) or `-i name=folder` once per
    input; files of several folders are paired in sorted order."""
    named = [v.partition("=") for v in values]
    if len(values) == 1 and not named[0][1]:
        files = calibration_files(Path(values[0]))
        npz = [f for f in files if f.suffix.lower() == ".npz"]
        if len(inputs) > 1 or npz:
            if len(npz) != len(files) and len(inputs) > 1:
                raise click.BadParameter(f"the model has {len(inputs)} inputs ({', '.join(inputs)}): give .npz "
                                         "files holding one array per input, or -i name=folder for each",
                                         param_hint=flag)
            return [{ALL_INPUTS: f} if f.suffix.lower() == ".npz" else {next(iter(inputs)): f} for f in files]
        return [{next(iter(inputs)): f} for f in files]
    folders: Dict[str, Path] = {}
    for value, (name, sep, folder) in zip(values, named):
        if not sep or not name or not folder:
            raise click.BadParameter(f"'{value}': with several -i, each is name=folder", param_hint=flag)
        if name not in inputs:
            raise click.BadParameter(f"'{name}' is not an input of the model ({', '.join(inputs)})", param_hint=flag)
        if name in folders:
            raise click.BadParameter(f"input '{name}' is given twice", param_hint=flag)
        folders[name] = Path(folder)
    missing = [name for name in inputs if name not in folders]
    if missing:
        raise click.BadParameter(f"no folder for input '{missing[0]}'", param_hint=flag)
    files = {name: calibration_files(folder) for name, folder in folders.items()}
    counts = {name: len(f) for name, f in files.items()}
    if len(set(counts.values())) > 1:
        raise click.BadParameter("the folders hold different numbers of files ("
                                 + ", ".join(f"{n}: {c}" for n, c in counts.items()) + "); they are paired in "
                                 "sorted order", param_hint=flag)
    return [{name: files[name][k] for name in inputs} for k in range(next(iter(counts.values())))]


def model_batch(net) -> int:
    """Samples per forward pass, for calibration and the int8 check alike (the check runs the
    two models side by side, so its memory does not grow with the batch): 1 (said once) for a
    model whose shapes do not follow the batch."""
    from kernels.shapes import batch_mismatch

    mismatch = batch_mismatch(net)
    if mismatch is None:
        return BATCH
    click.echo(f"note: the model's shapes do not follow the batch ({mismatch}); running one sample "
               "at a time", err=True)
    return 1


def usable_samples(values: Sequence[str], inputs: Dict[str, tuple], prep, flag: str, size: int,
                   what: str) -> Samples:
    """The readable inputs (unreadable ones are skipped with a warning); `what` names them in
    the progress label."""
    items = input_items(values, inputs, flag)
    samples = Samples(items, inputs, prep, size, kept=KeptArrays(KEPT_BYTES))
    samples.screen(f"reading {what} inputs")
    if not samples.items:
        raise click.ClickException(f"none of the {len(items)} files in '{', '.join(values)}' could be used")
    return samples


def build_config(blob_method: int, weight_method: int, merge_type: int, config_file: Optional[str],
                 float_layers: Optional[str], weight_bits: Optional[int], blob_bits: Optional[int],
                 range_method: Optional[str] = None, range_param: Optional[float] = None) -> QuantConfig:
    """TNN's flags, then the config file, then the flags that override both."""
    config = from_tnn_flags(blob_method, weight_method, merge_type)
    if config_file:
        config = load_json(config_file, config)
    if range_method is not None or range_param is not None:
        changes = {k: v for k, v in (("method", range_method), ("param", range_param)) if v is not None}
        config = QuantConfig(apply_changes(config.activations, changes, "--range"), config.weights, config.overrides)
    if weight_bits is not None:
        config = QuantConfig(config.activations, apply_changes(config.weights, {"bits": weight_bits}, "--weight_bits"),
                             config.overrides)
    if blob_bits is not None:
        config = QuantConfig(apply_changes(config.activations, {"bits": blob_bits}, "--blob_bits"), config.weights,
                             config.overrides)
    if float_layers:
        patterns = tuple(p.strip() for p in float_layers.split(",") if p.strip())
        if not patterns:
            raise click.BadParameter("give layer names, globs or layer types", param_hint="'--float_layers'")
        config = config.with_overrides(float_layers_override(patterns))
    return config.check()


def describe(config: QuantConfig, merge_type: int, float_count: int, steps: Sequence[str] = ()) -> str:
    parts = [f"{config.activations.method} blobs", f"{config.weights.weight_method} weights",
             MERGE_TYPES[merge_type]]
    if config.weights.bits != 8 or config.activations.bits != 8:
        parts.append(f"{config.weights.bits}-bit weights, {config.activations.bits}-bit blobs")
    if float_count:
        parts.append(f"{float_count} layer{'s' if float_count != 1 else ''} kept float")
    parts.extend(steps)
    return ", ".join(parts)


BITS = click.IntRange(MIN_BITS, MAX_BITS)
EXTRA_STEPS = ("cross-layer equalization", "threshold tuning", "rounding optimisation", "bias correction")
NEW_RANGE_METHODS = ("PERCENTILE", "MSE", "QUANTILE_MEAN", "QUANTILE_MEDIAN")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--proto", required=True, type=click.Path(dir_okay=False), help="TNN proto file (.tnnproto).")
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="TNN model file (.tnnmodel).")
@click.option("-i", "--input_path", multiple=True,
              help=f"Folder of calibration inputs: {' '.join(SUFFIXES)} (any letter case); .npz files hold "
                   "one array per input name. For a model with several inputs, also -i name=folder per input.")
@click.option("-b", "--blob_method", default=0, show_default=True, type=NumberChoice(TNN_BLOB_METHODS),
              help="Blob method. " + _method_help(TNN_BLOB_METHODS, "blob"))
@click.option("-w", "--weight_method", default=0, show_default=True, type=NumberChoice(TNN_WEIGHT_METHODS),
              help="Weight method. " + _method_help(TNN_WEIGHT_METHODS, "weight"))
@preprocessing_options
@click.option("-t", "--merge_type", default=0, show_default=True, type=NumberChoice(
    {k: v.split(":")[0] for k, v in MERGE_TYPES.items()}),
    help="Granularity. " + "; ".join(f"{k}: {v}" for k, v in MERGE_TYPES.items()))
@click.option("-o", "--output", default="model_quantized", show_default=True,
              help="Output name: writes <output>.tnnproto and <output>.tnnmodel.")
@click.option("--range", "range_method", metavar="NAME",
              help="Blob range method by name, beyond TNN's -b numbers: " + ", ".join(NEW_RANGE_METHODS) + ".")
@click.option("--range_param", type=float,
              help="The range method's parameter (PERCENTILE: the percentile; QUANTILE_*: the outlier probability).")
@click.option("--equalize", "equalization", is_flag=True,
              help="Cross-layer equalization of convolution pairs before calibration (float outputs unchanged).")
@click.option("--bias_correction", is_flag=True,
              help="Take the mean output shift int8 causes out of each convolution's bias (one more data pass).")
@click.option("--tune", "tuning", is_flag=True,
              help="Re-choose each blob's threshold by the error of the next layer's output (one more data pass).")
@click.option("--adaround", "rounding", is_flag=True,
              help="Rounding optimisation (AdaRound): learn each weight's rounding from the layer's inputs.")
@click.option("--best", is_flag=True,
              help="The most accurate preset: -b 3 (unless -b or --range say otherwise) with blobs per "
                   "tensor (-t 1) or per channel (-t 0), whichever keeps this model's outputs closer to "
                   "float on calibration samples left out of its ranges (a third, at most 32; unless -t "
                   "is given), then --adaround and --bias_correction; --equalize too with per-tensor weights.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="JSON config: defaults and per-layer/blob overrides (see the README).")
@click.option("--float_layers", help="Comma-separated layer names, globs or layer types to keep float.")
@click.option("--weight_bits", type=BITS, help="Bits of the weights (2-8; TNN stores them as int8).")
@click.option("--blob_bits", type=BITS,
              help="Bits of the blobs (2-8; below 8 simulated by our interpreter only: TNN's runtime clamps at 8).")
@click.option("--dump_table", type=click.Path(dir_okay=False), help="Write the calibration table (text) here.")
@click.option("--load_table", type=click.Path(dir_okay=False),
              help="Quantize from this calibration table; no calibration inputs needed.")
@click.option("--encodings", type=click.Path(dir_okay=False), help="Write AIMET-style JSON encodings here.")
@click.option("--eval_path", multiple=True,
              help="Held-out inputs for the int8-vs-float table, given as -i is (default: the calibration inputs).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write an HTML report: the table and every observed blob's histogram with its thresholds.")
@click.option("--skip_fidelity", is_flag=True, help="Do not run the int8-vs-float comparison.")
@click.option("--check_samples", type=click.IntRange(min=1),
              help="Compare int8 with float on the first N inputs only (default: all): the comparison "
                   "costs about 2.5 float passes over its inputs, the calibration 1-2.")
@parallel_options
@accuracy_options
@one_line_errors
def main(proto, model, input_path, blob_method, weight_method, reverse_channel, bias, scale, merge_type,
         output, range_method, range_param, equalization, bias_correction, tuning, rounding, best, config_file, float_layers, weight_bits, blob_bits,
         dump_table, load_table, encodings,
         eval_path, report_path, skip_fidelity, check_samples, jobs, dask, **accuracy_flags):
    """Quantize a float TNN model to int8, calibrated on a folder of images or tensors.

    Same flags, methods and output format as TNN's quantization_cmd; the int8 model loads
    in TNN's runtime. Then, unlike TNN's tool, it runs the int8 model beside the float one
    and prints how far each quantized blob drifts, worst first.
    """
    from .api import BEST_FLAGS, BEST_MERGE_TYPES, best_passes, choose_config, default_passes, prepare, quantize
    from .cli_accuracy import materialize, run_diagnosis, run_max_drop, run_sensitivity
    from .eval_cmd import class_count
    from .fidelity import measure_sharded
    from .mixed import mixed_plan
    from .pipeline import SampleSource
    from .report import format_table, write_html
    from .table import dump_table as write_table, table_header, write_encodings

    started = time.perf_counter()
    accuracy = AccuracyRequest(**accuracy_flags)
    accuracy.check(bool(input_path) or bool(eval_path))
    given = (proto, model, config_file, load_table, accuracy.ground_truth, accuracy.synsets)
    out_proto, out_model = check_writable(output, given)
    if report_path is not None and skip_fidelity:
        raise click.UsageError("--report shows the int8-vs-float table: it cannot go with --skip_fidelity")
    if check_samples is not None and skip_fidelity:
        raise click.UsageError("--check_samples sets the int8-vs-float table's inputs: it cannot go with "
                               "--skip_fidelity")
    if report_path is not None:
        check_report_writable(report_path, given)
    for path, flag in ((dump_table, "'--dump_table'"), (encodings, "'--encodings'")):
        if path is not None:
            check_file_writable(path, flag, given)
    outputs = [str(out_proto), str(out_model)] + [p for p in (report_path, dump_table, encodings) if p]
    if len({os.path.realpath(p) for p in outputs}) < len(outputs):
        raise click.UsageError(f"two outputs would be the same file ({', '.join(outputs)}); give each its own name")
    if not input_path and load_table is None:
        raise click.UsageError("give the calibration inputs with -i (or a table with --load_table)")
    if not input_path and report_path is not None:
        raise click.UsageError("--report shows the calibration histograms: it needs -i")
    for flag, used in (("--bias_correction", bias_correction), ("--tune", tuning), ("--adaround", rounding),
                       ("--best", best)):
        if used and not input_path:
            raise click.UsageError(f"{flag} measures on the calibration inputs: it needs -i")
    choose_merge = False  # --best picks -t itself unless given one
    if best:  # its flags, where the user gave none
        source = click.get_current_context().get_parameter_source
        if range_method is None and source("blob_method") == ParameterSource.DEFAULT:
            blob_method = BEST_FLAGS["blob_method"]
        choose_merge = source("merge_type") == ParameterSource.DEFAULT
    if load_table is not None and (tuning or best):
        raise click.UsageError(f"{'--best' if best else '--tune'} chooses the scales: it cannot start from --load_table")
    runner = open_runner(jobs, dask)
    net = tnnformat.load(proto, model)
    config = build_config(blob_method, weight_method, merge_type, config_file, float_layers,
                          weight_bits, blob_bits, range_method, range_param)
    _, _, prepared_table, _ = prepare(net, config, load_table)  # they fit the model, before any data is read
    inputs, prep = model_inputs(net, reverse_channel, bias, scale)
    batch = model_batch(net)
    samples = usable_samples(input_path, inputs, prep, "'-i' / '--input_path'", batch, "calibration") \
        if input_path else None
    check_source = None
    if not skip_fidelity:
        if eval_path:
            check_source = usable_samples(eval_path, inputs, prep, "'--eval_path'", batch, "held-out")
        elif samples is not None:
            check_source = samples
        else:
            raise click.UsageError("with --load_table and no -i, give --eval_path or --skip_fidelity")
    table_source = check_source.first(check_samples, batch) \
        if check_source is not None and check_samples is not None else check_source
    source_label = f"held-out inputs in {', '.join(eval_path)}" if eval_path else "the calibration inputs"
    accuracy_source, labels = None, None
    if accuracy.wanted:
        if check_source is not None:
            accuracy_source = check_source
        else:
            accuracy_source = usable_samples(eval_path, inputs, prep, "'--eval_path'", batch, "held-out") \
                if eval_path else samples
        labels = accuracy.labels(accuracy_source, class_count(net))

    events = ProgressRenderer()
    try:
        if choose_merge:
            def candidate(merge: int):
                return build_config(blob_method, weight_method, merge, config_file, float_layers, weight_bits,
                                    blob_bits, range_method, range_param)

            check, rest = samples.split(min(BEST_CHECK_SAMPLES, len(samples.items) // 3), batch)
            held_out = rest.count > 0 and check.count > 0
            if not held_out:  # too few samples to leave some out: judged on what they were fitted to
                check, rest = samples.first(BEST_CHECK_SAMPLES, batch), samples
            choice = choose_config(net, rest, {m: candidate(m) for m in BEST_MERGE_TYPES},
                                   check, on_event=events, jobs=runner)
            merge_type, config = choice.chosen, candidate(choice.chosen)
            events.close()
            click.echo("--best: " + ", ".join(f"-t {m} ({MERGE_TYPES[m].split(':')[0]}) output SQNR {score:.1f} dB"
                                              for m, score in choice.scores.items())
                       + f" on {check.count} calibration sample{'s' if check.count != 1 else ''}"
                       + (f" left out of the other {rest.count}'s ranges" if held_out else "")
                       + f": -t {merge_type}")
        chosen = dict(bias_correction=bias_correction, equalization=equalization, rounding=rounding, tuning=tuning)
        preset = best_passes(config) if best else {}
        passes = default_passes(report_path is not None, prepared_table, str(load_table),
                                **{k: v or preset.get(k, False) for k, v in chosen.items()})
        extra_steps = [p.name for p in passes if p.name in EXTRA_STEPS]
        mixing = accuracy.max_drop is not None
        result = quantize(net, samples, config, table=load_table, passes=passes,
                          fidelity_samples=None if mixing else table_source, on_event=events, jobs=runner)
        written, mixed, sections = result.net, None, []
        if accuracy.wanted:
            batches = materialize(accuracy_source)
            if accuracy.diagnose:
                run_diagnosis(result, batches, source_label, events, samples)
            ranking, sections = run_sensitivity(result, batches, source_label, events, report_path is not None) \
                if accuracy.show_sensitivity else (None, [])
            if mixing:
                mixed = run_max_drop(accuracy, result, batches, labels, source_label, ranking, events)
                written = mixed.net
                if table_source is not None:
                    result.fidelity = measure_sharded(result.plan.net, written,
                                                      SampleSource(table_source, net, batch == 1), result.activation_bits,
                                                      mixed_plan(result, mixed.float_layers).float_layers, events,
                                                      runner)
        tnnformat.save(written, str(out_proto), str(out_model))
        if dump_table:
            source = f"{samples.count} samples from {', '.join(input_path)}" if samples else f"table {load_table}"
            write_table(dump_table, result, table_header(str(proto), source, " ".join(sys.argv[1:])))
        if encodings:
            write_encodings(encodings, result)
    finally:
        events.close()

    plan, fidelity = result.plan, result.fidelity
    if fidelity is not None:
        source = f"held-out inputs in {', '.join(eval_path)}" if eval_path else "the calibration inputs"
        if check_samples is not None:
            source = f"the first {fidelity.samples} of {source}"
        click.echo(f"int8 against float on {source}, worst blob first:")
        click.echo(format_table(fidelity))
        if report_path is not None:
            write_html(report_path, f"int8 fidelity of {Path(proto).name}", fidelity, result.statistics,
                       result.scales, plan, sections)
            click.echo(f"report: {report_path}")
    final = plan if mixed is None else mixed_plan(result, mixed.float_layers)
    if final.float_layers:
        click.echo(f"kept float: {', '.join(final.float_layers)}")
    click.echo(f"quantized {len(final.quantized)} of {len(plan.net.layers)} layers "
               f"({describe(config, merge_type, len(final.float_layers), extra_steps)})")
    if samples is not None:
        click.echo(f"inputs: {samples.count} samples from {len(samples.items)} files, "
                   f"{len(samples.skipped)} skipped")
    else:
        click.echo(f"scales: from the table {load_table}")
    for path in (dump_table, encodings):
        if path:
            click.echo(f"wrote {path}")
    click.echo(f"wrote {out_proto} and {out_model} in {time.perf_counter() - started:.1f} s")
    if mixed is not None and not mixed.met and accuracy.strict:
        raise click.ClickException(f"--strict: the {accuracy.metric} drop {mixed.drop:.2f} is above --max_drop "
                                   f"{accuracy.max_drop:.2f} (the best model found was written)")


if __name__ == "__main__":  # pragma: no cover
    main()
