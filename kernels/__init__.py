"""Numpy kernels for TNN layers and the graph runner.

    outputs = kernels.Interpreter(net).forward({"input": batch})

One kernel per layer type, registered by type name (kernels/ops/), with TNN's CPU semantics.
"""
from __future__ import annotations

from . import ops  # noqa: F401  (registers the kernels)
from .errors import KernelError
from .interpreter import Interpreter
from .registry import KERNELS
from .shapes import infer_shapes

__all__ = ["Interpreter", "KernelError", "KERNELS", "infer_shapes"]
