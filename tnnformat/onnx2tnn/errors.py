"""The one error type of onnx2tnn: whatever cannot be converted, said in one line."""
from __future__ import annotations


class ConversionError(ValueError):
    """A model, node or option onnx2tnn cannot turn into a TNN model.

    The message is complete on its own (the file, input, or node with its op type and opset),
    so the command line prints it as is, without a traceback.
    """


def node_error(label: str, op_type: str, opset: int, message: str) -> ConversionError:
    """The error for one node: which node, its op type and the model's opset, then why."""
    return ConversionError(f"node '{label}' ({op_type}, opset {opset}): {message}")
