"""Command-line pieces both converters share: --input-shape parsing, a delayed progress bar,
and writing the model with every failure said in one line."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Protocol, Tuple

import click

from ..net import Net
from .errors import ConversionError
from .scales import Prequantized

#: Seconds of work before a progress bar appears (short conversions stay quiet).
PROGRESS_DELAY = 1.0


def parse_input_shapes(ctx, param, values) -> Dict[str, Tuple[int, ...]]:
    """NAME:D0,D1,... (the last colon splits, since ONNX names may hold colons)."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    for value in values:
        name, colon, dims = value.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not colon or not name or not shape or min(shape) <= 0:
            raise click.BadParameter(f"'{value}' is not NAME:D0,D1,... with positive dims, "
                                     "e.g. input:1,3,224,224")
        if name in shapes:
            raise click.BadParameter(f"input '{name}' is given twice")
        shapes[name] = shape
    return shapes


class DelayedProgress:
    """A progress bar per stage, shown only once the whole run has passed PROGRESS_DELAY."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.bar = None
        self.stage: Optional[str] = None
        self.done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage or self.bar is None:
            if time.monotonic() - self.start < PROGRESS_DELAY:
                return
            self.close()
            self.bar = click.progressbar(length=total, label=stage, file=sys.stderr)
            self.bar.__enter__()
            self.stage, self.done = stage, 0
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def converter_command(shape_help: str) -> Callable:
    """The click command of a converter: MODEL -o PREFIX [--input-shape NAME:D0,D1,...] [--float]."""
    def decorate(fn: Callable) -> Callable:
        fn = click.option("--float", "float_only", is_flag=True,
                          help="For a pre-quantized model: write the dequantized float model "
                               "instead of the int8 one.")(fn)
        fn = click.option("--input-shape", "input_shapes", multiple=True, callback=parse_input_shapes,
                          metavar="NAME:D0,D1,...", help=shape_help)(fn)
        fn = click.option("-o", "--output", "prefix", required=True,
                          help="Output prefix: writes PREFIX.tnnproto and PREFIX.tnnmodel.")(fn)
        fn = click.argument("model", type=click.Path(dir_okay=False))(fn)
        return click.command(context_settings={"help_option_names": ["-h", "--help"]})(fn)
    return decorate


class Summary(Protocol):
    """What a front end's conversion reports."""

    prequantized: Optional[Prequantized]

    def line(self) -> str: ...


def _int8(net: Net, prequantized: Prequantized) -> Tuple[Net, str]:
    """The int8 model at a pre-quantized source's scales, and what the summary says of it."""
    from quantization_cmd.config import ConfigError
    from quantization_cmd.prequantized import quantize_with_file_scales

    try:
        result = quantize_with_file_scales(net, prequantized.scales, prequantized.weights_per_channel)
    except ConfigError as exc:
        raise ConversionError(f"the model's scales cannot make a TNN int8 model: {exc}") from None
    count = sum(layer.quantized for layer in result.net.layers)
    return result.net, (f"; int8 from the file's {len(prequantized.scales)} blob scales "
                        f"({count} of {len(result.net.layers)} layers int8; --float for the float model)")


def write_model(source: str, prefix: str, float_only: bool,
                convert: Callable[[Callable], Tuple[Net, Summary]]) -> None:
    """Run `convert(progress)` -> (net, summary), make the int8 model when the source carries
    scales (unless `float_only`), save PREFIX.tnnproto/.tnnmodel and echo the summary; a
    ConversionError, a format error or a bug of ours is one line, and nothing is written."""
    from .. import TnnFormatError, save

    proto, weights = Path(prefix + ".tnnproto"), Path(prefix + ".tnnmodel")
    progress = DelayedProgress()
    try:
        net, summary = convert(progress)
        line = summary.line()
        if summary.prequantized is not None and not float_only:
            net, more = _int8(net, summary.prequantized)
            line += more
        progress("writing the model", 0, 1)
        save(net, proto, weights)
        progress("writing the model", 1, 1)
        progress.close()
    except (ConversionError, TnnFormatError) as exc:
        progress.close()
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a bug of ours: still one line, and nothing written
        progress.close()
        raise click.ClickException(f"{source}: conversion failed unexpectedly "
                                   f"({type(exc).__name__}: {exc}); please report it") from None
    click.echo(f"{source}: {line} in {time.monotonic() - progress.start:.1f} s; "
               f"wrote {proto} and {weights}")
