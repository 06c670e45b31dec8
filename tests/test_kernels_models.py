"""Whole models: TNN's benchmark protos with random weights, and TNN's float SqueezeNet
against what TNN's runtime computed."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tnnformat
from kernels import Interpreter, KernelError, infer_shapes, with_random_resources
from tnnformat import Layer, Net, RawBuffer

from conftest import shared_path

FLOAT_PROTOS = {"densenet": 1001, "inception_v3": 1001, "inception_v4": 1001, "mobilenet_v1": 1000,
                "mobilenet_v2": 1000, "resnet50": 1000, "shufflenet_v2": 1000, "squeezenet_v1.0": 1000,
                "squeezenet_v1.1": 1000}
QUANT_PROTOS = ["quant_inception_v3", "quant_mobilenet_v1", "quant_mobilenet_v2", "quant_resnet50",
                "quant_squeezenet_v1.0", "quant_squeezenet_v1.1"]


def random_model(name: str) -> Net:
    return with_random_resources(tnnformat.load(shared_path("tnn-protos", name + ".tnnproto")), seed=1)


def random_input(net: Net, batch: int = 1) -> dict:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal((batch,) + tuple(v[1:])).astype(np.float32) for k, v in net.inputs.items()}


@pytest.mark.parametrize("name", sorted(FLOAT_PROTOS))
def test_float_benchmark_protos_run_with_random_weights(name):
    net = random_model(name)
    out = next(iter(Interpreter(net).forward(random_input(net, batch=2)).values()))
    assert out.shape[0] == 2 and int(np.prod(out.shape[1:])) == FLOAT_PROTOS[name]
    assert np.all(np.isfinite(out)) and np.std(out) > 0


@pytest.mark.parametrize("name", QUANT_PROTOS)
def test_int8_benchmark_protos_run_with_random_weights(name):
    net = random_model(name)
    shapes = infer_shapes(net)
    assert int(np.prod(shapes[net.outputs[0]][1:])) == 1000
    out = next(iter(Interpreter(net).forward(random_input(net)).values()))
    assert np.all(np.isfinite(out))


def test_tnn_float_squeezenet_reproduces_tnn_runtime():
    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    expected = np.load(folder / "squeezenet1.1.tnn-outputs.npz")
    interpreter = Interpreter(net)
    mean = np.array([104, 117, 123], np.float32)
    worst = 0.0
    for name in sorted(expected.files):
        pixels = np.asarray(Image.open(shared_path("data", "imagenet-calib-100", name)).convert("RGB"), np.float32)
        x = (pixels[..., ::-1] - mean).transpose(2, 0, 1)[None]
        out = interpreter.forward({"data_0": x})["softmaxout_1"]
        worst = max(worst, float(np.abs(out.reshape(-1) - expected[name].reshape(-1)).max()))
    assert len(expected.files) == 100 and worst <= 1e-5


def test_batches_give_the_same_answer_as_single_images():
    net = random_model("mobilenet_v2")
    batch = random_input(net, batch=3)["input"]
    interpreter = Interpreter(net)
    together = interpreter.forward({"input": batch})["prob"]
    alone = np.concatenate([interpreter.forward({"input": batch[i:i + 1]})["prob"] for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_hook_sees_every_blob_once_and_blobs_are_released():
    net = random_model("squeezenet_v1.1")
    seen = []
    interpreter = Interpreter(net)
    out = interpreter.forward(random_input(net), hook=lambda layer, blob, value: seen.append(blob))
    produced = [b for layer in interpreter.net.layers for b in layer.outputs]
    assert seen == list(net.inputs) + produced and list(out) == net.outputs
    kept = interpreter.forward(random_input(net), keep={"squeezenet0_concat0"})
    assert set(kept) == {"squeezenet0_flatten0_reshape0", "squeezenet0_concat0"}


def test_inputs_are_not_modified():
    net = random_model("shufflenet_v2")
    x = random_input(net)
    before = {k: v.copy() for k, v in x.items()}
    Interpreter(net).forward(x)
    assert all(np.array_equal(x[k], before[k]) for k in x)


def tiny(layers, inputs=None, resources=None):
    return Net(inputs=inputs or {"x": (1, 3, 8, 8)}, outputs=[layers[-1].outputs[0]], layers=layers,
               resources=resources or {})


def test_unknown_layer_type_is_refused_before_computing():
    net = tiny([Layer("FancyOp", "fancy", ["x"], ["y"], {"tokens": []})])
    with pytest.raises(KernelError, match="layer 'fancy' has type FancyOp, which has no kernel; supported types: .*Convolution"):
        Interpreter(net)


def test_wrong_input_shape_names_the_input_and_both_shapes():
    net = tiny([Layer("ReLU", "relu", ["x"], ["y"], {})])
    with pytest.raises(KernelError, match=r"input 'x' has shape \[1, 4, 8, 8\], the model expects \[1, 3, 8, 8\]"):
        Interpreter(net).forward({"x": np.zeros((1, 4, 8, 8), np.float32)})
    with pytest.raises(KernelError, match="input 'x' is missing"):
        Interpreter(net).forward({})


def test_shape_mismatch_inside_the_graph_names_the_layer_and_shapes():
    layers = [Layer("ReLU", "a", ["x"], ["p"], {}), Layer("Add", "add", ["p", "z"], ["y"], {"weight_input_index": 1})]
    net = tiny(layers, inputs={"x": (1, 3, 8, 8), "z": (1, 3, 5, 5)})
    with pytest.raises(KernelError, match=r"layer 'add' \(Add\).*\[\[1, 3, 8, 8\], \[1, 3, 5, 5\]\]"):
        Interpreter(net).forward({"x": np.zeros((1, 3, 8, 8), np.float32), "z": np.zeros((1, 3, 5, 5), np.float32)})
    with pytest.raises(KernelError, match="layer 'add'"):
        infer_shapes(net)


def test_filter_that_does_not_fit_is_named():
    conv = Layer("Convolution", "conv", ["x"], ["y"], {
        "group": 1, "input_channel": 3, "output_channel": 4, "kernel_h": 3, "kernel_w": 3, "stride_h": 1,
        "stride_w": 1, "pad_h": 1, "pad_w": 1, "bias": 0, "pad_type": -1, "dilation_h": 1, "dilation_w": 1,
        "activation_type": 0})
    net = tiny([conv], resources={"conv": {"filter": RawBuffer.from_array(np.zeros(4 * 2 * 9, np.float32))}})
    with pytest.raises(KernelError, match="layer 'conv': input has 3 channels, the filter expects 2"):
        Interpreter(net).forward({"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_layers_that_mix_samples_are_not_split_across_threads():
    """A batch runs in pieces only when no layer looks across the batch axis."""
    layers = [Layer("ReLU", "relu", ["x"], ["r"], {}), Layer("Softmax", "softmax", ["r"], ["y"], {"axis": 0})]
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    got = Interpreter(tiny(layers, inputs={"x": (4, 3, 2, 2)})).forward({"x": x})["y"]
    relu = np.maximum(x, 0)
    np.testing.assert_allclose(got, np.exp(relu) / np.exp(relu).sum(0), rtol=1e-6)
    per_sample = Interpreter(random_model("squeezenet_v1.1"))
    assert per_sample.batch_independent() and not Interpreter(tiny(layers)).batch_independent()


@pytest.mark.parametrize("name", ["squeezenet_v1.1", "inception_v3", "inception_v4"])
def test_concatenations_assembled_in_place_change_nothing(name):
    """Convolutions that write straight into their slice of a concatenation give, to the bit,
    the outputs, hooked blobs and kept blobs of the plain run (models with many concatenations)."""
    net = random_model(name)
    planned, plain = Interpreter(net), Interpreter(net)
    plain._into, plain._assembled = {}, {}
    assert planned._assembled, "no concatenation was planned"
    x = random_input(net, batch=2)
    kept = [planned.net.layers[i].outputs[0] for i in list(planned._into)[:3]]
    a, b = planned.forward(x, keep=kept), plain.forward(x, keep=kept)
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    seen_a, seen_b = {}, {}
    planned.forward(x, hook=lambda layer, blob, value: seen_a.__setitem__(blob, value.copy()))
    plain.forward(x, hook=lambda layer, blob, value: seen_b.__setitem__(blob, value.copy()))
    assert list(seen_a) == list(seen_b) and all(np.array_equal(seen_a[k], seen_b[k]) for k in seen_a)


def test_int8_concatenations_are_not_assembled_in_place():
    """A quantized concatenation requantizes its inputs: nothing writes into it."""
    planned = Interpreter(random_model("quant_squeezenet_v1.1"))
    assert planned._into == {} and planned._assembled == {}
