"""quantization_cmd: TNN's command, flags and methods, with an honest report at the end."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

import tnnformat
from tnnformat import TnnFormatError

from .blob_methods import BLOB_METHODS
from .cli_support import (BATCH, NumberChoice, Samples, check_writable, model_input,
                          preprocessing_options)
from .inputs import SUFFIXES, list_input_files
from .weight_methods import WEIGHT_METHODS

#: The comparison holds a batch's float blobs while the int8 model runs: small batches, small memory.
COMPARE_BATCH = 2
MERGE_TYPES = {0: "per-channel: blobs and weights per channel",
               1: "mix: weights per channel, blobs per tensor",
               2: "per-tensor: blobs and weights per tensor"}


def _method_help(methods) -> str:
    return "; ".join(f"{k}: {m.name} ({m.help})" for k, m in methods.items())


def usable_samples(input_path: str, input_name: str, shape, prep) -> Samples:
    """The folder's readable inputs (unreadable ones are skipped with a warning)."""
    files = calibration_files(input_path)
    samples = Samples(files, input_name, shape, prep)
    samples.screen()
    if not samples.files:
        raise click.ClickException(f"none of the {len(files)} files in '{input_path}' could be used")
    return samples


def check_report_writable(path: str) -> None:
    """--report needs matplotlib and a writable place, both checked before calibration."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise click.UsageError("--report needs matplotlib: pip install \"tnn-quantization[report]\"") from None
    folder = Path(path).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise click.BadParameter(f"cannot write '{path}'", param_hint="'--report'")


def calibration_files(input_path: str) -> list:
    """The folder's calibration files; a one-line error if there are none."""
    folder = Path(input_path)
    if not folder.is_dir():
        raise click.ClickException(f"input folder '{input_path}' does not exist")
    try:
        files = list_input_files(folder)
    except OSError as exc:
        raise click.ClickException(f"cannot read input folder '{input_path}': {exc.strerror}") from None
    if not files:
        raise click.ClickException(f"no calibration files ({' '.join(SUFFIXES)}) in '{input_path}'")
    return files


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--proto", required=True, type=click.Path(dir_okay=False), help="TNN proto file (.tnnproto).")
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="TNN model file (.tnnmodel).")
@click.option("-i", "--input_path", required=True, type=click.Path(file_okay=False),
              help=f"Folder of calibration inputs: {' '.join(SUFFIXES)} (any letter case).")
@click.option("-b", "--blob_method", default=0, show_default=True, type=NumberChoice(
    {k: m.name for k, m in BLOB_METHODS.items()}), help="Blob method. " + _method_help(BLOB_METHODS))
@click.option("-w", "--weight_method", default=0, show_default=True, type=NumberChoice(
    {k: m.name for k, m in WEIGHT_METHODS.items()}), help="Weight method. " + _method_help(WEIGHT_METHODS))
@preprocessing_options
@click.option("-t", "--merge_type", default=0, show_default=True, type=NumberChoice(
    {k: v.split(":")[0] for k, v in MERGE_TYPES.items()}),
    help="Granularity. " + "; ".join(f"{k}: {v}" for k, v in MERGE_TYPES.items()))
@click.option("-o", "--output", default="model_quantized", show_default=True,
              help="Output name: writes <output>.tnnproto and <output>.tnnmodel.")
@click.option("--eval_path", type=click.Path(file_okay=False),
              help="Folder of held-out inputs for the int8-vs-float table (default: the calibration inputs).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write an HTML report: the table and every observed blob's histogram with its thresholds.")
@click.option("--skip_fidelity", is_flag=True, help="Do not run the int8-vs-float comparison.")
def main(proto, model, input_path, blob_method, weight_method, reverse_channel, bias, scale,
         merge_type, output, eval_path, report_path, skip_fidelity):
    """Quantize a float TNN model to int8, calibrated on a folder of images or tensors.

    Same flags, methods and output format as TNN's quantization_cmd; the int8 model loads
    in TNN's runtime. Then, unlike TNN's tool, it runs the int8 model beside the float one
    and prints how far each quantized blob drifts, worst first.
    """
    from kernels import KernelError
    from kernels.shapes import infer_shapes

    from .calibrate import collect_statistics, compute_scales, empty_blob_warnings
    from .fidelity import measure
    from .plan import make_plan
    from .quantize import quantize_net, weighted_layers
    from .report import format_table, write_html

    started = time.perf_counter()
    out_proto, out_model = check_writable(output)
    if report_path is not None:
        check_report_writable(report_path)
    try:
        net = tnnformat.load(proto, model)
    except TnnFormatError as exc:
        raise click.ClickException(str(exc)) from None
    input_name, shape, prep = model_input(net, reverse_channel, bias, scale)
    samples = usable_samples(input_path, input_name, shape, prep)
    held_out = usable_samples(eval_path, input_name, shape, prep) if eval_path and not skip_fidelity else None

    try:
        shapes = infer_shapes(net, {input_name: (BATCH,) + tuple(shape[1:])})
        plan = make_plan(net, blob_method, merge_type in (1, 2), shapes)
        stats = collect_statistics(plan, shapes, samples.batches, all_histograms=report_path is not None)
        with click.progressbar(length=len(stats), label="computing scales", file=sys.stderr) as bar:
            scales = compute_scales(stats, done=bar.update)
        with click.progressbar(length=weighted_layers(plan), label="quantizing weights", file=sys.stderr) as bar:
            quantized, count = quantize_net(net, plan, scales, weight_method, merge_type == 2, done=bar.update)
        tnnformat.save(quantized, out_proto, out_model)
        fidelity = None if skip_fidelity else measure(plan.net, quantized, (held_out or samples).batches(
            "comparing int8 with float", size=COMPARE_BATCH))
    except (TnnFormatError, KernelError) as exc:
        raise click.ClickException(str(exc)) from None

    for blob, empty, total in empty_blob_warnings(scales):
        what = "was zero on every input" if empty == total else f"has {empty} of {total} channels that were zero on every input"
        click.echo(f"warning: blob '{blob}' {what}; those get a stand-in scale", err=True)
    if fidelity is not None:
        source = f"held-out inputs in {eval_path}" if held_out else "the calibration inputs"
        click.echo(f"int8 against float on {source}, worst blob first:")
        click.echo(format_table(fidelity))
        if report_path is not None:
            write_html(report_path, f"int8 fidelity of {Path(proto).name}", fidelity, stats, scales)
            click.echo(f"report: {report_path}")
    click.echo(f"quantized {count} of {len(plan.net.layers)} layers "
               f"({BLOB_METHODS[blob_method].name} blobs, {WEIGHT_METHODS[weight_method].name} weights, "
               f"{MERGE_TYPES[merge_type]})")
    click.echo(f"inputs: {samples.count} samples from {len(samples.files)} files, "
               f"{len(samples.skipped)} skipped")
    click.echo(f"wrote {out_proto} and {out_model} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
