"""ACIQ (-b 4 Gaussian, -b 5 Laplace): analytical clipping for a bell-shaped distribution.

From "ACIQ: Analytical Clipping for Integer Quantization" (Banner et al.) as TNN applies it:
the optimal clip is alpha(bits) sigma for a Gaussian, with sigma estimated from the largest
|x| and the element count N as absmax * 2 * 0.175 (1 + sqrt(pi ln 4)) / sqrt(2 ln N); and
alpha(bits) b for a Laplace distribution, b estimated by the mean |x|. scale = clip / qmax.
The 8-bit alphas are TNN's constants; the others are the paper's table.
"""
from __future__ import annotations

import math

import numpy as np

from ..config import qmax
from ..statistics import MEAN_ABS
from . import BlobMethod, BlobStats, Scales

GAUSS_ALPHA = {2: 1.71, 3: 2.15, 4: 2.55, 5: 2.94, 6: 3.29, 7: 3.61, 8: 3.92403714}
LAPLACE_ALPHA = {2: 2.83, 3: 3.89, 4: 5.03, 5: 6.2, 6: 7.41, 7: 8.64, 8: 9.89675982}
GAUSS_CONST = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))


def _symmetric(clip: np.ndarray, bits: int) -> Scales:
    return (clip / np.float32(qmax(bits))).astype(np.float32), np.zeros(clip.size, np.int8)


def gauss_scales(stats: BlobStats) -> Scales:
    """N is the element count of a channel per sample (of the whole sample when per-tensor)."""
    count = stats.elements_per_channel * (stats.channels if stats.range.per_tensor else 1)
    sigma = stats.range.absmax.astype(np.float64) * 2 * GAUSS_CONST / math.sqrt(2 * math.log(max(count, 2)))
    alpha = np.float32(GAUSS_ALPHA[stats.config.bits])
    return _symmetric((np.float64(alpha) * sigma).astype(np.float32), stats.config.bits)


def laplace_scales(stats: BlobStats) -> Scales:
    alpha = np.float32(LAPLACE_ALPHA[stats.config.bits])
    return _symmetric((alpha * stats.mean_abs.value).astype(np.float32), stats.config.bits)


GAUSS = BlobMethod("ACIQ_GAUS", gauss_scales, "symmetric, analytical clip assuming a Gaussian")
LAPLACE = BlobMethod("ACIQ_LAPLACE", laplace_scales,
                     "symmetric, analytical clip assuming a Laplace distribution", needs=(MEAN_ABS,))
