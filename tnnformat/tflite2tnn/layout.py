"""TFLite's NHWC against TNN's NCHW: every rank-4 tensor is NHWC in the file and NCHW in TNN.

Other ranks keep their order. Weights and constants are transposed once, when the graph is
read; axes, permutations and pads of rank-4 tensors are mapped by the op converters.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

#: NCHW axis i holds NHWC axis TO_NCHW[i]; NHWC axis a is NCHW axis NCHW_AXIS[a].
TO_NCHW = (0, 3, 1, 2)
NCHW_AXIS = (0, 2, 3, 1)


def tnn_shape(shape: Sequence[int]) -> Tuple[int, ...]:
    """The TNN shape of a TFLite tensor shape."""
    shape = tuple(int(d) for d in shape)
    return tuple(shape[i] for i in TO_NCHW) if len(shape) == 4 else shape


def tnn_array(value: np.ndarray) -> np.ndarray:
    """A TFLite constant in TNN's layout."""
    return np.ascontiguousarray(value.transpose(TO_NCHW)) if value.ndim == 4 else value


def tnn_axis(axis: int, rank: int) -> int:
    """The TNN axis of a TFLite axis of a tensor of `rank` (negative axes allowed)."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    return NCHW_AXIS[axis] if rank == 4 else axis


def broadcast_operand(value: np.ndarray, rank: int) -> np.ndarray:
    """A constant operand broadcast against a rank-`rank` tensor, in TNN's layout: numpy
    aligns the trailing dims of NHWC, so a lower-rank constant is first padded to rank 4."""
    if rank == 4 and value.ndim < 4:
        value = value.reshape((1,) * (4 - value.ndim) + value.shape)
    return tnn_array(value) if value.ndim == 4 else value
