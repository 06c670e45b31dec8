"""Rounding optimisation (AdaRound, Nagel et al. 2020, as AIMET ships it), in numpy.

Rounding every weight to its nearest grid point is not what minimises a layer's output
error: errors of neighbouring weights can cancel. AdaRound learns, per weight, whether to
round down or up. For a layer y = W x its loss is E||(W - W_q) x||^2 = sum_rows d H d^T with
d = W - W_q and H = E[x x^T] the second moment of the layer's input columns (per group), so
one data pass collects H (a mergeable statistic) and the optimisation needs no more data.

TNN stores a convolution's weights multiplied by its input blob's scale before rounding them
(quantize.py), so the grid is that of the stored codes: t = W * s_in / w_scale per weight,
codes floor(t) + h with h in {0, 1}; H is taken in the same units. The soft rounding
h = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1) starts at frac(t) and is trained by Adam on
the relative loss plus lambda * sum(1 - |2h - 1|^beta), beta annealed from 20 to 2 after a
warm-up, which drives every h to 0 or 1. A layer keeps round-to-nearest where the learned
rounding does not lower its loss. Layers with more than MAX_INPUTS inputs per group keep
round-to-nearest (H would not fit in memory).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Tuple

import numpy as np

from kernels.ops.conv import input_patches
from kernels.threads import WORKERS, single_threaded_blas
from tnnformat import Layer, RawBuffer

from .config import qmax
from .events import Notice, Progress, TaskDone
from .pipeline import QUANTIZE, Pass, QuantState
from .quantize import column_input_scale
from .shards import in_order
from .statistics import StatKey, Statistic

INPUT_MOMENT = "input_moment"
MAX_INPUTS = 4608
#: Rows of a layer optimised as one task: layers are cut into such chunks (rows are independent
#: problems), which the cores share, each with one BLAS thread (the same bits as one call).
ROWS_PER_TASK = 128
ZETA, GAMMA = 1.1, -0.1


def layer_geometry(layer: Layer, weights_size: int) -> Tuple[int, int, int]:
    """(output channels, groups, inputs per group, i.e. the length of a filter row)."""
    if layer.type == "InnerProduct":
        out = layer.params["num_output"]
        return out, 1, weights_size // out
    p = layer.params
    out, group = p["output_channel"], max(p["group"], 1)
    return out, group, weights_size // out


class InputMoment:
    """Sum over samples and positions of x x^T for each group's filter-row inputs (float64),
    and the number of columns summed."""

    kind = INPUT_MOMENT

    def __init__(self, layer: Layer, groups: int, row: int):
        self.layer, self.groups, self.row = layer, groups, row
        self.sum = np.zeros((groups, row, row), np.float64)
        self.count = 0

    def observe(self, x: np.ndarray) -> None:
        if self.layer.type == "InnerProduct":
            cols = x.reshape(len(x), -1).T[None]
        else:
            kernel = self.layer.params["kernel_h"] * self.layer.params["kernel_w"]
            cols = input_patches(x.astype(np.float32), self.layer, self.row // kernel)
        cols = cols.astype(np.float64)
        self.sum += np.matmul(cols, cols.transpose(0, 2, 1))
        self.count += cols.shape[2]

    def merge(self, other: "InputMoment") -> "InputMoment":
        out = InputMoment(self.layer, self.groups, self.row)
        out.sum, out.count = self.sum + other.sum, self.count + other.count
        return out

    @property
    def mean(self) -> np.ndarray:
        return self.sum / max(self.count, 1)


def _soft(v: np.ndarray, h: np.ndarray, dh: np.ndarray, scratch: Tuple[np.ndarray, ...]) -> None:
    """h(V) and dh/dV written into h and dh; `scratch`: two float and two bool arrays of v's
    shape (every step runs in place: no new array per operation)."""
    sig, temp, inside, below = scratch
    np.negative(v, out=temp)
    np.exp(temp, out=temp)
    temp += 1
    np.divide(1, temp, out=sig)  # sigmoid(v)
    np.multiply(sig, ZETA - GAMMA, out=temp)
    temp += GAMMA  # the stretched sigmoid, h before its clip
    np.greater(temp, 0, out=inside)
    np.less(temp, 1, out=below)
    inside &= below
    np.clip(temp, 0, 1, out=h)
    np.subtract(1, sig, out=dh)
    dh *= sig
    dh *= ZETA - GAMMA
    dh *= inside  # 0 where the clip holds h at 0 or 1


def _loss(d: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Per row: d H d^T, for d of shape (groups, rows, n)."""
    return np.einsum("grn,grn->gr", np.matmul(d, moment), d)


def adaround(target: np.ndarray, moment: np.ndarray, low: int, high: int, iterations: int = 500,
             reg: float = 0.01, lr: float = 0.01, warmup: float = 0.2) -> np.ndarray:
    """Integer codes for real-valued codes `target` (groups, rows, n) under the input moment
    (groups, n, n): per row the better of learned rounding and round-to-nearest, on the grid
    [low, high]."""
    floor = np.floor(target)
    nearest = np.clip(np.round(target), low, high)
    rtn = np.maximum(_loss(nearest - target, moment), 1e-30)
    frac = np.clip((target - floor - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    v = np.log(frac / (1 - frac))
    m, s = np.zeros_like(v), np.zeros_like(v)
    weight = 1 / rtn[:, :, None]  # each row's loss relative to its round-to-nearest loss
    start = int(warmup * iterations)
    # plain Adam, each step in place into buffers made once
    h, dh, d, grad, term, temp = (np.empty_like(v) for _ in range(6))
    scratch = (np.empty_like(v), np.empty_like(v), np.empty(v.shape, bool), np.empty(v.shape, bool))
    for step in range(1, iterations + 1):
        _soft(v, h, dh, scratch)
        np.add(floor, h, out=d)
        d -= target
        np.matmul(d, moment, out=grad)
        grad *= 2
        grad *= weight
        if step > start:  # the rounding regulariser's gradient
            beta = 20 + (2 - 20) * (step - start) / max(iterations - start, 1)
            np.multiply(h, 2, out=temp)
            temp -= 1
            np.abs(temp, out=term)
            np.power(term, beta - 1, out=term)
            term *= reg * beta
            np.sign(temp, out=temp)
            term *= temp
            term *= 2
            grad -= term
        grad *= dh
        m *= 0.9
        np.multiply(grad, 0.1, out=temp)
        m += temp
        s *= 0.999
        np.multiply(grad, 0.001, out=temp)
        temp *= grad
        s += temp
        np.divide(m, 1 - 0.9 ** step, out=term)
        term *= lr
        np.divide(s, 1 - 0.999 ** step, out=temp)
        np.sqrt(temp, out=temp)
        temp += 1e-8
        term /= temp
        v -= term
    _soft(v, h, dh, scratch)
    learned = np.clip(floor + (h >= 0.5), low, high)
    better = _loss(learned - target, moment) < _loss(nearest - target, moment)
    return np.where(better[:, :, None], learned, nearest)


@dataclass
class _Problem:
    """One layer's rounding problem: its codes (round-to-nearest, as quantize.py wrote them),
    their real-valued targets (groups, rows per group, inputs), the input moment, the grid, and
    the learned codes as the row chunks come in (rows are independent problems)."""

    layer: str
    buffer: str  # the resource field of the weights
    codes: np.ndarray
    target: np.ndarray
    moment: np.ndarray
    low: int
    high: int
    learned: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.learned = np.empty_like(self.target)

    def write(self, state: QuantState) -> None:
        out, row = self.codes.shape
        nearest = np.clip(np.round(self.target), self.low, self.high).reshape(out, row)
        kept = np.any(nearest != self.codes, axis=1)  # rows quantize.py zeroed (dead channels) stay as they are
        result = np.where(kept[:, None], self.codes, self.learned.reshape(out, row))
        int8 = dict(state.net.resources[self.layer])
        int8[self.buffer] = RawBuffer.from_array(result.astype(np.int8).reshape(-1), dims=())
        state.net.resources[self.layer] = int8


class RoundingOptimisation(Pass):
    """After the int8 model is written: each weighted layer's codes re-rounded by AdaRound on
    its input moment (one data pass, float inputs)."""

    name = "rounding optimisation"
    stage = QUANTIZE

    def __init__(self, iterations: int = 500):
        self.iterations = iterations

    def _layers(self, state: QuantState) -> List[Tuple[Layer, int, int, int]]:
        found = []
        for layer in state.plan.net.layers:
            if layer.name not in state.plan.layers:
                continue
            buffer = "filter" if layer.type == "Convolution" else "weight"
            out, groups, row = layer_geometry(layer, state.float_net.resources[layer.name][buffer].numpy().size)
            if row <= MAX_INPUTS:
                found.append((layer, out, groups, row))
        return found

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        return {StatKey(layer.inputs[0], INPUT_MOMENT, False, layer.name): InputMoment(layer, groups, row)
                for layer, _, groups, row in self._layers(state)}

    def apply(self, state: QuantState) -> None:
        layers = self._layers(state)
        skipped = [name for name in state.plan.layers if name not in {layer.name for layer, *_ in layers}]
        if skipped:
            state.emit(Notice(f"rounding optimisation: {', '.join(skipped)} keep round-to-nearest "
                              f"(more than {MAX_INPUTS} inputs per output)"))
        task = "rounding optimisation"
        total = sum(-(-(out // groups) // ROWS_PER_TASK) for _, out, groups, _ in layers)

        def tasks() -> Iterator[Tuple[_Problem, int]]:  # a layer's problem is made when its turn comes
            for found in layers:
                problem = self._problem(state, *found)
                for first in range(0, problem.target.shape[1], ROWS_PER_TASK):
                    yield problem, first

        def solve(item: Tuple[_Problem, int]) -> np.ndarray:
            problem, first = item
            return adaround(problem.target[:, first:first + ROWS_PER_TASK], problem.moment, problem.low,
                            problem.high, self.iterations)

        with single_threaded_blas(), ThreadPoolExecutor(WORKERS) as pool:
            solved = in_order(lambda item: (item, pool.submit(solve, item)), lambda sent: (sent[0], sent[1].result()),
                              tasks(), 2 * WORKERS)  # a few layers' problems in memory at a time
            for done, ((problem, first), rows) in enumerate(solved, 1):
                problem.learned[:, first:first + ROWS_PER_TASK] = rows
                if first + ROWS_PER_TASK >= problem.target.shape[1]:
                    problem.write(state)
                state.emit(Progress(task, done, total))
        state.emit(TaskDone(task))

    def _problem(self, state: QuantState, layer: Layer, out: int, groups: int, row: int) -> "_Problem":
        buffer = "filter" if layer.type == "Convolution" else "weight"
        config = state.plan.layers[layer.name]
        int8 = state.net.resources[layer.name]
        codes = int8[buffer].numpy().reshape(out, row).astype(np.float64)
        zero = np.broadcast_to(int8["zero_point"].numpy().reshape(-1), (out,)).astype(np.float64)[:, None]
        scale = np.broadcast_to(int8["scale"].numpy(np.float32).reshape(-1), (out,)).astype(np.float64)[:, None]
        weights = state.float_net.resources[layer.name][buffer].numpy(np.float32).reshape(out, row).astype(np.float64)
        s_in = state.scales[state.plan.scale_source[layer.inputs[0]]].scale
        per_group = out // groups
        column_scale = column_input_scale(layer, s_in, out, row).reshape(groups, per_group, row)[:, 0]
        target = weights.reshape(groups, per_group, row) * column_scale[:, None, :] \
            / np.where(scale > 0, scale, 1).reshape(groups, per_group, 1) + zero.reshape(groups, per_group, 1)
        # the moment of the inputs in code units: x / s_in per column
        moment = state.statistics[StatKey(layer.inputs[0], INPUT_MOMENT, False, layer.name)].mean
        moment = moment / (column_scale[:, :, None] * column_scale[:, None, :])
        symmetric = not np.any(zero)
        low, high = (-qmax(config.bits), qmax(config.bits)) if symmetric else (-2 ** (config.bits - 1), 2 ** (config.bits - 1) - 1)
        return _Problem(layer.name, buffer, codes, target, moment, low, high)
