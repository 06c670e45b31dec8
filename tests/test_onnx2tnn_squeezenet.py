"""ImageNet-trained SqueezeNet 1.1 (../shared): onnx2tnn writes the very files TNN's own
converter wrote (which TNN's runtime ran for the reference outputs), and on 100 ImageNet
images our interpreter agrees with onnxruntime."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import require, shared_path

require("onnx")
require("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from onnx_node_tests import cosine, onnxruntime_outputs, tnn_forward  # noqa: E402

import tnnformat  # noqa: E402
from tnnformat.onnx2tnn import convert, load_model  # noqa: E402

MEAN_BGR = np.array([104, 117, 123], np.float32).reshape(3, 1, 1)


def squeezenet_input(png: Path) -> np.ndarray:
    """BGR pixels minus the per-channel mean, NCHW float32 (the model's preprocessing)."""
    rgb = np.asarray(Image.open(png).convert("RGB"), np.float32)
    return (rgb[:, :, ::-1].transpose(2, 0, 1) - MEAN_BGR)[None]


def test_writes_the_files_tnn_writes(tmp_path):
    """Same proto text and same weights, byte for byte, as TnnConverter's output."""
    reference = shared_path("tnn-reference", "squeezenet1.1")
    net = convert(shared_path("models", "squeezenet1.1.onnx"))
    tnnformat.save(net, tmp_path / "s.tnnproto", tmp_path / "s.tnnmodel")
    assert (tmp_path / "s.tnnproto").read_bytes() == (reference / "squeezenet1.1.tnnproto").read_bytes()
    assert (tmp_path / "s.tnnmodel").read_bytes() == (reference / "squeezenet1.1.tnnmodel").read_bytes()


def test_matches_onnxruntime_on_imagenet():
    model = load_model(shared_path("models", "squeezenet1.1.onnx"))
    net = convert(model)
    images = sorted(shared_path("data", "imagenet-calib-100").glob("*.png"))
    assert len(images) == 100
    cosines = []
    for png in images:
        feeds = {"data_0": squeezenet_input(png)}
        expected = onnxruntime_outputs(model, feeds)["softmaxout_1"]
        ours = tnn_forward(net, feeds)["softmaxout_1"]
        assert ours.shape == expected.shape
        assert ours.argmax() == expected.argmax(), png.name
        cosines.append(cosine(ours, expected))
    assert min(cosines) >= 0.99999
