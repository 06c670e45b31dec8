"""Calibration inputs: which files a folder offers and how each becomes an NCHW float batch
(images through their uint8 pixels, which is what the data passes keep between passes).

Mirrors TNN's tools/common/file_reader.cc: images are decoded with the model's channel count,
resized to the input's H x W when they differ, optionally reversed to BGR, then
`(x - bias[c]) * scale[c]` per channel of the model. `.txt` files hold raw NCHW floats (no
preprocessing, as in TNN). Unlike TNN we also read `.npy` (TNN lists but cannot read them),
accept 16-bit and palette images explicitly, reject short or non-numeric text files
instead of leaving stale values in the input, and read `.npz` files holding one array per
input name (models with several inputs; TNN's tool fills only the first).
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SUFFIXES = IMAGE_SUFFIXES + (".txt", ".npy", ".npz")
#: Images with more pixels are skipped (decompression bombs); see read_pixels' `max_pixels`.
MAX_PIXELS = 50_000_000


class InputFileError(ValueError):
    """A calibration file that cannot be used; the caller warns and skips it, as TNN does."""


@dataclass(frozen=True)
class Preprocess:
    """How image pixels become model input: y = (x - bias[c]) * scale[c], after the optional
    R/B swap; `bias` and `scale` are in the model's channel order."""

    reverse_channel: bool = False
    bias: Tuple[float, ...] = field(default_factory=tuple)
    scale: Tuple[float, ...] = field(default_factory=tuple)


def list_input_files(folder: Path, warn: Optional[Callable[[Path, str], None]] = None) -> List[Path]:
    """Regular files with a supported suffix (any letter case), in a stable (sorted) order;
    entries with such a suffix that are not regular files (folders, FIFOs, devices, broken
    or looping links) are left out, each passed to `warn` with the reason."""
    files = []
    for entry in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if entry.suffix.lower() not in SUFFIXES:
            continue
        reason = _not_regular(entry)
        if reason is None:
            files.append(entry)
        elif warn is not None:
            warn(entry, reason)
    return files


def _not_regular(path: Path) -> Optional[str]:
    """Why `path` (links followed) is not a regular file we can read, or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return "a broken symbolic link" if os.path.islink(path) else f"cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    return "not a regular file: " + next((kind for test, kind in kinds if test(mode)), "a special file")


def _image_pixels(path: Path, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """HWC uint8 pixels with `channels` channels, whatever the file stores; images over
    `max_pixels` are refused from their header, before they are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise InputFileError(f"the image is {img.width} x {img.height} pixels, over the cap of "
                                         f"{max_pixels / 1e6:g} megapixels")
                img.load()
                return _converted(img, channels)
    except Image.DecompressionBombError as exc:
        raise InputFileError(f"refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"not a readable image ({exc.__class__.__name__}: {exc})") from None


def _converted(img, channels: int) -> np.ndarray:
    """A loaded PIL image as HWC uint8 with `channels` channels."""
    from PIL import Image

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


def _resized(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if pixels.shape[:2] == (height, width):
        return pixels
    channels = pixels.shape[2]
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=modes[channels])
    out = np.asarray(img.resize((width, height), Image.BICUBIC), dtype=np.uint8)
    return out.reshape(height, width, channels)


def read_pixels(path: Path, shape: Sequence[int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image resized to the input, as a (1, H, W, C) uint8 batch of pixels: what the data
    passes keep between passes (a quarter of the float input's bytes); `preprocess` makes the
    model input from it."""
    _, channels, height, width = shape
    return _resized(_image_pixels(path, channels, max_pixels), height, width)[None]


def _normalize(values: np.ndarray, prep: Preprocess) -> np.ndarray:
    """values (n, C, ...) float32, in place: (x - bias[c]) * scale[c]."""
    shape = (values.shape[1],) + (1,) * (values.ndim - 2)
    values -= np.broadcast_to(np.asarray(prep.bias or (0.0,), np.float32), shape[:1]).reshape(shape)
    values *= np.broadcast_to(np.asarray(prep.scale or (1.0,), np.float32), shape[:1]).reshape(shape)
    return values


def preprocess(pixels: np.ndarray, prep: Preprocess) -> np.ndarray:
    """(n, H, W, C) uint8 pixels as the (n, C, H, W) float32 model input: y = (x - bias[c]) *
    scale[c] after the optional R/B swap (in model channel order), the pixels cast straight
    into the transposed output."""
    channels = pixels.shape[3]
    planes = pixels.transpose(0, 3, 1, 2)
    if prep.reverse_channel and channels in (3, 4):
        planes = planes[:, [2, 1, 0, 3][:channels]]
    out = np.empty(planes.shape, np.float32)
    np.copyto(out, planes, casting="unsafe")
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are refused by the reader
        return _normalize(out, prep)


def _finite_for_every_pixel(prep: Preprocess, channels: int) -> bool:
    """Whether every pixel value of every channel preprocesses to a finite value."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = _normalize(np.broadcast_to(np.arange(256, dtype=np.float32), (1, channels, 256)).copy(), prep)
    return bool(np.isfinite(values).all())


def _samples(values: np.ndarray, shape: Sequence[int], what: str) -> np.ndarray:
    sample = int(np.prod(shape[1:]))
    if values.size == 0 or values.size % sample:
        raise InputFileError(f"{what} holds {values.size} values; the input {tuple(shape)} needs a "
                             f"multiple of {sample}")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf: refused below
        values = values.astype(np.float32, copy=False)
    _check_finite(values, what)
    return values.reshape((-1,) + tuple(shape[1:]))


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise InputFileError(f"{what} contains NaN or infinite values (as float32)")


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
    _check_shape(array.shape, shape)
    return _samples(array, shape, "the array")


def read_npy(path: Path, shape: Sequence[int]) -> np.ndarray:
    """One array, its header checked against the input's shape and the file's size before
    anything is allocated; pickled objects are never loaded."""
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                raise InputFileError("is a .npz archive under a .npy name")
            f.seek(0)
            _check_header(f, shape, os.fstat(f.fileno()).st_size)
        array = np.load(path, allow_pickle=False)
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"not a readable .npy file ({exc})") from None
    return _checked_array(array, shape)


def _check_header(f: BinaryIO, shape: Sequence[int], file_size: int) -> None:
    """The .npy header at `f` announces an array of the input's shape, of numbers, whose
    data fill the rest of the `file_size` bytes exactly."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_2_0 if version[0] >= 2 else np.lib.format.read_array_header_1_0
    stored, _, dtype = header(f)  # versions 2 and 3 share the layout
    _check_shape(tuple(stored), shape)
    if dtype.hasobject or dtype.itemsize == 0:
        raise InputFileError(f"holds {dtype} data, not real numbers")
    size, left = int(np.prod(stored, dtype=object)) * dtype.itemsize, file_size - f.tell()
    if size != left:
        raise InputFileError(f"its header announces {size} bytes of data, the file holds {left}")


def _check_shape(stored: Tuple[int, ...], shape: Sequence[int]) -> None:
    """An array of the input's shape, or of its shape without (or with another) batch."""
    if tuple(stored[-len(shape) + 1:]) != tuple(shape[1:]) or len(stored) not in (len(shape) - 1, len(shape)):
        raise InputFileError(f"has shape {stored}; the input needs {tuple(shape)} (any batch)")


def read_npz(path: Path, inputs: Mapping[str, Sequence[int]]) -> Dict[str, np.ndarray]:
    """One array per model input, by input name, all with the same number of samples; each
    array's header is checked before it is read, as for .npy files."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"PK":
                raise InputFileError("not a .npz archive (zip) of arrays")
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in inputs if name not in archive.files]
            if missing:
                raise InputFileError(f"has no array for input '{missing[0]}' (it holds "
                                     f"{', '.join(archive.files) or 'nothing'})")
            arrays = {}
            for name, shape in inputs.items():
                member = name + ".npy" if name + ".npy" in archive.zip.namelist() else name
                try:
                    with archive.zip.open(member) as f:
                        _check_header(f, shape, archive.zip.getinfo(member).file_size)
                    arrays[name] = _checked_array(archive[name], shape)
                except InputFileError as exc:
                    raise InputFileError(f"input '{name}' {exc}") from None
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"not a readable .npz file ({exc})") from None
    counts = {len(a) for a in arrays.values()}
    if len(counts) > 1:
        raise InputFileError(f"its arrays hold different numbers of samples ({sorted(counts)})")
    return arrays


def read_decoded(path: Path, shape: Sequence[int], prep: Preprocess) -> np.ndarray:
    """One calibration file as the data passes keep it (`as_model_input` makes the model's input
    from it): an image as its uint8 pixels (read_pixels), checked to preprocess to finite
    values; other files as read_input_file's float32 batch. InputFileError if unusable."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_text(path, shape)
    if suffix == ".npy":
        return read_npy(path, shape)
    if suffix == ".npz":
        raise InputFileError("a .npz file gives every input at once; read it with read_npz")
    if len(shape) != 4:
        raise InputFileError(f"images need an NCHW input; the model's input is {tuple(shape)}")
    pixels = read_pixels(path, shape)
    if not _finite_for_every_pixel(prep, shape[1]):  # else this image's values may not be
        _check_finite(preprocess(pixels, prep), "the preprocessed image")
    return pixels


def as_model_input(decoded: np.ndarray, prep: Preprocess) -> np.ndarray:
    """The model's float32 input from what read_decoded gives (uint8 only for images' pixels;
    a batch of them concatenated is preprocessed at once)."""
    return preprocess(decoded, prep) if decoded.dtype == np.uint8 else decoded


def read_input_file(path: Path, shape: Sequence[int], prep: Preprocess) -> np.ndarray:
    """A (n, C, H, W) float32 batch from one calibration file; InputFileError if unusable."""
    return as_model_input(read_decoded(path, shape, prep), prep)
