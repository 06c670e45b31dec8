"""The tflite2tnn command: MODEL.tflite -o PREFIX [--input-shape NAME:1,224,224,3 ...]."""
from __future__ import annotations

from typing import Dict, Tuple

from ..importer.cli import converter_command, write_model


@converter_command("Shape of an input with dynamic dims, in the file's layout (NHWC), e.g. "
                   "input:1,224,224,3; it must be the shape the file's tensors are stored at.")
def main(model: str, prefix: str, input_shapes: Dict[str, Tuple[int, ...]], float_only: bool) -> None:
    """Convert a TFLite model (one subgraph; float, float16 or int8 weights) to a TNN model.

    NHWC tensors become NCHW, DEQUANTIZE of constant weights and DENSIFY are folded, fused
    activations become layers, and layer and blob names are the file's tensor names. An int8
    model becomes a TNN int8 model at its scales (--float: the dequantized float model).
    """
    from .converter import convert_with_summary

    write_model(model, prefix, float_only,
                lambda progress: convert_with_summary(model, input_shapes, progress))
