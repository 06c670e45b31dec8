"""Pieces both commands share: option types, the preprocessing flags, input checks and
the calibration/evaluation sample stream with its progress bar."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import click
import numpy as np

from tnnformat import Net

from .inputs import InputFileError, Preprocess, read_input_file

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


def check_writable(prefix: str) -> Tuple[Path, Path]:
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


def single_input(net: Net) -> Tuple[str, Tuple[int, ...]]:
    if len(net.inputs) != 1:
        raise click.ClickException(f"the model has {len(net.inputs)} inputs ({', '.join(net.inputs)}); "
                                   "quantization_cmd calibrates models with one input")
    name, shape = next(iter(net.inputs.items()))
    return name, tuple(shape)


def check_channels(values: Tuple[float, ...], channels: int, flag: str, input_name: str) -> None:
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

    def each_file(self, label: str) -> Iterator[Tuple[Path, np.ndarray]]:
        """(file, its samples) for every usable file, under a progress bar."""
        with click.progressbar(self.files, label=label, file=sys.stderr) as files:
            for path in files:
                batch = self._read(path)
                if batch is not None:
                    yield path, batch

    def batches(self, label: str, size: int = BATCH) -> Iterator[Dict[str, np.ndarray]]:
        """Model inputs of about `size` samples each, over every usable file."""
        pending: List[np.ndarray] = []
        for _, batch in self.each_file(label):
            pending.append(batch)
            if sum(b.shape[0] for b in pending) >= size:
                yield {self.input_name: np.concatenate(pending)}
                pending = []
        if pending:
            yield {self.input_name: np.concatenate(pending)}


def preprocessing_options(command: Callable) -> Callable:
    """-r, -n and -s, as TNN's quantization_cmd spells them."""
    command = click.option("-s", "--scale", type=FloatList(), default="",
                           help="Per-channel scale, e.g. 1,1,1.")(command)
    command = click.option("-n", "--bias", type=FloatList(), default="",
                           help="Per-channel bias, e.g. 104,117,123: y = (x - bias) * scale.")(command)
    command = click.option("-r", "--reverse_channel", default=0, show_default=True,
                           type=NumberChoice({0: "RGB", 1: "BGR"}),
                           help="1: the network takes BGR images.")(command)
    return command


def model_input(net: Net, reverse_channel: int, bias: Tuple[float, ...],
                scale: Tuple[float, ...]) -> Tuple[str, Tuple[int, ...], Preprocess]:
    """The model's single input, its shape and the checked preprocessing."""
    name, shape = single_input(net)
    channels = shape[1] if len(shape) > 1 else 1
    check_channels(bias, channels, "'-n' / '--bias'", name)
    check_channels(scale, channels, "'-s' / '--scale'", name)
    return name, shape, Preprocess(bool(reverse_channel), bias, scale)


