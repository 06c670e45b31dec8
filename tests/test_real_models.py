"""Production models through the whole tool with default flags (the failures a new user met):
the PP-OCR classifier (a Reshape with the exporter's literal batch 1), the PP-OCR detector
(dead output channels with weights of 1e-30), a YOLOv8-style detector (SiLU convolutions);
and the pieces behind the fixes. The PP-OCR models come from the rapidocr-onnxruntime wheel
on PyPI (benchmarks/real_models.py fetches it once into .cache/)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import tnnformat
from kernels import Interpreter
from kernels.shapes import batch_mismatch
from quantization_cmd import from_tnn_flags, quantize
from quantization_cmd.cli import main
from quantization_cmd.config import LayerConfig
from quantization_cmd.events import Notice
from quantization_cmd.output_measures import MaskIoU, StepAgreement, TopKAnchors, measure_for
from quantization_cmd.quantize import _conv
from tnnformat import Layer, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from conftest import REPO, require
from tnn_runtime import run_tnn

sys.path.insert(0, str(REPO / "benchmarks"))
import real_models  # noqa: E402
import text_images  # noqa: E402

PPOCR = ["-n", "127.5,127.5,127.5", "-s", "0.0078431373,0.0078431373,0.0078431373"]


def converted(tmp_path: Path, source, shape=None) -> Path:
    """The float TNN model of a PP-OCR model (by name, at `shape`) or of an ONNX ModelProto."""
    require("onnx")
    from tnnformat.onnx2tnn import convert

    net = convert(str(real_models.ppocr(source)), {"x": shape}) if isinstance(source, str) else convert(source)
    prefix = tmp_path / "float"
    tnnformat.save(net, f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
    return prefix


def image_folder(folder: Path, pixels: np.ndarray) -> Path:
    folder.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / f"{i:03d}.png")
    return folder


def cli(prefix: Path, folder: Path, out: Path, *flags):
    return CliRunner().invoke(main, ["-p", f"{prefix}.tnnproto", "-m", f"{prefix}.tnnmodel", "-i", str(folder),
                                     "-o", str(out)] + list(flags))


def same_in_tnn(prefix: Path, inputs: dict) -> None:
    net = tnnformat.load(f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
    ours = Interpreter(net).forward(inputs)
    theirs = run_tnn(Path(f"{prefix}.tnnproto"), inputs)
    for name, value in ours.items():
        np.testing.assert_allclose(value.reshape(-1), theirs[name].reshape(-1), atol=1e-4)


def digest(prefix: Path) -> str:
    return hashlib.sha256(Path(f"{prefix}.tnnproto").read_bytes() + Path(f"{prefix}.tnnmodel").read_bytes()).hexdigest()


def test_ppocr_classifier_quantizes_at_the_default_batch_with_the_bytes_of_batch_1(tmp_path):
    prefix = converted(tmp_path, "ch_ppocr_mobile_v2.0_cls_infer", (1, 3, 48, 192))
    pixels, _ = text_images.lines(16, 48, 192, seed=1)
    result = cli(prefix, image_folder(tmp_path / "lines", pixels), tmp_path / "q", *PPOCR)
    assert result.exit_code == 0, result.output
    assert "top-1 agreement of int8 with float" in result.output and "note:" not in result.output
    same_in_tnn(tmp_path / "q", {"x": real_models.calibration(real_models.models()["ppocr_cls"], 1)})
    net = tnnformat.load(f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
    assert batch_mismatch(net) is None
    x = real_models.calibration(real_models.models()["ppocr_cls"], 16)
    for flags in ((0, 0, 0), (2, 1, 0)):
        digests = []
        for batch in (8, 1):
            quantize(net, [{"x": x[i:i + batch]} for i in range(0, 16, batch)], from_tnn_flags(*flags)).save(
                str(tmp_path / f"b{batch}"))
            digests.append(digest(tmp_path / f"b{batch}"))
        assert digests[0] == digests[1], flags


def test_ppocr_detector_with_dead_channels_quantizes_and_runs_in_tnn(tmp_path):
    prefix = converted(tmp_path, "ch_PP-OCRv4_det_infer", (1, 3, 320, 320))
    folder = image_folder(tmp_path / "pages", text_images.pages(3, 320, 320, seed=2))
    result = cli(prefix, folder, tmp_path / "q", "-b", "0", "-w", "0", "-t", "0",
                 "-n", "123.675,116.28,103.53", "-s", "0.01712,0.01751,0.01743")
    assert result.exit_code == 0, result.output
    assert "layer 'p2o.Conv.22': weight rows (output channels) 1, 8, 22, 27, 36, 47 are negligible" in result.output
    assert "layer 'p2o.Conv.31': weight rows (output channels) 33, 44, 318 are negligible" in result.output
    assert "IoU of the masks (> 0.5)" in result.output
    x = real_models.calibration(real_models.models()["ppocr_det"], 1, seed=5)
    same_in_tnn(tmp_path / "q", {"x": x})


def test_yolo_style_silu_model_quantizes_and_both_runtimes_agree(tmp_path):
    require("onnx")
    from yolo_style import build

    prefix = converted(tmp_path, build())
    folder = tmp_path / "noise"
    folder.mkdir()
    x = real_models.calibration(real_models.models()["yolo_style"], 8)
    for i, sample in enumerate(x):
        np.save(folder / f"{i}.npy", sample)
    result = cli(prefix, folder, tmp_path / "q")
    assert result.exit_code == 0, result.output
    assert "share of the float top-" in result.output
    int8 = tnnformat.load(tmp_path / "q.tnnproto", tmp_path / "q.tnnmodel")
    convs = [layer for layer in int8.layers if layer.type == "Convolution" and layer.quantized]
    assert convs and all(layer.params["activation_type"] == 0 for layer in convs)  # SiLU stays a layer
    producers = {b: layer.type for layer in int8.layers for b in layer.outputs}
    silu = [[producers.get(b) for b in layer.inputs] for layer in int8.layers if layer.type == "Mul"]
    silu = [kinds for kinds in silu if sorted(kinds) == ["Convolution", "Sigmoid"]]
    assert len(silu) == 20 and all(kinds[0] == "Sigmoid" for kinds in silu)  # or TNN drops the Sigmoid
    same_in_tnn(tmp_path / "q", {"images": x[:1]})


def conv_layer(out=4, cin=3):
    return Layer("Convolution", "dead", ["x"], ["y"], default_params(
        spec("Convolution").params, group=1, input_channel=cin, output_channel=out, kernel_h=1, kernel_w=1,
        stride_h=1, stride_w=1, pad_h=0, pad_w=0, bias=1))


def test_dead_rows_become_zeros_with_their_bias_and_big_biases_saturate():
    weights = np.random.default_rng(0).standard_normal((4, 3, 1, 1)).astype(np.float32)
    weights[1] = 1e-30
    weights[2] = 1e-3
    bias = np.array([0.5, -1.25, 3e4, 0.0], np.float32)
    notes = []
    res = _conv(conv_layer(), {"filter": RawBuffer.from_array(weights), "bias": RawBuffer.from_array(bias)},
                np.full(3, 1e-4, np.float32), LayerConfig(), notes.append)
    q = res["filter"].numpy().reshape(4, -1)
    scale = res["scale"].numpy()
    assert np.all(q[1] == 0) and np.isclose(res["bias"].numpy()[1] * scale[1], -1.25)
    assert res["bias"].numpy()[2] == 2 ** 31 - 1  # 3e4 / (1e-7 / 127) does not fit int32
    messages = [n.message for n in notes if isinstance(n, Notice)]
    assert any("rows (output channels) 1 are negligible" in m for m in messages)
    assert any("the bias of output channels 2 does not fit int32" in m and "saturated" in m for m in messages)


def test_a_model_whose_shapes_do_not_follow_the_batch_runs_one_sample_at_a_time(tmp_path):
    net = tnnformat.load(REPO / "data" / "digits.tnnproto", REPO / "data" / "digits.tnnmodel")
    index = [layer.name for layer in net.layers].index("fc")
    net.layers.insert(index, Layer("Reshape", "flat", ["global_pool"], ["flat"], default_params(
        spec("Reshape").params, axis=0, num_axes=2, shape=[1, 32], reshape_type=0)))
    net.layers[index + 1].inputs = ["flat"]
    tnnformat.save(net, tmp_path / "m.tnnproto", tmp_path / "m.tnnmodel")
    assert "layer 'flat' (Reshape)" in batch_mismatch(net)
    folder = tmp_path / "cal"
    folder.mkdir()
    for path in sorted((REPO / "data" / "calibration").glob("*.png"))[:10]:
        (folder / path.name).write_bytes(path.read_bytes())
    result = CliRunner().invoke(main, ["-p", str(tmp_path / "m.tnnproto"), "-m", str(tmp_path / "m.tnnmodel"),
                                       "-i", str(folder), "-n", "0", "-s", "0.00392156862745098",
                                       "-o", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert result.output.count("running one sample at a time") == 1
    assert "10 samples from 10 files" in result.output


def test_pow_converts_to_tnn_power_and_matches_onnxruntime():
    onnx = require("onnx")
    require("onnxruntime")
    from onnx import helper
    from onnx_node_tests import compare_with_onnxruntime

    nodes = [helper.make_node("Pow", ["x", "two"], ["y"]), helper.make_node("Pow", ["y", "half"], ["z"])]
    graph = helper.make_graph(nodes, "pow", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 2, 3, 4])],
                              [onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                               onnx.numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = {"x": np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)}
    for agreement in compare_with_onnxruntime(model, x):
        assert agreement.max_abs_diff <= 1e-5, agreement


def test_output_measures_follow_the_output():
    rng = np.random.default_rng(0)
    mask = rng.uniform(0, 1, (2, 1, 8, 8)).astype(np.float32)
    assert isinstance(measure_for(mask), MaskIoU)
    m = MaskIoU()
    m.add(mask, np.where(mask > 0.5, 0.9, 0.1))
    assert m.iou == 1.0
    boxes = rng.uniform(0, 1, (1, 12, 400)).astype(np.float32)
    top = measure_for(boxes)
    assert isinstance(top, TopKAnchors) and top.k == 40
    top.add(boxes, boxes)
    assert top.share == 1.0
    steps = rng.uniform(0, 1, (1, 40, 100)).astype(np.float32)
    steps /= steps.sum(-1, keepdims=True)
    assert isinstance(measure_for(steps), StepAgreement)


@pytest.mark.parametrize("name", ["ppocr_cls", "yolo_style"])
def test_real_models_benchmark_on_a_small_sample(name):
    """The README table's script, on two of its models with both flag sets."""
    for flags in real_models.FLAG_SETS:
        row = real_models.evaluate(real_models.models()[name], flags, calibrate=8, check=1)
        assert row.tnn_max_diff <= 1e-4 and row.cosine > 0.9 and row.measure, row


def test_best_on_the_ppocr_classifier_runs_in_tnns_runtime_as_in_ours(tmp_path):
    """--best on a depthwise, squeeze-excitation, HardSwish model (16 rendered lines), with its
    own choice of blob granularity and with per-tensor weights (-t 2, where equalization joins):
    TNN's runtime loads both models and gives our interpreter's top-1 on 8 lines."""
    prefix = converted(tmp_path, "ch_ppocr_mobile_v2.0_cls_infer", (1, 3, 48, 192))
    pixels, _ = text_images.lines(16, 48, 192, seed=1)
    folder = image_folder(tmp_path / "lines", pixels)
    x = real_models.calibration(real_models.models()["ppocr_cls"], 8, seed=3)
    for name, flags in (("chosen", ()), ("per_tensor", ("-t", "2"))):
        result = cli(prefix, folder, tmp_path / name, "--best", "--skip_fidelity", *PPOCR, *flags)
        assert result.exit_code == 0, result.output
        assert ("cross-layer equalization" in result.output) == bool(flags), result.output
        net = tnnformat.load(tmp_path / f"{name}.tnnproto", tmp_path / f"{name}.tnnmodel")
        ours = next(iter(Interpreter(net).forward({"x": x}).values()))
        theirs = np.stack([next(iter(run_tnn(tmp_path / f"{name}.tnnproto", {"x": x[i:i + 1]}).values())).reshape(-1)
                           for i in range(len(x))])
        assert np.array_equal(ours.argmax(1), theirs.argmax(1)), name
        assert np.abs(ours - theirs).max() < 0.02, name
