"""Hostile calibration inputs: each is skipped with a warning naming it, nothing is allocated
from a number in a file, and the run goes on with the usable files."""
from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantization_cmd.inputs import InputFileError, Preprocess, list_input_files, read_input_file

from test_robust_cli import DATA, PREP, calibration, model_args, quantize

SHAPE = (1, 1, 16, 16)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header announces width x height pixels."""
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def npy_claiming(shape, payload: bytes = b"\0" * 64) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def refused(path: Path, *fragments: str) -> str:
    with pytest.raises(InputFileError) as info:
        read_input_file(path, SHAPE, Preprocess())
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("width, height, fragment", [
    (20000, 20000, "decompression bomb"),   # PIL's own limit (the DecompressionBombError)
    (8000, 8000, "over the cap of 50 megapixels"),  # ours, from the header: nothing decoded
])
def test_huge_images_are_refused_from_their_header(tmp_path, width, height, fragment):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(width, height))
    tracemalloc.start()
    refused(path, fragment)
    assert tracemalloc.get_traced_memory()[1] < 20 * 2**20
    tracemalloc.stop()


def test_an_npy_header_is_checked_before_any_allocation(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_claiming((10**10, 1, 16, 16)))  # 9 TiB announced
    tracemalloc.start()
    refused(path, "announces 10240000000000 bytes")
    assert tracemalloc.get_traced_memory()[1] < 2**20
    tracemalloc.stop()
    path.write_bytes(npy_claiming((3, 2, 16, 16)))
    refused(path, "has shape (3, 2, 16, 16)")


def test_pickles_and_archives_under_an_npy_name_are_refused(tmp_path):
    path = tmp_path / "renamed.npy"
    np.savez(tmp_path / "a.npz", x=np.zeros(SHAPE, np.float32))
    os.replace(tmp_path / "a.npz", path)
    refused(path, ".npz archive under a .npy name")
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    refused(path)


@pytest.mark.parametrize("values", [np.float64(1e300), np.float64(np.nan), np.float64(-np.inf)])
def test_values_that_are_not_finite_as_float32_are_refused(tmp_path, values):
    array = np.ones(SHAPE, np.float64)
    array[0, 0, 3, 3] = values
    np.save(tmp_path / "x.npy", array)
    refused(tmp_path / "x.npy", "NaN or infinite", "float32")
    (tmp_path / "x.txt").write_text("\n".join(str(v) for v in array.reshape(-1)))
    refused(tmp_path / "x.txt", "NaN or infinite")


def odd_entries(folder: Path) -> dict:
    """Entries with input suffixes that are not regular files, and why each is skipped."""
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "fifo.png")
    os.symlink(folder / "missing.png", folder / "broken.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    os.symlink("/dev/zero", folder / "zero.npy")
    return {"folder.png": "a folder", "fifo.png": "a FIFO", "broken.png": "broken symbolic link",
            "loop.png": "symbolic link loop", "zero.npy": "a device"}


def test_non_regular_files_are_listed_apart_with_a_reason(tmp_path):
    expected = odd_entries(tmp_path)
    (tmp_path / "good.png").write_bytes(png_claiming(4, 4))
    warned = {}
    listed = list_input_files(tmp_path, lambda path, reason: warned.update({path.name: reason}))
    assert listed == [tmp_path / "good.png"]
    assert sorted(warned) == sorted(expected)
    for name, reason in expected.items():
        assert reason in warned[name], (name, warned[name])


def test_the_command_warns_about_each_skipped_file_and_goes_on(tmp_path):
    folder = calibration(tmp_path)
    names = list(odd_entries(folder))
    (folder / "bomb.png").write_bytes(png_claiming(20000, 20000))
    (folder / "huge.npy").write_bytes(npy_claiming((10**10, 1, 16, 16)))
    np.savez(folder / "archive.npz", input=np.zeros(SHAPE))
    os.replace(folder / "archive.npz", folder / "archive.npy")
    (folder / "big.txt").write_text(" ".join(["1e300"] * 256))
    result = quantize(model_args() + ["-i", folder] + PREP, tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipping")]
    for name in names + ["bomb.png", "huge.npy", "archive.npy", "big.txt"]:
        assert sum(name in line for line in warnings) == 1, (name, result.stderr)
    assert "4 samples from 4 files, 4 skipped" in result.stdout
    assert "Traceback" not in result.stderr and (DATA / "digits.tnnproto").exists()


def test_npz_members_are_checked_like_npy_files(tmp_path):
    from quantization_cmd.inputs import read_npz

    good = tmp_path / "good.npz"
    np.savez(good, input=np.ones(SHAPE, np.float32))
    assert read_npz(good, {"input": SHAPE})["input"].shape == SHAPE
    huge = tmp_path / "huge.npz"
    import zipfile
    with zipfile.ZipFile(huge, "w") as archive:
        archive.writestr("input.npy", npy_claiming((10**10, 1, 16, 16)))
    tracemalloc.start()
    with pytest.raises(InputFileError, match="input 'input' its header announces 10240000000000 bytes"):
        read_npz(huge, {"input": SHAPE})
    assert tracemalloc.get_traced_memory()[1] < 2**20
    tracemalloc.stop()
    np.save(tmp_path / "plain.npy", np.ones(SHAPE, np.float32))
    os.replace(tmp_path / "plain.npy", tmp_path / "plain.npz")
    with pytest.raises(InputFileError, match="not a .npz archive"):
        read_npz(tmp_path / "plain.npz", {"input": SHAPE})
