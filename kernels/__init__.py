"""Numpy kernels for TNN layers and the graph runner.

    outputs = kernels.Interpreter(net).forward({"input": batch})

One kernel per layer type, registered by type name (kernels/ops/), with TNN's CPU semantics,
float and, for the layer types TNN runs in integers, int8.
"""
from __future__ import annotations

from . import ops  # noqa: F401  (registers the kernels)
from .errors import KernelError
from .interpreter import Interpreter
from .random_resources import with_random_resources
from .registry import KERNELS
from .shapes import infer_shapes
from .tnn_optimizer import runtime_graph

__all__ = ["Interpreter", "KernelError", "KERNELS", "infer_shapes", "runtime_graph", "with_random_resources"]
