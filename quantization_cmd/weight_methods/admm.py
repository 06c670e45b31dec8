"""ADMM weights (-w 1): alternate rounding with the least-squares scale for those values.

Start from scale = max |w| / (qmax * 1.25); then repeat q = clip(round(w / scale), +-qmax)
and scale = <w, q> / <q, q>, 1000 times. Once a row's q stops changing, its scale stops too,
so each row leaves the loop at its own fixed point with the same result; a row whose q starts
to cycle through a few states leaves with the one the 1000th round has (see _RecentRounds). The dot
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
from typing import Optional

import numpy as np

from kernels.rounding import rounded

from ..config import qmax
from ..shards import side_by_side
from . import LayerProgress, WeightMethod

MAX_ITERATIONS = 1000
#: The longest cycle of states looked for.
MAX_PERIOD = 8
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
    recent = _RecentRounds()
    for iteration in range(MAX_ITERATIONS):
        scale[rows] = _scales(magnitudes, m)
        if iteration == MAX_ITERATIONS - 1:
            break
        period = recent.returned(scale[rows])
        if period.any():  # these rows repeat their last states: they leave with the last round's
            recent.restore(m, period, MAX_ITERATIONS - 1 - iteration)
            leaving = period > 0
            final = _columns((magnitudes, m), leaving)
            scale[rows[leaving]] = _scales(*final)
            result[rows[leaving]] = final[1].T
            rows, (magnitudes, m, below, above) = rows[~leaving], _columns((magnitudes, m, below, above), ~leaving)
            recent = _RecentRounds(scale[rows])
        x = magnitudes / (scale[rows] + EPS)
        crossed = np.flatnonzero((x < below) | (x >= above))
        if crossed.size == 0:
            break
        before, new = m.reshape(-1)[crossed], rounded(np.minimum(x.reshape(-1)[crossed], top))
        for array, values in zip((m, below, above), (new, *_limits(new, top))):
            array.reshape(-1)[crossed] = values
        moved = np.zeros(len(rows), bool)
        moved[crossed % len(rows)] = True
        recent.changed(crossed, before, new, moved, m.size)
        if np.count_nonzero(moved) * 2 <= moved.size:
            result[rows[~moved]] = m[:, ~moved].T
            rows, (magnitudes, m, below, above) = rows[moved], _columns((magnitudes, m, below, above), moved)
            recent = _RecentRounds()
    result[rows] = m.T
    return np.copysign(result, weights).astype(np.int8), scale


def _scales(magnitudes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """TNN's least-squares scale per row, sum(|w| m) / (sum(m m) + EPS), with its in-order sums."""
    return _running_dot(magnitudes, m) / (_running_dot(m, m) + EPS)


def _columns(arrays, keep: np.ndarray) -> list:
    return [np.ascontiguousarray(a[:, keep]) for a in arrays]


class _RecentRounds:
    """The working set's last MAX_PERIOD rounds: each row's scale, and the changes to m while
    they are few (cycles come late, when a few values move). A row whose m comes back to an
    earlier state repeats the states between, round after round (the rounds are deterministic:
    AlexNet's fully connected layers per tensor swing with periods 2 and 3 from rounds 20 and
    144 on), so its state after the last round is known. Kept from the last compaction on, as
    indices into the working set."""

    def __init__(self, *scales: np.ndarray):
        self.scales = [s.copy() for s in scales]  # scales[i] is the scale of the state changes[i] starts from
        self.changes = []  # (indices, values before, values after), or None where too many to keep
        self.moved: Optional[np.ndarray] = None  # the rows the last round moved

    def changed(self, indices: np.ndarray, before: np.ndarray, after: np.ndarray, moved: np.ndarray,
                values: int) -> None:
        """This round's changes to m (flat indices into its `values`), and the rows they moved."""
        few = indices.size <= max(values // 64, 1024)
        self.changes = self.changes[-MAX_PERIOD:] + [(indices, before, after) if few else None]
        self.moved = moved

    def returned(self, scale: np.ndarray) -> np.ndarray:
        """Per row, the period p >= 2 at which the state of `scale` equals the one p rounds ago
        (0: none): the row moved in the last round (a row in a cycle moves every round, else
        it would be at a fixed point), the scales are equal, and over those p rounds every
        changed value came back."""
        period = np.zeros(scale.size, np.int64)
        for p in range(2, min(MAX_PERIOD, len(self.scales)) + 1):
            if any(change is None for change in self.changes[-p:]):
                break
            candidates = (scale == self.scales[-p]) & self.moved & (period == 0)
            if candidates.any():
                period[self._back(candidates, p)] = p
        self.scales = self.scales[-MAX_PERIOD:] + [scale.copy()]
        return period

    def _back(self, rows: np.ndarray, p: int) -> np.ndarray:
        """Those of `rows` (all moved in the last round) whose values changed in the last p
        rounds all ended where they began."""
        indices, before, after = (np.concatenate(column) for column in zip(*self.changes[-p:]))
        mine = rows[indices % rows.size]
        indices, before, after = indices[mine], before[mine], after[mine]
        order = np.argsort(indices, kind="stable")  # each value's changes in round order
        indices, before, after = indices[order], before[order], after[order]
        new_value = np.flatnonzero(np.diff(indices, prepend=-1))
        last = np.append(new_value[1:] - 1, indices.size - 1)
        back = rows.copy()
        back[indices[new_value][before[new_value] != after[last]] % rows.size] = False
        return back

    def restore(self, m: np.ndarray, period: np.ndarray, remaining: int) -> None:
        """Set the returned rows of m to the state they will have `remaining` rounds on: for
        period p, the state (p - remaining % p) % p rounds back."""
        for p in np.unique(period[period > 0]):
            for indices, before, _ in reversed(self.changes[len(self.changes) - (p - remaining % p) % p:]):
                mine = (period == p)[indices % period.size]
                m.reshape(-1)[indices[mine]] = before[mine]


METHOD = WeightMethod("ADMM", quantize, "symmetric, scale refined by alternating rounding and least squares",
                      reports_progress=True)
