"""The tflite2tnn command: MODEL.tflite -o PREFIX [--input-shape NAME:1,224,224,3 ...]."""
from __future__ import annotations

from typing import Dict, Tuple

import click

from ..importer.cli import parse_input_shapes, write_model


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "prefix", required=True,
              help="Output prefix: writes PREFIX.tnnproto and PREFIX.tnnmodel.")
@click.option("--input-shape", "input_shapes", multiple=True, callback=parse_input_shapes,
              metavar="NAME:D0,D1,...",
              help="Shape of an input with dynamic dims, in the file's layout (NHWC), e.g. "
                   "input:1,224,224,3; it must be the shape the file's tensors are stored at.")
def main(model: str, prefix: str, input_shapes: Dict[str, Tuple[int, ...]]) -> None:
    """Convert a TFLite model (one subgraph, float or float16 weights) to a TNN model.

    NHWC tensors become NCHW, DEQUANTIZE of constant weights and DENSIFY are folded, fused
    activations become layers, and layer and blob names are the file's tensor names.
    """
    from .converter import convert_with_summary

    def convert(progress):
        net, summary = convert_with_summary(model, input_shapes, progress)
        return net, (f"{summary.operators} TFLite operators -> {summary.layers} TNN layers "
                     f"({summary.folded} folded as constants)")

    write_model(model, prefix, convert)
