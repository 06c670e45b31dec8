"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (qmax * 1.25); then repeat q = clip(round(w / scale), +-qmax)
and scale = <w, q> / <q, q>, 1000 times. Once a row's q stops changing, its scale stops too,
so each row leaves the loop at its own fixed point with the same result; a row whose q starts
to swing between two states leaves with the one the 1000th round has (see _undoing). The dot
products are accumulated in float32 in order, as TNN's loop does: the scale is then TNN's to
the bit.

Rows are stored as columns (values x rows), so that a sum down the first axis is a running
sum of each row's values in order, for all rows at once (see _running_dot): no cumulative
array and no float64. A round compares each value with the
limits of its rounding interval and rounds only those that left it (see _settle), and rows
that settle stay in the working set (a settled row computes the same q and scale again) until
half of it has, then the set is compacted. AlexNet's first fully connected layer (4096 rows of
9216 values, random weights, up to 825 rounds): 523 s with a cumulative sum per row and a
rounding of every value each round; 19 s.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from kernels.rounding import rounded

from ..config import qmax
from ..shards import side_by_side
from . import LayerProgress, WeightMethod

MAX_ITERATIONS = 1000
EPS = np.float32(1e-9)
#: Values per piece of the rows (4 MB of float32). 1024 of AlexNet's rows of 9216 values: one
#: piece 15.9 s, pieces of 2**20 values side by side on two cores 5.3 s (most pieces need fewer
#: rounds than the slowest row, and their arrays stay nearer the cache; 2**18: 6.2 s, 2**21: 6.3).
PIECE_VALUES = 1 << 20


def _limits(m: np.ndarray, top: int):
    """The interval [below, above) of values that round to m (nothing rounds above top)."""
    return m - np.float32(0.5), np.where(m < top, m + np.float32(0.5), np.float32(np.inf))


def _running_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, sum of a * b accumulated first value to last in float32. Down the first
    axis of two or more columns numpy's einsum adds row after row (checked once per process,
    see _einsum_in_order; else the cumulative sum, slower); a single column would be summed
    in pairs, so it takes the cumulative sum."""
    if a.shape[1] == 1 or not _einsum_in_order():
        return np.cumsum(a * b, axis=0, dtype=np.float32)[-1]
    return np.einsum("ka,ka->a", a, b)


@lru_cache(maxsize=1)
def _einsum_in_order() -> bool:
    """Whether this numpy's einsum sums each column in order (numpy does not promise it: a
    change would change TNN's scales in their last bits, so it is checked, not assumed)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((20000, 3)).astype(np.float32) for _ in range(2))
    return np.array_equal(np.einsum("ka,ka->a", a, b), np.cumsum(a * b, axis=0, dtype=np.float32)[-1])


def quantize(weights: np.ndarray, bits: int = 8, progress: LayerProgress = lambda share: None):
    """Pieces of about PIECE_VALUES values, on all cores: rows settle independently, a piece
    leaves the loop when its own rows have, and its arrays stay small. `progress` hears the
    share of the rows done after each piece."""
    top = qmax(bits)
    weights = weights.astype(np.float32, copy=False)  # read only: pieces are views
    if not weights.size:
        return weights.astype(np.int8), np.zeros(len(weights), np.float32), np.zeros(len(weights), np.int8)
    per_piece = max(1, PIECE_VALUES // weights.shape[1])
    pieces = [weights[first:first + per_piece] for first in range(0, len(weights), per_piece)]
    done = []
    for settled in side_by_side(lambda piece: _settle(piece, top), pieces):
        done.append(settled)
        progress(min(len(done) * per_piece, len(weights)) / len(weights))
    scale = np.concatenate([s for _, s in done])
    return np.concatenate([q for q, _ in done]), scale, np.zeros(scale.size, np.int8)


def _settle(weights: np.ndarray, top: int):
    """(q, scale) of float32 rows `weights`, as TNN's 1000 rounds give them.

    On magnitudes: w / s has the sign of w, so q = sign(w) m with m = round(|w| / s), and w q =
    |w| m, the same products. m only changes where |w| / s leaves [m - 0.5, m + 0.5) (below
    and above the limits kept per value; none above at top), so a round compares instead of
    rounding and rounds only the values that crossed."""
    magnitudes = np.ascontiguousarray(np.abs(weights).T)  # (values, rows)
    scale = (np.max(magnitudes, axis=0).astype(np.float64) / (top * 1.25)).astype(np.float32)
    result = np.empty(magnitudes.shape[::-1], np.float32)
    rows = np.arange(magnitudes.shape[1])  # the working set: rows still moving, and some settled ones
    m = rounded(np.minimum(magnitudes / (scale + EPS), top))
    below, above = _limits(m, top)
    previous = None  # the last round's changes: (indices, the values before them)
    for iteration in range(MAX_ITERATIONS):
        scale[rows] = _running_dot(magnitudes, m) / (_running_dot(m, m) + EPS)
        if iteration == MAX_ITERATIONS - 1:
            break
        x = magnitudes / (scale[rows] + EPS)
        crossed = np.flatnonzero((x < below) | (x >= above))
        if crossed.size == 0:
            break
        before, new = m.reshape(-1)[crossed], rounded(np.minimum(x.reshape(-1)[crossed], top))
        swinging = _undoing(crossed, new, previous, len(rows))
        previous = crossed, before
        for array, values in zip((m, below, above), (new, *_limits(new, top))):
            array.reshape(-1)[crossed] = values
        moved = np.zeros(len(rows), bool)
        moved[crossed % len(rows)] = True
        if swinging.any():
            # such a row's m alternates from now on; the last round's is the one of its parity
            if (MAX_ITERATIONS - 2 - iteration) % 2:
                back = swinging[crossed % len(rows)]
                m.reshape(-1)[crossed[back]] = before[back]
            final = [np.ascontiguousarray(a[:, swinging]) for a in (magnitudes, m)]
            scale[rows[swinging]] = _running_dot(*final) / (_running_dot(final[1], final[1]) + EPS)
            moved &= ~swinging
        if swinging.any() or np.count_nonzero(moved) * 2 <= moved.size:
            result[rows[~moved]] = m[:, ~moved].T
            keep = [np.ascontiguousarray(a[:, moved]) for a in (magnitudes, m, below, above)]
            rows, (magnitudes, m, below, above), previous = rows[moved], keep, None
    result[rows] = m.T
    return np.copysign(result, weights).astype(np.int8), scale


def _undoing(crossed: np.ndarray, new: np.ndarray, previous, rows: int) -> np.ndarray:
    """Per row of the working set: whether this round's changes undo exactly the last round's
    (the same values change, back to what they were). The rounds are deterministic, so such a
    row's m swings between two states until the 1000th round."""
    undoing = np.zeros(rows, bool)
    if previous is None:
        return undoing
    indices, values = previous
    at = np.minimum(np.searchsorted(indices, crossed), len(indices) - 1)
    back = (indices[at] == crossed) & (values[at] == new)
    counts = np.bincount(crossed % rows, minlength=rows)
    undoing[(counts > 0) & (counts == np.bincount(indices % rows, minlength=rows))] = True
    undoing[crossed[~back] % rows] = False
    return undoing


METHOD = WeightMethod("ADMM", quantize, "symmetric, scale refined by alternating rounding and least squares",
                      reports_progress=True)
