"""One converter per TFLite builtin operator, registered in tflite2tnn's registry.

Converters see values in TNN's layout (NCHW for rank 4, see ..layout) and emit TNN layers
through the importer's Context and builders; fused activations become a layer after the op.
"""
from __future__ import annotations

from typing import Callable, Tuple

from ...importer.build import Registry
from ...importer.context import Context
from ...importer.graph import Node

REGISTRY = Registry("tflite2tnn")
converts = REGISTRY.converts

#: ActivationFunctionType -> (TNN layer type, params). TFLite's float kernels clamp to the
#: activation's range (CalculateActivationRange), which TANH (4) does not have: they run it as
#: no activation, and so do we. 5 SIGN_BIT is refused.
ACTIVATIONS = {1: ("ReLU", {}), 2: ("Clip", {"min": -1.0, "max": 1.0}), 3: ("ReLU6", {})}
UNAPPLIED = {4}


def with_activation(ctx: Context, node: Node, emit: Callable[[str], None]) -> None:
    """Run `emit(out)` for the op itself, then the node's fused activation, if any."""
    code = int(node.attr("fused_activation_function", 0))
    out = node.outputs[0]
    if not code or code in UNAPPLIED:
        emit(out)
        return
    if code not in ACTIVATIONS:
        raise ctx.fail(f"fused activation {code} is not supported")
    before = ctx.new_value(f"{out}_preact", ctx.shape(out))
    emit(before)
    tnn_type, params = ACTIVATIONS[code]
    ctx.emit(tnn_type, [before], [out], params, name=f"{node.label}_act")


def supported_ops() -> Tuple[str, ...]:
    """The TFLite builtin operators tflite2tnn converts."""
    return REGISTRY.supported_ops()


# Importing the modules registers their converters.
from . import conv, elementwise, tensor  # noqa: E402,F401
