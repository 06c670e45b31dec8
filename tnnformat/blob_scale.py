"""A blob's int8 scale and zero point, and the BlobScale resource TNN stores them in.

The one place that knows the resource layout, so readers (the interpreter) and writers (the
quantizer, random resources) cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .buffer import RawBuffer, Resource


def _flat(values: np.ndarray) -> RawBuffer:
    """A buffer without dims, as TNN's tool writes blob scales."""
    return RawBuffer.from_array(np.ascontiguousarray(values).reshape(-1), dims=())


@dataclass
class BlobScale:
    scale: np.ndarray  # float32, one value (per tensor) or one per channel
    zero_point: np.ndarray  # int8, same length

    def per_channel(self, ndim: int) -> Tuple[np.ndarray, np.ndarray]:
        """Scale and zero point shaped to broadcast over an (n, C, ...) tensor."""
        shape = (1, -1) + (1,) * (ndim - 2) if self.scale.size > 1 else (1,) * ndim
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def to_resource(self) -> Resource:
        """The `<blob>_scale_data_` resource: zero points, scales and an unused zero bias."""
        return {"zero_point": _flat(self.zero_point.astype(np.int8)),
                "scale": _flat(self.scale.astype(np.float32)),
                "bias": _flat(np.zeros(self.scale.size, np.int32))}

    @classmethod
    def from_resource(cls, resource: Resource) -> "BlobScale":
        """Read back a BlobScale resource; one without zero points has zeros (old TNN files)."""
        scale = resource["scale"].numpy(np.float32).reshape(-1)
        zero = resource["zero_point"].numpy().reshape(-1).astype(np.int8) if "zero_point" in resource \
            else np.zeros(scale.size, np.int8)
        return cls(scale, zero)
