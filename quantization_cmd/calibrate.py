"""Run the float model over the calibration inputs and turn what it saw into blob scales.

Two passes, as in TNN: the first collects each observed blob's range (and mean |x|), the
second, only when a method needs it, a 2048-bin histogram over [0, absmax] from the first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Tuple

import numpy as np

from kernels import Interpreter

from .blob_methods import BLOB_METHODS, BlobStats
from .observers import HistogramObserver, RangeObserver
from .plan import Plan

#: Called once per pass with its name; returns the batches of that pass.
BatchSource = Callable[[str], Iterable[Dict[str, np.ndarray]]]


@dataclass
class BlobScale:
    """Per-channel (or single) int8 scale and zero point of a blob; `empty` counts the
    channels that were zero on every input and got a stand-in scale."""

    scale: np.ndarray
    zero_point: np.ndarray
    empty: int = 0


def _observe(plan: Plan, batches: Iterable[Dict[str, np.ndarray]],
             observe: Dict[str, Callable[[np.ndarray], None]]) -> None:
    interpreter = Interpreter(plan.net)

    def hook(layer, blob: str, value: np.ndarray) -> None:
        if blob in observe:
            observe[blob](value)

    for batch in batches:
        interpreter.forward(batch, hook=hook)


def collect_statistics(plan: Plan, shapes: Dict[str, tuple], batches: BatchSource,
                       all_histograms: bool = False) -> Dict[str, BlobStats]:
    """Statistics of every blob the plan observes, over every batch of both passes
    (histograms for the blobs whose method needs them, or for all with `all_histograms`)."""
    stats: Dict[str, BlobStats] = {}
    for blob in plan.observed:
        method = BLOB_METHODS[plan.methods[blob]]
        shape = tuple(shapes[blob][1:])
        channels = shape[0] if shape else 1
        observer = RangeObserver(channels, blob in plan.per_tensor, method.needs_mean_abs)
        stats[blob] = BlobStats(blob, shape, plan.methods[blob], observer)
    _observe(plan, batches("calibration pass: range"), {blob: s.range.observe for blob, s in stats.items()})

    need_histogram = {blob: s for blob, s in stats.items()
                      if all_histograms or BLOB_METHODS[s.method].needs_histogram}
    if need_histogram:
        for s in need_histogram.values():
            s.histogram = HistogramObserver(s.range.absmax, s.range.valid)
        _observe(plan, batches("calibration pass: histogram"), {blob: s.histogram.observe for blob, s in need_histogram.items()})
    return stats


def _stand_in(scale: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scales for channels that never saw data: the smallest real scale of the blob (it keeps
    weights multiplied by it small), or 1 when the whole blob was zero. TNN writes 0 here,
    which its int8 kernels then divide by."""
    usable = scale[valid & (scale > 0)]
    fill = np.float32(usable.min()) if usable.size else np.float32(1.0)
    return np.where(valid & (scale > 0), scale, fill).astype(np.float32)


def compute_scales(stats: Dict[str, BlobStats], done: Callable[[int], None] = lambda n: None
                   ) -> Dict[str, BlobScale]:
    """The scale of every observed blob; `done(1)` is called after each (for progress)."""
    result = {}
    for blob, s in stats.items():
        scale, zero_point = BLOB_METHODS[s.method].scales(s)
        valid = s.range.valid
        empty = int(np.count_nonzero(~(valid & (scale > 0))))
        result[blob] = BlobScale(_stand_in(scale, valid), np.where(valid, zero_point, 0).astype(np.int8), empty)
        done(1)
    return result


def empty_blob_warnings(scales: Dict[str, BlobScale]) -> List[Tuple[str, int, int]]:
    """(blob, empty channels, channels) for every blob with channels that never saw data."""
    return [(blob, s.empty, s.scale.size) for blob, s in scales.items() if s.empty]
