"""Pre-quantized models in: onnxruntime's QDQ SqueezeNet (per-channel and per-tensor weights)
through onnx2tnn and LiteRT's int8 MediaPipe models through tflite2tnn become TNN int8 models
at the files' scales, that agree with the source runtime's int8 outputs and run in TNN's
runtime as in our interpreter; `--float` writes the dequantized float model instead."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tnnformat
from kernels import Interpreter
from quantization_cmd.prequantized import quantize_with_file_scales

from conftest import REPO, require, shared_path
from tnn_runtime import run_tnn

sys.path.insert(0, str(REPO / "benchmarks"))
import mediapipe_models as mp  # noqa: E402
import qdq_models  # noqa: E402


def _same_in_tnn(tmp_path: Path, net, inputs: dict) -> None:
    tnnformat.save(net, tmp_path / "m.tnnproto", tmp_path / "m.tnnmodel")
    ours = Interpreter(net).forward(inputs)
    theirs = run_tnn(tmp_path / "m.tnnproto", inputs)
    for name, value in ours.items():
        np.testing.assert_allclose(value.reshape(-1), theirs[name].reshape(-1), atol=1e-4)


@pytest.mark.parametrize("per_channel", [True, False])
def test_qdq_squeezenet_imports_as_int8_agreeing_with_onnxruntime(tmp_path, per_channel):
    ort = require("onnxruntime")
    require("onnx")
    shared_path("models")
    from tnnformat.onnx2tnn import convert_with_summary

    path = qdq_models.squeezenet_qdq(per_channel)
    net, summary = convert_with_summary(str(path))
    assert summary.prequantized is not None and summary.prequantized.weights_per_channel == per_channel
    int8 = quantize_with_file_scales(net, summary.prequantized.scales, per_channel).net
    assert sum(layer.quantized for layer in int8.layers) >= 35 and not any(
        layer.type == "Convolution" and not layer.quantized for layer in int8.layers)
    x = qdq_models.squeezenet_inputs("imagenet-heldout-400", 32)
    ours = Interpreter(int8).forward({"data_0": x})[int8.outputs[0]].reshape(len(x), -1)
    # the QDQ graph as written (dequantize, float op, quantize), not fused into onnxruntime's
    # int8 kernels, whose results depend on the CPU: on an AVX2 machine they gave cosine 0.95
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options)
    theirs = np.concatenate([session.run(None, {"data_0": xi[None]})[0].reshape(1, -1) for xi in x])
    assert mp.cosine(ours, theirs) > 0.99
    # onnxruntime's scores are uint8 codes that often tie at the top (its argmax then takes the
    # lowest class): our top class must be one of its top classes on every image
    assert qdq_models.top_classes(theirs)[np.arange(len(x)), ours.argmax(1)].all()
    _same_in_tnn(tmp_path, int8, {"data_0": x[:1]})


def test_qdq_per_channel_weights_keep_onnxruntimes_codes():
    onnx = require("onnx")
    from onnx import numpy_helper

    from tnnformat.onnx2tnn import convert_with_summary

    path = qdq_models.squeezenet_qdq(True)
    net, summary = convert_with_summary(str(path))
    int8 = quantize_with_file_scales(net, summary.prequantized.scales).net
    codes = {t.name[: -len("_w_0_quantized")]: numpy_helper.to_array(t).reshape(-1)
             for t in onnx.load(str(path)).graph.initializer if t.name.endswith("_w_0_quantized")}
    convolutions = [layer for layer in int8.layers if layer.type == "Convolution"]
    assert len(convolutions) == len(codes) == 26
    for layer in convolutions:  # layer 'fire2/squeeze1x1_2' holds weight 'fire2/squeeze1x1'
        ours = int8.resources[layer.name]["filter"].data
        np.testing.assert_array_equal(ours, codes[layer.name.rsplit("_", 1)[0]])


def test_onnx2tnn_writes_int8_for_a_qdq_model_and_float_with_the_flag(tmp_path):
    require("onnx")
    from tnnformat.onnx2tnn.cli import main

    path = qdq_models.squeezenet_qdq(True)
    result = CliRunner().invoke(main, [str(path), "-o", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert "int8 from the file's 68 blob scales (37 of 41 layers int8" in result.output
    assert (tmp_path / "q.tnnproto").read_text().count("QuantizedConvolution") == 26
    result = CliRunner().invoke(main, [str(path), "-o", str(tmp_path / "f"), "--float"])
    assert result.exit_code == 0, result.output
    float_net = tnnformat.load(tmp_path / "f.tnnproto", tmp_path / "f.tnnmodel")
    assert not any(layer.quantized for layer in float_net.layers)


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory):
    """LiteRT's int8 versions of two MediaPipe models (its calibrator crashes on the models
    with float16 weights, so these are the two without)."""
    require("ai_edge_litert")
    models = mp.mediapipe_models()
    folder = tmp_path_factory.mktemp("int8")
    made = {}
    for name, shape in (("iris_landmark", (1, 64, 64, 3)), ("hand_recrop", (1, 256, 256, 3))):
        made[name] = folder / f"{name}_int8.tflite"
        made[name].write_bytes(qdq_models.tflite_int8(models[name], [mp.photo_input(shape, i) for i in range(8)]))
    return made


@pytest.mark.parametrize("name", ["iris_landmark", "hand_recrop"])
def test_int8_tflite_imports_as_int8_agreeing_with_litert(tmp_path, int8_tflite, name):
    from tnnformat.tflite2tnn import convert_with_summary

    net, summary = convert_with_summary(int8_tflite[name])
    assert summary.prequantized is not None and summary.prequantized.weights_per_channel
    int8 = quantize_with_file_scales(net, summary.prequantized.scales).net
    assert not any(layer.type == "Convolution" and not layer.quantized for layer in int8.layers)
    (input_name, shape), = int8.inputs.items()
    x = mp.photo_input((1, shape[2], shape[3], shape[1]), 20)
    for ours, theirs in zip(mp.ours(int8, x), mp.litert_outputs(int8_tflite[name], x)):
        assert mp.cosine(ours, theirs) > 0.999
    _same_in_tnn(tmp_path, int8, {input_name: x.transpose(0, 3, 1, 2)})


def test_file_scales_map_onto_tnns_int8_on_the_files_grid():
    from tnnformat.importer.scales import file_scale

    after_relu = file_scale(0.5, 0, np.uint8)  # [0, 127.5]: the file's step, its 0 on TNN's lowest code
    assert after_relu.asymmetric() == (0.5, -127)
    assert file_scale(0.25, -20, np.int8).asymmetric() == (0.25, -19)  # code q becomes q + 1: -20 -> -19
    step, zero = file_scale(0.5, 255, np.uint8).asymmetric()  # [-127.5, 0]: 0 on the top code, which
    assert step == pytest.approx(127.5 / 254) and zero == 127  # would saturate: the range instead
    assert after_relu.symmetric_scale() == pytest.approx(127.5 / 127)  # a step twice the file's
    centred = file_scale(0.1, 0, np.int8)  # [-12.8, 12.7]
    assert centred.symmetric_scale() == pytest.approx(12.8 / 127)
    step, zero = file_scale([0.1, 0.2], [3, -5], np.int8).asymmetric()  # per channel: the union
    low, high = (-128 + 5) * 0.2, (127 + 5) * 0.2  # channel 1 reaches furthest both ways
    assert step == pytest.approx((high - low) / 254) and zero == 127 - round(high / step)
