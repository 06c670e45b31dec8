"""Layer kernels, one module per family; importing this package registers them all."""
from . import activation, conv, dense, elementwise, normalization, pooling, shape_ops  # noqa: F401
