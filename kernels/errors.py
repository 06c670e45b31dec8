"""The one error type of kernels: a model the interpreter cannot run, said in one line."""
from __future__ import annotations


class KernelError(ValueError):
    """A layer without a kernel, an input of the wrong shape, or shapes that do not fit."""
