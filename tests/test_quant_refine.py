"""Threshold tuning, rounding optimisation (AdaRound) and the --best preset: small hand-made
layers where the right answer is known, the demo through the CLI, and SqueezeNet's --best
model run by TNN's own runtime."""
from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import tnnformat
from kernels import Interpreter
from kernels.ops.conv import arrange_filter, convolve, input_patches
from quantization_cmd import BlobConfig, LayerConfig, QuantConfig, quantize
from quantization_cmd.adaround import adaround, _loss
from quantization_cmd.api import default_passes, quantize_best
from quantization_cmd.calibrate import ComputeScales, HistogramStatistics, RangeStatistics
from quantization_cmd.cli import main
from quantization_cmd.quantize import WriteInt8, dequantized, quantize_layer
from quantization_cmd.statistics import StatKey
from quantization_cmd.threshold_tuning import NEXT_LAYER_ERROR, ThresholdTuning
from tnnformat import Layer, Net, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from conftest import REPO, shared_path
from test_quant_tnn_runtime import images, quantize_cli, tnn_outputs
from tnn_runtime import run_tnn


def conv(name, src, dst, cin, cout, k=1, relu=False):
    params = default_params(spec("Convolution").params, group=1, input_channel=cin, output_channel=cout,
                            kernel_h=k, kernel_w=k, stride_h=1, stride_w=1, pad_h=k // 2, pad_w=k // 2, bias=1,
                            pad_type=-1, activation_type=1 if relu else 0)
    return Layer("Convolution", name, [src], [dst], params)


def two_convs(rng, cin=8, mid=8, cout=4):
    """x -> conv a (3x3) -> conv b (1x1): b's input blob is the one threshold tuning tunes."""
    layers = [conv("a", "x", "y", cin, mid, k=3), conv("b", "y", "z", mid, cout)]
    resources = {
        "a": {"filter": RawBuffer.from_array(rng.normal(0, 0.3, (mid, cin, 3, 3)).astype(np.float32)),
              "bias": RawBuffer.from_array(rng.normal(0, 0.1, mid).astype(np.float32))},
        "b": {"filter": RawBuffer.from_array(rng.normal(0, 0.3, (cout, mid, 1, 1)).astype(np.float32)),
              "bias": RawBuffer.from_array(np.zeros(cout, np.float32))}}
    return Net(inputs={"x": (1, cin, 8, 8)}, outputs=["z"], layers=layers, resources=resources)


def test_dequantized_weights_are_the_float_weights_within_half_a_step():
    """The float image of an int8 convolution, with per-channel input scales folded into its
    weights as TNN stores them, is within half a weight step of the float weights."""
    rng = np.random.default_rng(1)
    layer = conv("c", "x", "y", 6, 5, k=3)
    weights = rng.normal(0, 1, (5, 6, 3, 3)).astype(np.float32)
    resource = {"filter": RawBuffer.from_array(weights), "bias": RawBuffer.from_array(rng.normal(0, 1, 5).astype(np.float32))}
    s_in = rng.uniform(0.01, 1.0, 6).astype(np.float32)
    int8 = quantize_layer(layer, resource, s_in, LayerConfig())
    back = dequantized(layer, int8, s_in)["filter"].numpy(np.float32).reshape(5, 6, 9)
    step = int8["scale"].numpy(np.float32).reshape(5, 1, 1) / s_in.reshape(1, 6, 1)
    assert np.all(np.abs(back - weights.reshape(5, 6, 9)) <= step / 2 * 1.0001)


def test_threshold_tuning_never_ends_worse_than_its_start_and_clips_a_long_tail():
    """4-bit blobs on a Laplace-distributed input: MIN_MAX spends the 15 levels on the rare
    largest values; tuning picks a smaller threshold whose next-layer error is lower (on held-out
    inputs too), and the chosen candidate's error is the least, never above the start's."""
    rng = np.random.default_rng(2)
    net = two_convs(rng)
    net = Net(inputs={"y": (1, 8, 8, 8)}, outputs=["z"], layers=net.layers[1:], resources={"b": net.resources["b"]})
    x = rng.laplace(0, 1, (64, 8, 8, 8)).astype(np.float32)
    config = QuantConfig(BlobConfig("MIN_MAX", "tensor", bits=4), LayerConfig())
    base = [RangeStatistics(), HistogramStatistics(), ComputeScales()]
    start = quantize(net, {"y": x[:32]}, config, passes=base + [WriteInt8()])
    tuned = quantize(net, {"y": x[:32]}, config, passes=base + [ThresholdTuning(samples=32), WriteInt8()])
    stat = tuned.statistics[StatKey("y", NEXT_LAYER_ERROR, True, "y")]
    errors = stat.relative()
    chosen = next(i for i, c in enumerate(stat.candidates) if np.array_equal(c.scale, tuned.scales["y"].scale))
    assert errors[chosen] == errors.min() and errors[chosen] < errors[0]
    np.testing.assert_array_equal(stat.candidates[0].scale, start.scales["y"].scale)
    assert tuned.scales["y"].scale[0] < 0.8 * start.scales["y"].scale[0]

    def output_error(result):
        held_out = {"y": x[32:]}
        reference = Interpreter(net).forward(held_out)["z"]
        got = Interpreter(result.net, activation_bits=result.activation_bits).forward(held_out)["z"]
        return float(np.mean((got - reference) ** 2))

    assert output_error(tuned) < 0.8 * output_error(start)


def test_adaround_lowers_the_layer_output_error_below_round_to_nearest_at_4_bits():
    """A 3x3 convolution with 4-bit weights on correlated inputs: the learned rounding's output
    MSE (the layer on float inputs, weights as stored) is well below round-to-nearest's, and
    every code stays on the 4-bit grid within one step of the real-valued code."""
    rng = np.random.default_rng(3)
    net = two_convs(rng, cin=8, mid=16)
    net = Net(inputs=net.inputs, outputs=["y"], layers=net.layers[:1], resources={"a": net.resources["a"]})
    base = rng.normal(0, 1, (24, 1, 8, 8))
    x = (base + 0.5 * rng.normal(0, 1, (24, 8, 8, 8))).astype(np.float32)  # channels share a component
    config = QuantConfig(BlobConfig("MIN_MAX", "tensor"), LayerConfig(bits=4))
    nearest = quantize(net, {"x": x}, config)
    learned = quantize(net, {"x": x}, config, passes=default_passes(rounding=True))
    layer = net.layers[0]
    reference = convolve(x, arrange_filter(net.resources["a"]["filter"].numpy(np.float32), layer), layer)

    def mse(result):
        s_in = result.scales["x"].scale
        w = dequantized(layer, result.net.resources["a"], s_in)["filter"].numpy(np.float32)
        return float(np.mean((convolve(x, arrange_filter(w, layer), layer) - reference) ** 2))

    assert mse(learned) < 0.8 * mse(nearest)
    a, b = (r.net.resources["a"]["filter"].numpy().astype(int) for r in (learned, nearest))
    assert np.abs(a).max() <= 7 and np.abs(a - b).max() <= 1 and np.any(a != b)


def test_adaround_keeps_round_to_nearest_where_it_cannot_do_better():
    """Weights already on the grid: nothing to learn, the codes stay those of rounding."""
    target = np.array([[[3.0, -2.0, 5.0, 0.0]]])
    moment = np.eye(4)[None]
    codes = adaround(target, moment, -7, 7, iterations=50)
    np.testing.assert_array_equal(codes, target)
    assert _loss(codes - target, moment).max() == 0


def test_adaround_rows_are_independent_problems_whatever_the_chunks_and_threads():
    """What the pass relies on to share a layer's rows over the cores: solving row chunks on
    one BLAS thread gives the codes of one call on the whole layer, bit for bit."""
    from kernels.threads import single_threaded_blas

    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (500, 40)) + rng.normal(0, 1, (500, 1))
    moment = (x.T @ x / 500)[None].repeat(2, axis=0)
    target = rng.uniform(-60, 60, (2, 37, 40))
    whole = adaround(target, moment, -127, 127, iterations=60)
    with single_threaded_blas():
        chunks = np.concatenate([adaround(target[:, first:first + 8], moment, -127, 127, iterations=60)
                                 for first in range(0, 37, 8)], axis=1)
    np.testing.assert_array_equal(chunks, whole)
    assert np.any(whole != np.round(target))


def test_input_patches_multiply_to_the_convolution():
    rng = np.random.default_rng(4)
    layer = conv("c", "x", "y", 4, 3, k=3)
    x = rng.normal(0, 1, (2, 4, 5, 6)).astype(np.float32)
    w = rng.normal(0, 1, (3, 4, 3, 3)).astype(np.float32)
    cols = input_patches(x, layer, 4)
    y = (w.reshape(3, -1) @ cols[0]).reshape(3, 2, 5, 6).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, convolve(x, arrange_filter(w, layer), layer), rtol=1e-5, atol=1e-5)


def test_best_on_the_demo_names_its_steps(tmp_path):
    data = REPO / "data"
    result = CliRunner().invoke(main, ["-p", str(data / "digits.tnnproto"), "-m", str(data / "digits.tnnmodel"),
                                       "-i", str(data / "calibration"), "--best", "--skip_fidelity",
                                       "-o", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert "ASY_MIN_MAX blobs" in result.output and "mix: weights per channel, blobs per tensor" in result.output
    # the demo's outputs prefer blobs per tensor, and the command says so with both scores
    assert re.search(r"--best: -t 1 \(mix\) output SQNR [\d.]+ dB, -t 0 \(per-channel\) output SQNR [\d.]+ dB "
                     r"on 13 calibration samples left out of the other 27.s ranges: -t 1", result.output), result.output
    assert "cross-layer equalization" not in result.output
    given = CliRunner().invoke(main, ["-p", str(data / "digits.tnnproto"), "-m", str(data / "digits.tnnmodel"),
                                      "-i", str(data / "calibration"), "--best", "-t", "2", "--skip_fidelity",
                                      "-o", str(tmp_path / "q2")])
    assert given.exit_code == 0 and "--best: " not in given.output and "per-tensor" in given.output
    assert "cross-layer equalization" in given.output  # weights per tensor: equalization joins
    assert "rounding optimisation, bias correction" in result.output
    assert (tmp_path / "q.tnnmodel").exists()


def test_best_keeps_blobs_per_channel_where_one_channel_dwarfs_the_others():
    """A blob whose first channel spans 100x the others' range: per tensor, the others get a
    few codes, so the output suffers and the choice keeps that blob per channel."""
    rng = np.random.default_rng(3)
    net = two_convs(rng)
    filt = net.resources["a"]["filter"].numpy().copy()
    filt[0] *= 100
    net.resources["a"]["filter"] = RawBuffer.from_array(filt)
    x = rng.normal(0, 1, (32, 8, 8, 8)).astype(np.float32)
    result, choice = quantize_best(net, {"x": x}, {"x": x[:16]}, {"x": x[16:]})
    assert choice.chosen == 0 and choice.scores[0] > choice.scores[1] + 1, choice.scores
    assert result.net.scale_of("y").scale.size == 8  # the blob kept per channel


def test_best_and_tune_refuse_a_table(tmp_path):
    data = REPO / "data"
    result = CliRunner().invoke(main, ["-p", str(data / "digits.tnnproto"), "-m", str(data / "digits.tnnmodel"),
                                       "--load_table", str(tmp_path / "t.txt"), "--best", "-o", str(tmp_path / "q")])
    assert result.exit_code == 2 and "--best" in result.output
    assert not (tmp_path / "q.tnnproto").exists()


@pytest.mark.slow
def test_best_squeezenet_runs_in_tnns_runtime_as_in_ours(tmp_path):
    """--best on SqueezeNet with the 100 calibration images: TNN's runtime loads the model and
    its top-1 equals our interpreter's on all 100 images."""
    output = quantize_cli(tmp_path, 100, "--best", "--skip_fidelity")
    assert "rounding optimisation, bias correction" in output
    net = tnnformat.load(tmp_path / "q.tnnproto", tmp_path / "q.tnnmodel")
    x = images(100)
    ours = Interpreter(net).forward({"data_0": x})["softmaxout_1"].reshape(100, -1)
    theirs = tnn_outputs(tmp_path / "q.tnnproto", x)
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))
    assert np.abs(ours - theirs).max() <= 1e-3


def test_asymmetric_ranges_stay_symmetric_around_a_standalone_int8_relu(tmp_path):
    """conv, conv -> Add -> ReLU -> conv with ASY_MIN_MAX blobs: the ReLU after the Add is an
    int8 layer of its own, which clamps codes at 0 whatever the zero point; its blobs get MIN_MAX
    (zero point 0) and the int8 model follows float, where a zero point there would not."""
    rng = np.random.default_rng(5)
    layers = [conv("a", "x", "p", 4, 6, k=3), conv("b", "x", "q", 4, 6, k=3),  # 3x3: TNN fuses no Add into them
              Layer("Add", "add", ["p", "q"], ["s"], default_params(spec("Add").params)),
              Layer("ReLU", "relu", ["s"], ["r"], default_params(spec("ReLU").params)),
              conv("c", "r", "z", 6, 3)]
    resources = {name: {"filter": RawBuffer.from_array(rng.normal(0, 0.3, (cout, cin, k, k)).astype(np.float32)),
                        "bias": RawBuffer.from_array(rng.normal(0, 0.1, cout).astype(np.float32))}
                 for name, cin, cout, k in (("a", 4, 6, 3), ("b", 4, 6, 3), ("c", 6, 3, 1))}
    net = Net(inputs={"x": (1, 4, 8, 8)}, outputs=["z"], layers=layers, resources=resources)
    x = rng.normal(0, 1, (16, 4, 8, 8)).astype(np.float32)
    result = quantize(net, {"x": x}, QuantConfig(BlobConfig("ASY_MIN_MAX")))
    assert {l.name for l in result.net.layers if l.quantized} >= {"relu", "add", "c"}
    assert result.plan.blobs[result.plan.scale_source["r"]].method == "MIN_MAX"
    assert not np.any(result.scales[result.plan.scale_source["r"]].zero_point)
    assert np.any(result.scales[result.plan.scale_source["p"]].zero_point)  # elsewhere asymmetric
    a = Interpreter(net).forward({"x": x})["z"].ravel()
    b = Interpreter(result.net).forward({"x": x})["z"].ravel()
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.999
    result.save(str(tmp_path / "q"))  # and TNN's runtime computes the same
    theirs = next(iter(run_tnn(tmp_path / "q.tnnproto", {"x": x[:1]}).values())).ravel()
    np.testing.assert_allclose(theirs, b[:theirs.size], atol=1e-5)


def test_the_choice_leaves_out_samples_spread_over_the_list():
    """--best's check samples: evenly spread (files sorted by name are often sorted by class),
    never among the ones the candidates calibrate on; none to leave out, all calibrate."""
    from quantization_cmd.api import spread_split

    check, rest = spread_split(100, 32)
    assert len(check) == 32 and len(rest) == 68 and not set(check) & set(rest)
    assert sorted(check + rest) == list(range(100)) and max(np.diff(check)) <= 4 and check[-1] >= 90
    assert spread_split(10, 0) == ([], list(range(10)))
    assert spread_split(3, 1) == ([0], [1, 2])
