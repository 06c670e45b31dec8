"""What int8 changes in a model's outputs, measured the way the output is used.

Cosine and SQNR say how far an output moved; a user asks whether the answer changed. Each
output gets the measure its shape suggests (decided on the first batch):
  * class scores, (n, classes) or (n, classes, 1, 1): top-1 agreement with float;
  * sequences of class probabilities, (n, steps, classes) summing to 1 over the classes (a
    CTC text recogniser): the share of steps whose top-1 class agrees;
  * score maps, (n, c, h, w) with values in [0, 1] (a segmentation or text-detection map):
    the IoU of the masks thresholded at MASK_THRESHOLD;
  * box heads, (n, channels, anchors) or (n, anchors, channels) with many more anchors than
    channels (YOLO-style): the share of the float model's top-k anchors (by their best class
    score, the channels after the first four box values) that int8 also puts in its top k.
Anything else has only cosine and SQNR. Every measure streams over batches.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import numpy as np

MASK_THRESHOLD = 0.5
TOP_K = 100
BOX_VALUES = 4  # x, y, w, h (or distances) before the class scores


class OutputMeasure:
    name = ""
    counts: Tuple[str, ...] = ()  # the integer sums it keeps: merged by adding them

    def merge(self, other: "OutputMeasure") -> "OutputMeasure":
        """The measure over two shards of the data."""
        out = copy.copy(self)
        for name in self.counts:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def add(self, expected: np.ndarray, got: np.ndarray) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError


class ClassAgreement(OutputMeasure):
    name = "top-1 agreement"
    counts = ("agree", "samples")

    def __init__(self):
        self.agree = self.samples = 0

    def add(self, expected, got):
        self.agree += int(np.sum(expected.reshape(len(expected), -1).argmax(1) == got.reshape(len(got), -1).argmax(1)))
        self.samples += len(expected)

    @property
    def rate(self) -> float:
        return self.agree / max(self.samples, 1)

    def summary(self) -> str:
        return f"top-1 agreement of int8 with float: {self.agree}/{self.samples} ({100 * self.rate:.1f}%)"


class StepAgreement(OutputMeasure):
    name = "per-step top-1 agreement"
    counts = ("agree", "steps")

    def __init__(self):
        self.agree = self.steps = 0

    def add(self, expected, got):
        self.agree += int(np.sum(expected.argmax(-1) == got.argmax(-1)))
        self.steps += expected[..., 0].size

    def summary(self) -> str:
        return f"per-step top-1 agreement of int8 with float: {100 * self.agree / max(self.steps, 1):.1f}%"


class MaskIoU(OutputMeasure):
    name = "mask IoU"
    counts = ("intersection", "union")

    def __init__(self):
        self.intersection = self.union = 0

    def add(self, expected, got):
        a, b = expected > MASK_THRESHOLD, got > MASK_THRESHOLD
        self.intersection += int(np.count_nonzero(a & b))
        self.union += int(np.count_nonzero(a | b))

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0

    def summary(self) -> str:
        return f"IoU of the masks (> {MASK_THRESHOLD}): {self.iou:.4f}"


class TopKAnchors(OutputMeasure):
    name = "top-k anchors kept"
    counts = ("kept", "samples")

    def __init__(self, channels_last: bool, anchors: int):
        self.channels_last, self.k = channels_last, min(TOP_K, max(anchors // 10, 1))
        self.kept = self.samples = 0

    def _top(self, value: np.ndarray) -> np.ndarray:
        boxes = value if self.channels_last else np.swapaxes(value, 1, 2)  # (n, anchors, channels)
        scores = boxes[:, :, BOX_VALUES:].max(axis=2)
        return np.argsort(-scores, axis=1, kind="stable")[:, :self.k]

    def add(self, expected, got):
        for f, q in zip(self._top(expected), self._top(got)):
            self.kept += len(np.intersect1d(f, q))
            self.samples += 1

    @property
    def share(self) -> float:
        return self.kept / max(self.samples * self.k, 1)

    def summary(self) -> str:
        return f"share of the float top-{self.k} anchors int8 keeps: {100 * self.share:.1f}%"


def measure_for(value: np.ndarray) -> Optional[OutputMeasure]:
    """The measure an output of this shape and range calls for, or None."""
    if value.ndim < 2:
        return None
    if (value.ndim == 2 or all(d == 1 for d in value.shape[2:])) and value.reshape(len(value), -1).shape[1] >= 2:
        return ClassAgreement()
    if value.ndim == 4 and value.shape[2] * value.shape[3] > 1 and value.min() >= 0 and value.max() <= 1:
        return MaskIoU()
    if value.ndim == 3 and value.min() >= 0 and np.allclose(value.sum(axis=-1), 1, atol=1e-3):
        return StepAgreement()
    if value.ndim == 3:
        channels, anchors = sorted(value.shape[1:])
        if anchors >= 8 * channels and channels > BOX_VALUES:
            return TopKAnchors(value.shape[2] == channels, anchors)
    return None
