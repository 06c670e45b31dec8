"""ACIQ (-b 4 Gaussian, -b 5 Laplace): analytical clipping for a bell-shaped distribution.

From "ACIQ: Analytical Clipping for Integer Quantization" as TNN applies it: the optimal
8-bit clip is 3.92403714 sigma for a Gaussian, with sigma estimated from the largest |x|
and the element count N as absmax * 2 * 0.175 (1 + sqrt(pi ln 4)) / sqrt(2 ln N); and
9.89675982 b for a Laplace distribution, b estimated by the mean |x|. scale = clip / 127.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

GAUSS_ALPHA_8BIT = np.float32(3.92403714)
LAPLACE_ALPHA_8BIT = np.float32(9.89675982)
GAUSS_CONST = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))


def gauss_scales(stats) -> Tuple[np.ndarray, np.ndarray]:
    """N is the element count of a channel per sample (of the whole sample when per-tensor)."""
    count = stats.elements_per_channel * (stats.channels if stats.range.per_tensor else 1)
    sigma = stats.range.absmax.astype(np.float64) * 2 * GAUSS_CONST / math.sqrt(2 * math.log(max(count, 2)))
    clip = (np.float64(GAUSS_ALPHA_8BIT) * sigma).astype(np.float32)
    return (clip / np.float32(127)).astype(np.float32), np.zeros(clip.size, np.int8)


def laplace_scales(stats) -> Tuple[np.ndarray, np.ndarray]:
    clip = (LAPLACE_ALPHA_8BIT * stats.range.mean_abs).astype(np.float32)
    return (clip / np.float32(127)).astype(np.float32), np.zeros(clip.size, np.int8)
