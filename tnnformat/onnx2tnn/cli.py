"""The onnx2tnn command: MODEL.onnx -o PREFIX [--input-shape NAME:1,3,224,224 ...]."""
from __future__ import annotations

from typing import Dict, Tuple

import click

from ..importer.cli import converter_command, write_model

INSTALL_HINT = 'onnx2tnn needs the onnx package: pip install "tnn-quantization[onnx]"'


@converter_command("Static shape of an input, e.g. data:1,3,224,224; needed for inputs with "
                   "dynamic dims, may be repeated.")
def main(model: str, prefix: str, input_shapes: Dict[str, Tuple[int, ...]], float_only: bool) -> None:
    """Convert an ONNX model (opset 7 or newer) to a TNN model.

    Shapes become static, constant subgraphs are folded, BatchNormalization is folded into
    the convolution before it, and layers, blobs and params follow TNN's own converter, with
    blob and layer names taken from the ONNX model.
    """
    try:
        from .converter import convert_with_summary
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("onnx", "google"):
            raise click.ClickException(INSTALL_HINT) from None
        raise

    write_model(model, prefix, float_only,
                lambda progress: convert_with_summary(model, input_shapes, progress))
