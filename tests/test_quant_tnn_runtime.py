"""Models the library writes, run by TNN's own runtime (../shared/tnn-runtime): SqueezeNet with
layers kept float (mixed int8/float), and SqueezeNet with 4-bit weights."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tnnformat
from kernels import Interpreter
from quantization_cmd.cli import main
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

from conftest import shared_path
from tnn_runtime import run_tnn

PREP = Preprocess(True, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))
FLAGS = ["-r", "1", "-n", "104,117,123", "-s", "1,1,1"]


def squeezenet_args():
    folder = shared_path("tnn-reference", "squeezenet1.1")
    return ["-p", str(folder / "squeezenet1.1.tnnproto"), "-m", str(folder / "squeezenet1.1.tnnmodel")]


def images(count: int):
    files = list_input_files(shared_path("data", "imagenet-calib-100"))[:count]
    return np.concatenate([read_input_file(f, (1, 3, 224, 224), PREP) for f in files])


def tnn_outputs(proto: Path, x: np.ndarray) -> np.ndarray:
    """TNN's output for every image, two TNNTest processes at a time."""
    def one(i):
        return next(iter(run_tnn(proto, {"data_0": x[i:i + 1]}).values())).reshape(-1)

    with ThreadPoolExecutor(2) as pool:
        return np.stack(list(pool.map(one, range(len(x)))))


def quantize_cli(tmp_path: Path, count: int, *args) -> str:
    folder = tmp_path / "cal"
    folder.mkdir()
    for f in list_input_files(shared_path("data", "imagenet-calib-100"))[:count]:
        (folder / f.name).symlink_to(f)
    result = CliRunner().invoke(main, squeezenet_args() + FLAGS + ["-i", str(folder), "-o", str(tmp_path / "q")]
                                + list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_float_layers_run_in_tnns_runtime_as_in_ours(tmp_path):
    output = quantize_cli(tmp_path, 100, "--float_layers", "fire9/*,conv10*")
    net = tnnformat.load(tmp_path / "q.tnnproto", tmp_path / "q.tnnmodel")
    kept = {"fire9/squeeze1x1_1", "fire9/expand1x1_1", "fire9/expand3x3_1", "fire9/concat_1", "conv10_1"}
    assert {layer.name for layer in net.layers if layer.name in kept and not layer.quantized} == kept
    assert sum(layer.quantized for layer in net.layers) == 32
    assert "kept float: " in output and "fire9/expand3x3_1(float)" in output  # the table marks them
    x = images(100)
    ours = Interpreter(net).forward({"data_0": x})["softmaxout_1"].reshape(100, -1)
    theirs = tnn_outputs(tmp_path / "q.tnnproto", x)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.slow
def test_four_bit_weights_stay_on_their_grid_and_run_in_tnn(tmp_path):
    (tmp_path / "8").mkdir()
    eight = quantize_cli(tmp_path / "8", 24)
    output = quantize_cli(tmp_path, 24, "--weight_bits", "4")
    net = tnnformat.load(tmp_path / "q.tnnproto", tmp_path / "q.tnnmodel")
    convs = [layer.name for layer in net.layers if layer.quantized and layer.type == "Convolution"]
    assert len(convs) == 26
    for name in convs:
        q = net.resources[name]["filter"].numpy().astype(int)
        assert -7 <= q.min() and q.max() <= 7 and q.max() == 7, name
    assert "4-bit weights" in output

    def output_cosine(text: str) -> float:
        row = next(line for line in text.splitlines() if line.startswith("softmaxout_1 (output)"))
        return float(row.split()[3])

    assert output_cosine(output) < output_cosine(eight)  # the table shows what 4 bits cost
    x = images(4)
    ours = Interpreter(net).forward({"data_0": x})["softmaxout_1"].reshape(4, -1)
    theirs = tnn_outputs(tmp_path / "q.tnnproto", x)
    assert np.abs(ours - theirs).max() <= 1e-4
