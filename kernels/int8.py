"""The int8 machinery shared by the int8 kernels, with TNN's integer arithmetic (CPU reference).

A blob produced by a quantized layer is int8 with its BlobScale (scale and zero point per
channel or per tensor). Where a float blob enters a quantized layer TNN inserts a reformat
that quantizes it with that blob's scale, float2int8(x / scale + zero_point); where an int8
blob enters a float layer it is dequantized, scale * (q - zero_point). The kernels themselves
(`run_int8`) sit beside the float ones in ops/. Facts from TNN's source/tnn/device/cpu/acc/
(conv, inner product, add, concat, pool, relu, reformat) and utils/naive_compute.cc.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tnnformat import BLOB_SCALE_SUFFIX, BlobScale, Layer, Net

from .errors import KernelError
from .rounding import float2int8

FLT_MIN = np.float32(np.finfo(np.float32).tiny)


@dataclass
class Int8Blob:
    values: np.ndarray  # int8
    scale: BlobScale

    def dequantize(self) -> np.ndarray:
        scale, zero = self.scale.per_channel(self.values.ndim)
        scale = scale.astype(np.float32)
        if not zero.any():  # codes are exact in float32: one pass, the cast inside the product
            return np.multiply(self.values, scale, dtype=np.float32)
        values = np.subtract(self.values, zero, dtype=np.float32)
        values *= scale
        return values


def limit_bits(values: np.ndarray, bits: Optional[int]) -> np.ndarray:
    """Int8 codes clamped to [-(2**(bits-1) - 1), 2**(bits-1) - 1], to simulate narrower
    activations on int8 arithmetic; unchanged for None or 8 bits and up."""
    if bits is None or bits >= 8:
        return values
    top = 2 ** (bits - 1) - 1
    return np.clip(values, -top, top).astype(np.int8, copy=False)


def quantize(x: np.ndarray, scale: BlobScale, bits: Optional[int] = None) -> Int8Blob:
    """TNN's reformat float -> int8; a zero scale gives 0, as in TNN. `bits` < 8 then narrows
    the codes (see limit_bits)."""
    s, zp = scale.per_channel(x.ndim)
    zero_scale = s == 0
    values = np.divide(x, np.where(zero_scale, np.float32(1), s), dtype=np.float32)
    if zp.any():  # adding a zero point of 0 changes no code
        values += zp.astype(np.float32)
    q = float2int8(values)
    if zero_scale.any():
        q = np.where(zero_scale, np.int8(0), q)
    return Int8Blob(limit_bits(q, bits), scale)


def blob_scale(net: Net, layer: Layer, blob: str) -> BlobScale:
    """The scale of a blob a quantized layer reads or writes; TNN cannot run without it."""
    scale = net.scale_of(blob)
    if scale is None:
        raise KernelError(f"layer '{layer.name}' is {layer.type_str} but blob '{blob}' has no "
                          f"blob scale ('{blob}{BLOB_SCALE_SUFFIX}') in the model")
    return scale


#: Integers up to this size are exact in float32, and so is every partial sum below it.
FLOAT32_EXACT = 2 ** 24


def accumulator_dtype(centered: np.ndarray, x: BlobScale, bias: Optional[np.ndarray]) -> type:
    """The float dtype in which sums of (x - zp_x) * centered weights, and then the bias, are
    exact integers: float32 (BLAS's fast path) when no partial sum of any output row can reach
    2**24, else float64 (exact for any int8 layer). `centered` is (outputs, inputs) integer
    weights; an int8 input minus its zero point lies within [-128 - zp, 127 - zp]."""
    zero = np.asarray(x.zero_point, np.float64).reshape(-1)
    largest_input = float(np.max(np.maximum(127 - zero, zero + 128)))
    largest_row = float(np.abs(centered).sum(axis=1, dtype=np.float64).max(initial=0.0))
    largest_bias = float(np.abs(bias.astype(np.float64)).max(initial=0.0)) if bias is not None else 0.0
    return np.float32 if largest_row * largest_input + largest_bias < FLOAT32_EXACT else np.float64


def centered_input(x: Int8Blob, dtype: type) -> np.ndarray:
    """The int8 codes minus their zero points, in the accumulator dtype (padding with 0 then
    contributes nothing)."""
    _, zero = x.scale.per_channel(x.values.ndim)
    values = x.values.astype(dtype)
    if zero.any():
        values -= zero.astype(dtype)
    return values


def requantized(acc: np.ndarray, bias: Optional[np.ndarray], multiplier: np.ndarray) -> np.ndarray:
    """float(int32(acc + bias)) * multiplier, TNN's requantization, for exact integer sums `acc`
    held in accumulator_dtype (bias and multiplier shaped to broadcast against it). In float32
    every sum is below 2**24, so adding in place is exact and gives TNN's floats; from float64
    the sum goes through int64 and wraps to int32 as TNN's int32 sum does."""
    if acc.dtype == np.float32:
        if bias is not None:
            acc += bias.astype(np.float32)
        acc *= multiplier
        return acc
    total = acc.astype(np.int64)
    if bias is not None:
        total += bias
    return total.astype(np.int32).astype(np.float32) * multiplier


def channel_values(values: np.ndarray, channels: int) -> np.ndarray:
    """One value per channel: a per-tensor value repeated, per-channel values as they are."""
    return np.broadcast_to(values, (channels,)) if values.size == 1 else values


def requant_multiplier(weight_scale: np.ndarray, output: BlobScale, channels: int) -> np.ndarray:
    """weight scale / output scale per output channel in float32; 0 where the output scale is
    below FLT_MIN (TNN's guard)."""
    w = np.broadcast_to(weight_scale.astype(np.float32), (channels,)) if weight_scale.size == 1 else weight_scale
    o = channel_values(output.scale, channels)
    return np.where(o >= FLT_MIN, w / np.where(o >= FLT_MIN, o, 1), np.float32(0)).astype(np.float32)
