"""quantization_cmd: TNN's command, flags and methods, with an honest report at the end."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import click
import numpy as np

import tnnformat
from tnnformat import Net, TnnFormatError

from .blob_methods import BLOB_METHODS
from .inputs import SUFFIXES, InputFileError, Preprocess, list_input_files, read_input_file
from .weight_methods import WEIGHT_METHODS

MERGE_TYPES = {0: "per-channel: blobs and weights per channel",
               1: "mix: weights per channel, blobs per tensor",
               2: "per-tensor: blobs and weights per tensor"}
BATCH = 8  # samples per forward pass: statistics do not depend on it, speed does


class NumberChoice(click.ParamType):
    """An integer from a fixed set, named in errors with what each value means."""

    name = "number"

    def __init__(self, meanings: Dict[int, str]):
        self.meanings = meanings

    def convert(self, value, param, ctx):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if number not in self.meanings:
            allowed = ", ".join(f"{k} ({v})" for k, v in self.meanings.items())
            self.fail(f"{value!r} is not one of {allowed}", param, ctx)
        return number


class FloatList(click.ParamType):
    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if str(value).strip() == "":
            return ()
        try:
            return tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers, e.g. 104,117,123", param, ctx)


def _method_help(methods) -> str:
    return "; ".join(f"{k}: {m.name} ({m.help})" for k, m in methods.items())


def _check_writable(prefix: str) -> Tuple[Path, Path]:
    proto, model = Path(prefix + ".tnnproto"), Path(prefix + ".tnnmodel")
    folder = proto.parent
    if not folder.is_dir():
        raise click.BadParameter(f"folder '{folder}' does not exist", param_hint="'-o' / '--output'")
    for path in (proto, model):
        if path.is_dir():
            raise click.BadParameter(f"'{path}' is a folder", param_hint="'-o' / '--output'")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write in '{folder}': {exc.strerror}", param_hint="'-o' / '--output'")
    return proto, model


def _single_input(net: Net) -> Tuple[str, Tuple[int, ...]]:
    if len(net.inputs) != 1:
        raise click.ClickException(f"the model has {len(net.inputs)} inputs ({', '.join(net.inputs)}); "
                                   "quantization_cmd calibrates models with one input")
    name, shape = next(iter(net.inputs.items()))
    return name, tuple(shape)


def _check_channels(values: Tuple[float, ...], channels: int, flag: str, input_name: str) -> None:
    if values and len(values) != channels:
        raise click.BadParameter(f"{len(values)} values given; the model's input '{input_name}' has "
                                 f"{channels} channels", param_hint=flag)


class Samples:
    """The usable calibration files, read again for each pass and grouped into batches."""

    def __init__(self, files: List[Path], input_name: str, shape: Sequence[int], prep: Preprocess):
        self.files, self.input_name, self.shape, self.prep = files, input_name, shape, prep
        self.skipped: List[Tuple[Path, str]] = []
        self.count = 0

    def _read(self, path: Path) -> Optional[np.ndarray]:
        try:
            return read_input_file(path, self.shape, self.prep)
        except InputFileError as exc:
            self.skipped.append((path, str(exc)))
            click.echo(f"warning: skipping {path}: {exc}", err=True)
            return None

    def screen(self) -> None:
        """Read every file once, dropping (with a warning) those that cannot be used."""
        usable = []
        with click.progressbar(self.files, label="reading inputs", file=sys.stderr) as files:
            for path in files:
                batch = self._read(path)
                if batch is not None:
                    usable.append(path)
                    self.count += batch.shape[0]
        self.files = usable

    def batches(self, label: str) -> Iterator[Dict[str, np.ndarray]]:
        pending: List[np.ndarray] = []
        with click.progressbar(self.files, label=f"calibration pass: {label}", file=sys.stderr) as files:
            for path in files:
                batch = self._read(path)
                if batch is None:
                    continue
                pending.append(batch)
                if sum(b.shape[0] for b in pending) >= BATCH:
                    yield {self.input_name: np.concatenate(pending)}
                    pending = []
            if pending:
                yield {self.input_name: np.concatenate(pending)}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--proto", required=True, type=click.Path(dir_okay=False), help="TNN proto file (.tnnproto).")
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="TNN model file (.tnnmodel).")
@click.option("-i", "--input_path", required=True, type=click.Path(file_okay=False),
              help=f"Folder of calibration inputs: {' '.join(SUFFIXES)} (any letter case).")
@click.option("-b", "--blob_method", default=0, show_default=True, type=NumberChoice(
    {k: m.name for k, m in BLOB_METHODS.items()}), help="Blob method. " + _method_help(BLOB_METHODS))
@click.option("-w", "--weight_method", default=0, show_default=True, type=NumberChoice(
    {k: m.name for k, m in WEIGHT_METHODS.items()}), help="Weight method. " + _method_help(WEIGHT_METHODS))
@click.option("-r", "--reverse_channel", default=0, show_default=True,
              type=NumberChoice({0: "RGB", 1: "BGR"}), help="1: the network takes BGR images.")
@click.option("-n", "--bias", type=FloatList(), default="", help="Per-channel bias, e.g. 104,117,123: y = (x - bias) * scale.")
@click.option("-s", "--scale", type=FloatList(), default="", help="Per-channel scale, e.g. 1,1,1.")
@click.option("-t", "--merge_type", default=0, show_default=True, type=NumberChoice(
    {k: v.split(":")[0] for k, v in MERGE_TYPES.items()}),
    help="Granularity. " + "; ".join(f"{k}: {v}" for k, v in MERGE_TYPES.items()))
@click.option("-o", "--output", default="model_quantized", show_default=True,
              help="Output name: writes <output>.tnnproto and <output>.tnnmodel.")
def main(proto, model, input_path, blob_method, weight_method, reverse_channel, bias, scale,
         merge_type, output):
    """Quantize a float TNN model to int8, calibrated on a folder of images or tensors.

    Same flags, methods and output format as TNN's quantization_cmd; the int8 model loads
    in TNN's runtime.
    """
    from kernels.shapes import infer_shapes

    from .calibrate import collect_statistics, compute_scales, empty_blob_warnings
    from .plan import make_plan
    from .quantize import quantize_net

    started = time.perf_counter()
    out_proto, out_model = _check_writable(output)
    try:
        net = tnnformat.load(proto, model)
    except TnnFormatError as exc:
        raise click.ClickException(str(exc)) from None
    input_name, shape = _single_input(net)
    channels = shape[1] if len(shape) > 1 else 1
    _check_channels(bias, channels, "'-n' / '--bias'", input_name)
    _check_channels(scale, channels, "'-s' / '--scale'", input_name)
    if not os.path.isdir(input_path):
        raise click.ClickException(f"input folder '{input_path}' does not exist")
    try:
        files = list_input_files(Path(input_path))
    except OSError as exc:
        raise click.ClickException(f"cannot read input folder '{input_path}': {exc.strerror}") from None
    if not files:
        raise click.ClickException(f"no calibration files ({' '.join(SUFFIXES)}) in '{input_path}'")

    samples = Samples(files, input_name, shape, Preprocess(bool(reverse_channel), bias, scale))
    samples.screen()
    if not samples.files:
        raise click.ClickException(f"none of the {len(files)} files in '{input_path}' could be used")

    try:
        shapes = infer_shapes(net, {input_name: (BATCH,) + tuple(shape[1:])})
        plan = make_plan(net, blob_method, merge_type in (1, 2), shapes)
        stats = collect_statistics(plan, shapes, samples.batches)
        scales = compute_scales(stats)
        quantized, count = quantize_net(net, plan, scales, weight_method, merge_type == 2)
        tnnformat.save(quantized, out_proto, out_model)
    except TnnFormatError as exc:
        raise click.ClickException(str(exc)) from None

    for blob, empty, total in empty_blob_warnings(scales):
        what = "was zero on every input" if empty == total else f"has {empty} of {total} channels that were zero on every input"
        click.echo(f"warning: blob '{blob}' {what}; those get a stand-in scale", err=True)
    click.echo(f"quantized {count} of {len(plan.net.layers)} layers "
               f"({BLOB_METHODS[blob_method].name} blobs, {WEIGHT_METHODS[weight_method].name} weights, "
               f"{MERGE_TYPES[merge_type]})")
    click.echo(f"inputs: {samples.count} samples from {len(samples.files)} files, "
               f"{len(samples.skipped)} skipped")
    click.echo(f"wrote {out_proto} and {out_model} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
