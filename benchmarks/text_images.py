"""Rendered text, the input OCR models expect: pages with text lines (for text detectors) and
single lines, upright or turned by 180 degrees (for the text-direction classifier; label 0
upright, 1 upside down). Pillow's own scalable font, so nothing outside Pillow is needed.

    pages(count, 320, 320, seed) -> (count, 320, 320, 3) uint8
    lines(count, 48, 192, seed) -> ((count, 48, 192, 3) uint8, labels)
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(LETTERS), int(rng.integers(2, 9))))


def _sentence(rng: np.random.Generator, words: int) -> str:
    return " ".join(_word(rng) for _ in range(words))


def _colors(rng: np.random.Generator) -> Tuple[tuple, tuple]:
    light = tuple(int(v) for v in rng.integers(170, 256, 3))
    dark = tuple(int(v) for v in rng.integers(0, 90, 3))
    return (light, dark) if rng.random() < 0.8 else (dark, light)


def _noisy(image, rng: np.random.Generator) -> np.ndarray:
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (image.height, image.width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def pages(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, 3), np.uint8)
    for k in range(count):
        background, ink = _colors(rng)
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        y = int(rng.integers(2, 20))
        while y < height - 20:
            size = int(rng.integers(14, 34))
            font = ImageFont.load_default(size=size)
            draw.text((int(rng.integers(0, width // 4)), y), _sentence(rng, int(rng.integers(1, 5))), fill=ink, font=font)
            y += int(size * rng.uniform(1.3, 2.5))
        out[k] = _noisy(image, rng)
    return out


def lines(count: int, height: int, width: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, 3), np.uint8)
    labels = rng.integers(0, 2, count)
    for k in range(count):
        background, ink = _colors(rng)
        image = Image.new("RGB", (width, height), background)
        font = ImageFont.load_default(size=int(rng.integers(height // 2, height - 6)))
        ImageDraw.Draw(image).text((int(rng.integers(0, 8)), int(rng.integers(0, 5))),
                                   _sentence(rng, int(rng.integers(1, 4))), fill=ink, font=font)
        if labels[k]:
            image = image.rotate(180)
        out[k] = _noisy(image, rng)
    return out, labels
