"""Calibration inputs: which files a folder offers and how each becomes an NCHW float batch.

Mirrors TNN's tools/common/file_reader.cc: images are decoded with the model's channel count,
resized to the input's H x W when they differ, optionally reversed to BGR, then
`(x - bias[c]) * scale[c]` per channel of the model. `.txt` files hold raw NCHW floats (no
preprocessing, as in TNN). Unlike TNN we also read `.npy` (TNN lists but cannot read them),
accept 16-bit and palette images explicitly, reject short or non-numeric text files
instead of leaving stale values in the input, and read `.npz` files holding one array per
input name (models with several inputs; TNN's tool fills only the first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SUFFIXES = IMAGE_SUFFIXES + (".txt", ".npy", ".npz")


class InputFileError(ValueError):
    """A calibration file that cannot be used; the caller warns and skips it, as TNN does."""


@dataclass(frozen=True)
class Preprocess:
    """How image pixels become model input: y = (x - bias[c]) * scale[c], after the optional
    R/B swap; `bias` and `scale` are in the model's channel order."""

    reverse_channel: bool = False
    bias: Tuple[float, ...] = field(default_factory=tuple)
    scale: Tuple[float, ...] = field(default_factory=tuple)


def list_input_files(folder: Path) -> List[Path]:
    """Regular files with a supported suffix (any letter case), in a stable (sorted) order."""
    files = [entry for entry in sorted(Path(folder).iterdir(), key=lambda p: p.name)
             if entry.suffix.lower() in SUFFIXES and entry.is_file()]
    return files


def _image_pixels(path: Path, channels: int) -> np.ndarray:
    """HWC uint8 pixels with `channels` channels, whatever the file stores."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit gray: keep the top 8 bits
                wide = np.asarray(img, dtype=np.uint32 if img.mode == "I" else np.uint16)
                shift = 24 if img.mode == "I" else 8
                img = Image.fromarray((wide >> shift).astype(np.uint8), mode="L")
            elif img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            target = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels)
            if target is None:
                raise InputFileError(f"the model takes {channels} channels; images have 1 to 4")
            return np.asarray(img.convert(target), dtype=np.uint8).reshape(img.height, img.width, channels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"not a readable image ({exc.__class__.__name__}: {exc})") from None


def _resized(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if pixels.shape[:2] == (height, width):
        return pixels
    channels = pixels.shape[2]
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=modes[channels])
    out = np.asarray(img.resize((width, height), Image.BICUBIC), dtype=np.uint8)
    return out.reshape(height, width, channels)


def read_image(path: Path, shape: Sequence[int], prep: Preprocess) -> np.ndarray:
    """One image as a (1, C, H, W) float32 batch."""
    _, channels, height, width = shape
    pixels = _resized(_image_pixels(path, channels), height, width).astype(np.float32)
    if prep.reverse_channel and channels in (3, 4):
        pixels = pixels[..., [2, 1, 0, 3][:channels]]
    bias = np.asarray(prep.bias or (0.0,) * channels, np.float32)
    scale = np.asarray(prep.scale or (1.0,) * channels, np.float32)
    return ((pixels - bias) * scale).transpose(2, 0, 1)[None].copy()


def _samples(values: np.ndarray, shape: Sequence[int], what: str) -> np.ndarray:
    sample = int(np.prod(shape[1:]))
    if values.size == 0 or values.size % sample:
        raise InputFileError(f"{what} holds {values.size} values; the input {tuple(shape)} needs a "
                             f"multiple of {sample}")
    if not np.all(np.isfinite(values)):
        raise InputFileError(f"{what} contains NaN or infinite values")
    return values.astype(np.float32, copy=False).reshape((-1,) + tuple(shape[1:]))


def read_text(path: Path, shape: Sequence[int]) -> np.ndarray:
    """NCHW floats separated by white space (TNN writes one per line)."""
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError:
        raise InputFileError("not a text file of numbers") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read it ({exc})") from None
    return _samples(values, shape, "the file")


def _checked_array(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """An array of the input's shape, or of its shape without (or with another) batch."""
    if not isinstance(array, np.ndarray):
        raise InputFileError("holds an archive of arrays (.npz), not one array")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InputFileError(f"holds {array.dtype} data, not real numbers")
    if tuple(array.shape[-len(shape) + 1:]) != tuple(shape[1:]) or array.ndim not in (len(shape) - 1, len(shape)):
        raise InputFileError(f"has shape {array.shape}; the input needs {tuple(shape)} (any batch)")
    return _samples(array, shape, "the array")


def read_npy(path: Path, shape: Sequence[int]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"not a readable .npy file ({exc})") from None
    return _checked_array(array, shape)


def read_npz(path: Path, inputs: Mapping[str, Sequence[int]]) -> Dict[str, np.ndarray]:
    """One array per model input, by input name, all with the same number of samples."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise InputFileError("not a .npz archive of arrays")
            missing = [name for name in inputs if name not in archive.files]
            if missing:
                raise InputFileError(f"has no array for input '{missing[0]}' (it holds "
                                     f"{', '.join(archive.files) or 'nothing'})")
            arrays = {}
            for name, shape in inputs.items():
                try:
                    arrays[name] = _checked_array(archive[name], shape)
                except InputFileError as exc:
                    raise InputFileError(f"input '{name}' {exc}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"not a readable .npz file ({exc})") from None
    counts = {len(a) for a in arrays.values()}
    if len(counts) > 1:
        raise InputFileError(f"its arrays hold different numbers of samples ({sorted(counts)})")
    return arrays


def read_input_file(path: Path, shape: Sequence[int], prep: Preprocess) -> np.ndarray:
    """A (n, C, H, W) float32 batch from one calibration file; InputFileError if unusable."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_text(path, shape)
    if suffix == ".npy":
        return read_npy(path, shape)
    if suffix == ".npz":
        raise InputFileError("a .npz file gives every input at once; read it with read_npz")
    if len(shape) != 4:
        raise InputFileError(f"images need an NCHW input; the model's input is {tuple(shape)}")
    return read_image(path, shape, prep)


