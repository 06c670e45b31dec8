"""The onnx2tnn command: MODEL.onnx -o PREFIX [--input-shape NAME:1,3,224,224 ...]."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import click

#: Seconds of work before a progress bar appears (short conversions stay quiet).
PROGRESS_DELAY = 1.0
INSTALL_HINT = 'onnx2tnn needs the onnx package: pip install "tnn-quantization[onnx]"'


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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "prefix", required=True,
              help="Output prefix: writes PREFIX.tnnproto and PREFIX.tnnmodel.")
@click.option("--input-shape", "input_shapes", multiple=True, callback=parse_input_shapes,
              metavar="NAME:D0,D1,...",
              help="Static shape of an input, e.g. data:1,3,224,224; needed for inputs with "
                   "dynamic dims, may be repeated.")
def main(model: str, prefix: str, input_shapes: Dict[str, Tuple[int, ...]]) -> None:
    """Convert an ONNX model (opset 7 or newer) to a TNN model.

    Shapes become static, constant subgraphs are folded, BatchNormalization is folded into
    the convolution before it, and layers, blobs and params follow TNN's own converter, with
    blob and layer names taken from the ONNX model.
    """
    try:
        from .converter import convert_with_summary
        from .errors import ConversionError
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("onnx", "google"):
            raise click.ClickException(INSTALL_HINT) from None
        raise
    from .. import TnnFormatError, save

    proto, weights = Path(prefix + ".tnnproto"), Path(prefix + ".tnnmodel")
    progress = DelayedProgress()
    try:
        net, summary = convert_with_summary(model, input_shapes, progress)
        progress("writing the model", 0, 1)
        save(net, proto, weights)
        progress("writing the model", 1, 1)
        progress.close()
    except (ConversionError, TnnFormatError) as exc:
        progress.close()
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a bug of ours: still one line, and nothing written
        progress.close()
        raise click.ClickException(f"{model}: conversion failed unexpectedly "
                                   f"({type(exc).__name__}: {exc}); please report it") from None
    click.echo(f"{model}: {summary.nodes} ONNX nodes -> {summary.layers} TNN layers "
               f"({summary.folded} nodes folded as constants, {summary.fused} rewrites) "
               f"in {time.monotonic() - progress.start:.1f} s; wrote {proto} and {weights}")
