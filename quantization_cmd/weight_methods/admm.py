"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (qmax * 1.25); then repeat q = clip(round(w / scale), +-qmax)
and scale = <w, q> / <q, q>, 1000 times (once a row's q stops changing, its scale stops too,
so each row leaves the loop at its own fixed point with the same result). The dot products
are accumulated in float32 in order, as TNN's loop does: the scale is then TNN's to the bit.

Rows are stored as columns (values x rows), so that a sum down the first axis is numpy's plain
running sum, one row's values in order, for all rows at once (numpy sums in pairs only along
the contiguous axis): no cumulative array, no float64, and rows that settle stay in the
working set (a settled row computes the same q and scale again) until at least half of it
has, then the set is compacted. AlexNet's first fully connected layer (4096 rows of 9216
values, up to 825 rounds; random weights): 523 s with a cumulative sum per row and round, 33 s.
"""
from __future__ import annotations

import numpy as np

from ..config import qmax
from ..shards import side_by_side
from . import WeightMethod

MAX_ITERATIONS = 1000
EPS = np.float32(1e-9)
#: Values per piece of the rows (4 MB of float32): AlexNet's 4096 x 9216 layer in pieces of
#: 128 rows takes 0.67x the time of one piece on one core (fewer rounds for most pieces, arrays
#: nearer the cache), pieces side by side on two cores 0.35x.
PIECE_VALUES = 1 << 20


def _round_clip(columns: np.ndarray, scale: np.ndarray, top: int) -> np.ndarray:
    """clip(round(w / (scale + EPS)), +-top) per column, rounding halves away from zero as
    std::round does; all in float32 and exact: clipping first changes nothing (+-top are
    integers), and trunc(x) and x - trunc(x) are exact."""
    x = columns / (scale + EPS)
    np.clip(x, -top, top, out=x)
    whole = np.trunc(x)
    half_up = np.abs(np.subtract(x, whole, out=x)) >= 0.5  # x now holds its fraction
    whole += np.copysign(half_up, x, dtype=np.float32)
    return whole


def _running_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, sum of a * b accumulated first value to last in float32. Down the first
    axis of two or more columns numpy adds row after row; a single column would be summed
    in pairs, so it takes the cumulative sum."""
    if a.shape[1] == 1:
        return np.cumsum(a[:, 0] * b[:, 0], dtype=np.float32)[-1:]
    return np.einsum("ka,ka->a", a, b)


def quantize(weights: np.ndarray, bits: int = 8):
    """Pieces of about PIECE_VALUES values, on all cores: rows settle independently, a piece
    leaves the loop when its own rows have, and its arrays stay small."""
    top = qmax(bits)
    weights = weights.astype(np.float32)
    per_piece = max(1, PIECE_VALUES // max(weights.shape[1], 1))
    pieces = [weights[first:first + per_piece] for first in range(0, len(weights), per_piece)]
    done = list(side_by_side(lambda piece: _settle(piece, top), pieces)) or [(weights.astype(np.int8), np.zeros(0, np.float32))]
    scale = np.concatenate([s for _, s in done])
    return np.concatenate([q for q, _ in done]), scale, np.zeros(scale.size, np.int8)


def _settle(weights: np.ndarray, top: int):
    """(q, scale) of float32 rows `weights`, as TNN's 1000 rounds give them."""
    scale = (np.max(np.abs(weights), axis=1).astype(np.float64) / (top * 1.25)).astype(np.float32)
    result = np.empty(weights.shape, np.int8)
    rows = np.arange(len(weights))  # the working set: rows still moving, and some settled ones
    columns = np.ascontiguousarray(weights.T)
    q = _round_clip(columns, scale, top)
    for iteration in range(MAX_ITERATIONS):
        scale[rows] = _running_dot(columns, q) / (_running_dot(q, q) + EPS)
        if iteration == MAX_ITERATIONS - 1:
            break
        new_q = _round_clip(columns, scale[rows], top)
        moved = np.any(new_q != q, axis=0)
        q = new_q
        if not moved.any():
            break
        if np.count_nonzero(moved) * 2 <= moved.size:
            result[rows[~moved]] = q[:, ~moved].T
            rows, columns, q = rows[moved], np.ascontiguousarray(columns[:, moved]), np.ascontiguousarray(q[:, moved])
    result[rows] = q.T
    return result, scale


METHOD = WeightMethod("ADMM", quantize, "symmetric, scale refined by alternating rounding and least squares")
