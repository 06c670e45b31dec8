"""TNN's RawBuffer: typed element data, as both model files store it.

Its own module so that `net` and `blob_scale` can both build on it without a cycle.
"""
from __future__ import annotations

import enum
from typing import Any, Dict, Optional, Tuple

import numpy as np


class DataType(enum.IntEnum):
    """TNN's DataType numbers (include/tnn/core/common.h)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BFP16 = 4
    INT64 = 5
    UINT32 = 6


#: numpy storage dtype of each TNN data type (bfp16 is kept as its raw 16 bits).
NUMPY_DTYPE = {
    DataType.FLOAT: np.dtype("<f4"),
    DataType.HALF: np.dtype("<f2"),
    DataType.INT8: np.dtype("i1"),
    DataType.INT32: np.dtype("<i4"),
    DataType.BFP16: np.dtype("<u2"),
    DataType.INT64: np.dtype("<i8"),
    DataType.UINT32: np.dtype("<u4"),
}


def data_type_of(array: np.ndarray) -> DataType:
    """The TNN data type that stores `array`'s dtype unchanged."""
    for data_type, dtype in NUMPY_DTYPE.items():
        if data_type != DataType.BFP16 and array.dtype.newbyteorder("<") == dtype:
            return data_type
    raise TypeError(f"no TNN data type stores numpy dtype {array.dtype}")


class RawBuffer:
    """One TNN RawBuffer: a data type, dims (possibly empty) and the element data.

    `data` is flat, in the stored dtype, and may be a read-only view on the file's bytes.
    TNN writes dims that need not match the element count (blob scales carry no dims), so
    dims are kept as stored and `numpy()` shapes the data only when they agree.
    """

    __slots__ = ("data_type", "dims", "data")

    def __init__(self, data_type: DataType, dims: Tuple[int, ...], data: np.ndarray):
        self.data_type = DataType(data_type)
        self.dims = tuple(int(d) for d in dims)
        self.data = data.reshape(-1)

    @classmethod
    def from_array(cls, array: Any, data_type: Optional[DataType] = None,
                   dims: Optional[Tuple[int, ...]] = None) -> "RawBuffer":
        """A buffer holding `array`, stored as `data_type` (default: the array's own type)."""
        array = np.asarray(array)
        if data_type is None:
            data_type = data_type_of(array)
        data = np.ascontiguousarray(array, dtype=NUMPY_DTYPE[DataType(data_type)]).reshape(-1)
        return cls(data_type, array.shape if dims is None else dims, data)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def numpy(self, dtype: Any = None) -> np.ndarray:
        """The elements, shaped by dims when they fit, converted to `dtype` if given.

        Half and bfp16 are widened to float32 when `dtype` is a float type, so kernels
        can always ask for float32 whatever the file stored.
        """
        data = self.data
        if self.data_type == DataType.BFP16:
            data = (data.astype(np.uint32) << 16).view(np.float32)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if self.dims and int(np.prod(self.dims)) == data.size:
            return data.reshape(self.dims)
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawBuffer):
            return NotImplemented
        return (self.data_type == other.data_type and self.dims == other.dims
                and self.data.tobytes() == other.data.tobytes())

    def __repr__(self) -> str:
        return f"RawBuffer({self.data_type.name}, dims={list(self.dims)}, count={self.data.size})"


#: A layer's resource: its named buffers ("filter", "bias", "scale", ...).
Resource = Dict[str, RawBuffer]
