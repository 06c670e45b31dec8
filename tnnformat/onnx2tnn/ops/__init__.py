"""One converter per ONNX op, registered by op type in onnx2tnn's registry.

A converter reads one node through the Context and emits the TNN layers that compute it,
with TNN's own converter's param conventions (see tnnformat.importer.build).
"""
from __future__ import annotations

from typing import Tuple

from ...importer.build import Registry

#: (domain, op type) -> converter; domain "" is ONNX's, TNN_DOMAIN holds our fusions' nodes.
REGISTRY = Registry("onnx2tnn")
converts = REGISTRY.converts
convert_node = REGISTRY.convert_node


def supported_ops() -> Tuple[str, ...]:
    """The ONNX op types onnx2tnn converts."""
    return REGISTRY.supported_ops()


# Importing the modules registers their converters.
from . import activation, binary, conv, dense, norm, pool, resize, tensor  # noqa: E402,F401
