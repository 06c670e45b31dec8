"""The library refactor changed no byte: for every TNN flag combination (5 blob methods x 3
weight methods x 3 merge types) the written .tnnproto/.tnnmodel hash to what the code before
the library wrote (tests/data/pinned_model_hashes.json, recorded from that code), on the demo
digits model (8 images) and on both SqueezeNets (TNN's conversion and ours, 24 images).

The float forwards' last bits depend on the BLAS kernels the CPU gets (OpenBLAS blocks and
sums otherwise on AVX2 than on AVX-512), and with them the ranges' last bits, so the bytes are
pinned once per kernel family: the first record from an AVX-512 machine, the second from an
AVX2 one (OpenBLAS's Haswell kernels, recorded from the code whose AVX-512 bytes were pinned
before; its five command-line flag sets were checked to give the same bytes on that machine
as the code before it). Every flag set must match one and the same record.

Statistics are collected once per blob granularity (every statistic any method needs) and
handed to `quantize(statistics=...)`, which then reads no data; five flag sets also go the
whole way through the command line."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tnnformat
from quantization_cmd import from_tnn_flags, quantize
from quantization_cmd.cli import main
from quantization_cmd.config import TNN_BLOB_METHODS, TNN_WEIGHT_METHODS
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

from conftest import REPO, require, shared_path

PINS = json.loads((REPO / "tests" / "data" / "pinned_model_hashes.json").read_text())
DATA = REPO / "data"
IMAGENET = Preprocess(True, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))


def digest(net: tnnformat.Net, folder: Path) -> str:
    tnnformat.save(net, folder / "x.tnnproto", folder / "x.tnnmodel")
    return file_digest(folder / "x")


def file_digest(prefix: Path) -> str:
    data = Path(f"{prefix}.tnnproto").read_bytes() + b"\0" + Path(f"{prefix}.tnnmodel").read_bytes()
    return hashlib.sha256(data).hexdigest()


def models():
    yield "digits", lambda: tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel"), \
        lambda: sorted((DATA / "calibration").glob("*.png"))[:8], Preprocess(False, (0.0,), (0.00392156862745098,))
    folder = lambda: shared_path("tnn-reference", "squeezenet1.1")  # noqa: E731
    images = lambda: list_input_files(shared_path("data", "imagenet-calib-100"))[:24]  # noqa: E731
    yield "squeezenet_tnn", lambda: tnnformat.load(folder() / "squeezenet1.1.tnnproto",
                                                   folder() / "squeezenet1.1.tnnmodel"), images, IMAGENET

    def converted():
        require("onnx")
        from tnnformat.onnx2tnn import convert

        return convert(str(shared_path("models", "squeezenet1.1.onnx")))
    yield "squeezenet_onnx", converted, images, IMAGENET


@pytest.mark.parametrize("name, load, files, prep", list(models()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_flag_set_writes_the_pinned_bytes(name, load, files, prep, tmp_path):
    net = load()
    input_name, shape = next(iter(net.inputs.items()))
    samples = [read_input_file(p, shape, prep) for p in files()]
    batches = [{input_name: np.concatenate(samples[i:i + 8])} for i in range(0, len(samples), 8)]
    got = {}
    for merges in ([0], [1, 2]):
        everything = quantize(net, batches, from_tnn_flags(5, 0, merges[0]), histograms=True).statistics
        for b in TNN_BLOB_METHODS:
            for w in TNN_WEIGHT_METHODS:
                for t in merges:
                    result = quantize(net, None, from_tnn_flags(b, w, t), statistics=everything)
                    got[f"b{b}_w{w}_t{t}"] = digest(result.net, tmp_path)
    assert len(got) == 45
    wrong = min((sorted(k for k in got if got[k] != pins[k]) for pins in PINS[name]), key=len)
    assert not wrong, f"{len(wrong)} flag sets changed bytes, e.g. {wrong[:5]}"


@pytest.mark.parametrize("flags", ["b0_w0_t0", "b0_w0_t2", "b2_w1_t0", "b2_w1_t1", "b3_w3_t1"])
def test_the_command_writes_the_pinned_bytes(flags, tmp_path):
    b, w, t = (flags[1], flags[4], flags[7])
    folder = tmp_path / "cal"
    folder.mkdir()
    for path in sorted((DATA / "calibration").glob("*.png"))[:8]:
        (folder / path.name).write_bytes(path.read_bytes())
    result = CliRunner().invoke(main, ["-p", str(DATA / "digits.tnnproto"), "-m", str(DATA / "digits.tnnmodel"),
                                       "-i", str(folder), "-b", b, "-w", w, "-t", t, "-n", "0",
                                       "-s", "0.00392156862745098", "--skip_fidelity", "-o", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert file_digest(tmp_path / "q") in {pins[flags] for pins in PINS["digits"]}
