"""The one error type of the importers: whatever cannot be converted, said in one line."""
from __future__ import annotations


class ConversionError(ValueError):
    """A model, node or option an importer (onnx2tnn, tflite2tnn) cannot turn into a TNN model.

    The message is complete on its own (the file, input, or node with its op type), so the
    command line prints it as is, without a traceback.
    """
