"""Scales a pre-quantized source carries (ONNX QDQ pairs, TFLite int8 tensors), per value.

The source's code q of a value x is real = (q - zero_point) * scale, q in [qmin, qmax]; TNN's
int8 blobs are symmetric (zero point 0, codes in [-127, 127]). `symmetric_scale` is the one
mapping: the scale that covers the source's whole representable range,
max(|qmin - zp|, |qmax - zp|) * scale / 127, so nothing the source can represent saturates; for an
asymmetric source (uint8, or int8 with a zero point) a step is up to twice the source's step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np


@dataclass(frozen=True)
class FileScale:
    scale: np.ndarray       # one per tensor, or one per channel
    zero_point: np.ndarray  # as many as scale
    qmin: int
    qmax: int

    def symmetric_scale(self) -> float:
        """TNN's per-tensor symmetric int8 scale covering the source's range (see above)."""
        scale = np.asarray(self.scale, np.float64).reshape(-1)
        zero = np.asarray(self.zero_point, np.float64).reshape(-1)
        reach = np.maximum(np.abs(self.qmin - zero), np.abs(self.qmax - zero)) * scale
        return float(reach.max() / 127.0)


#: value name -> its scale in the source.
FileScales = Dict[str, FileScale]


@dataclass(frozen=True)
class Prequantized:
    """What a pre-quantized source carries: its blobs' scales (by TNN blob) and whether its
    weights were quantized per channel (else per tensor)."""

    scales: FileScales
    weights_per_channel: bool = True

INTEGER_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                  "uint16": (0, 65535)}


def file_scale(scale, zero_point, dtype) -> FileScale:
    """A FileScale from a source's scale, zero point and code type (numpy dtype or name)."""
    name = np.dtype(dtype).name
    if name not in INTEGER_RANGES:
        raise ValueError(f"codes of type {name} are not supported")
    scale = np.asarray(scale, np.float32).reshape(-1)
    zero = np.broadcast_to(np.asarray(zero_point, np.int64).reshape(-1), scale.shape)
    return FileScale(scale, zero.copy(), *INTEGER_RANGES[name])


def blob_scales(scales: FileScales, blobs: Dict[str, str]) -> FileScales:
    """`scales` keyed by TNN blob (`blobs`: source value -> blob) instead of source value."""
    return {blobs[name]: scale for name, scale in scales.items() if name in blobs}
