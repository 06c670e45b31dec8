"""Int8 arithmetic on small hand-computed cases, and TNN's own int8 files against TNN's outputs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tnnformat
from kernels import Interpreter, KernelError
from kernels.int8 import Int8Blob, accumulator_dtype, quantize, requantized
from kernels.ops.conv import arrange_filter, convolve
from kernels.rounding import float2int8, relu_float2int8
from tnnformat import BLOB_SCALE_SUFFIX, BlobScale, Layer, Net, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from conftest import shared_path


def buffer(values, dtype):
    return RawBuffer.from_array(np.asarray(values, dtype).reshape(-1), dims=())


def blob_scale(scale, zero_point=0):
    scale = np.atleast_1d(np.asarray(scale, np.float32))
    return BlobScale(scale, np.broadcast_to(np.asarray(zero_point, np.int8), scale.shape)).to_resource()


def make(type_name, name, inputs, outputs, quantized=True, **params):
    return Layer(type_name, name, inputs, outputs, default_params(spec(type_name).params, **params), quantized)


def test_float2int8_shortcuts_give_the_same_codes():
    """The NaN-free path for finite values and the ReLU's two-pass path give the general
    path's codes, ties, float32's 0.49999997 + 0.5 = 1, -0.0, NaN and saturation included."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(200_000) * 80).astype(np.float32)
    x[::7] = np.round(x[::7]) + np.float32(0.5)
    x[:9] = [0.49999997, -0.49999997, -0.0, 1e30, -1e30, 127.5, 126.5, 126.49999, 126.99999]
    assert np.array_equal(float2int8(x, finite=True), float2int8(x))
    expected = float2int8(np.maximum(x, np.float32(0)))
    assert np.array_equal(relu_float2int8(x.copy(), finite=True), expected)
    x[9] = np.nan
    expected = float2int8(np.maximum(x, np.float32(0)))
    assert expected[9] == 0 and np.array_equal(relu_float2int8(x.copy()), expected)


def test_float2int8_rounds_half_away_and_clamps_like_tnn():
    values = np.array([0.5, -0.5, 1.5, -1.5, 2.4999, 127.6, 300, -128.4, -300, np.nan], np.float32)
    assert float2int8(values).tolist() == [1, -1, 2, -2, 2, 127, 127, -128, -128, 0]
    # TNN adds 0.5 in float32: 0.49999997 + 0.5 rounds up to 1.0, so it becomes 1
    assert float2int8(np.float32(0.49999997)).tolist() == 1


def test_quantize_per_channel_with_zero_points_and_a_zero_scale():
    x = np.array([[[[1.0, -1.0]], [[0.25, 2.0]], [[5.0, 5.0]]]], np.float32)
    q = quantize(x, BlobScale(np.array([0.5, 0.25, 0.0], np.float32), np.array([0, 10, 3], np.int8)))
    # channel 0: x / 0.5; channel 1: x / 0.25 + 10; channel 2 has scale 0: TNN writes 0
    assert q.values.tolist() == [[[[2, -2]], [[11, 18]], [[0, 0]]]]
    restored = q.dequantize()
    np.testing.assert_allclose(restored[0, :2], x[0, :2])


def conv_net(x_scale, x_zero, out_scale, out_zero, weights, w_scale, w_zero, bias, activation=0, pad=0):
    out = weights.shape[0]
    conv = make("Convolution", "conv", ["x"], ["y"], group=1, input_channel=weights.shape[1],
                output_channel=out, kernel_h=weights.shape[2], kernel_w=weights.shape[3], stride_h=1,
                stride_w=1, pad_h=pad, pad_w=pad, bias=1, activation_type=activation)
    return Net(inputs={"x": (1, weights.shape[1], 3, 3)}, outputs=["y"], layers=[conv], resources={
        "conv": {"filter": buffer(weights, np.int8), "bias": buffer(bias, np.int32),
                 "zero_point": buffer(w_zero, np.int8), "scale": buffer(w_scale, np.float32)},
        "x" + BLOB_SCALE_SUFFIX: blob_scale(x_scale, x_zero),
        "y" + BLOB_SCALE_SUFFIX: blob_scale(out_scale, out_zero)})


def test_int8_convolution_by_hand():
    weights = np.array([[[[2]], [[-3]]], [[[1]], [[1]]]], np.int8)  # 1x1, 2 in, 2 out
    net = conv_net([0.5], 0, [0.25, 0.5], 0, weights, [0.1, 0.2], [0, 0], [7, -4])
    x = np.zeros((1, 2, 3, 3), np.float32)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = 3.0, 1.0  # int8 codes 6 and 2
    y = Interpreter(net).forward({"x": x})["y"]
    # out 0: acc = 2*6 - 3*2 + 7 = 13; 13 * (0.1 / 0.25) = 5.2 -> 5 -> 5 * 0.25 = 1.25
    # out 1: acc = 6 + 2 - 4 = 4; 4 * (0.2 / 0.5) = 1.6 -> 2 -> 2 * 0.5 = 1.0
    assert y[0, :, 0, 0].tolist() == [1.25, 1.0]
    # elsewhere the input is 0: acc = bias: 7 * 0.4 = 2.8 -> 3; -4 * 0.4 = -1.6 -> -2
    assert y[0, :, 1, 1].tolist() == [0.75, -1.0]


def test_int8_convolution_zero_points_make_padding_zero():
    """Asymmetric input and weights: padding contributes nothing once zero points are removed."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-20, 20, (1, 1, 3, 3)).astype(np.int8)
    net = conv_net([0.1], 5, [0.05], -3, weights, [0.02], [2], [11], pad=1)
    x = rng.uniform(-1, 1, (1, 1, 3, 3)).astype(np.float32)
    y = Interpreter(net).forward({"x": x})["y"]
    q = float2int8(x / np.float32(0.1) + 5).astype(np.int64) - 5
    padded = np.pad(q[0, 0], 1)
    w = weights[0, 0].astype(np.int64) - 2
    acc = np.array([[np.sum(padded[i:i + 3, j:j + 3] * w) for j in range(3)] for i in range(3)]) + 11
    expected = (float2int8(acc.astype(np.float32) * np.float32(0.02 / 0.05) - 3).astype(np.float32) + 3) * 0.05
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-6)


def test_int8_relu6_clips_at_the_code_of_six():
    weights = np.array([[[[1]]]], np.int8)
    net = conv_net([1.0], 0, [0.5], 0, weights, [1.0], [0], [0], activation=2)
    net.inputs["x"] = (1, 1, 3, 3)
    x = np.full((1, 1, 3, 3), 9.0, np.float32)
    x[0, 0, 0, 0] = -4
    y = Interpreter(net).forward({"x": x})["y"]
    assert y[0, 0, 1, 1] == 6.0 and y[0, 0, 0, 0] == 0.0


def two_input_net(type_name, scales, out_scale, zero_points=(0, 0), out_zero=0, **params):
    layer = make(type_name, "op", ["a", "b"], ["y"], **params)
    resources = {f"{b}{BLOB_SCALE_SUFFIX}": blob_scale(s, z) for b, s, z in zip("ab", scales, zero_points)}
    resources["y" + BLOB_SCALE_SUFFIX] = blob_scale(out_scale, out_zero)
    return Net(inputs={"a": (1, 1, 1, 2), "b": (1, 1, 1, 2)}, outputs=["y"], layers=[layer], resources=resources)


def test_int8_add_with_different_input_scales():
    net = two_input_net("Add", [[0.5], [0.1]], [0.2], zero_points=(0, 4))
    a = np.array([[[[1.0, -2.0]]]], np.float32)  # codes 2, -4
    b = np.array([[[[0.44, 0.06]]]], np.float32)  # codes 4 + 4 = 8, round(0.6) + 4 = 5
    y = Interpreter(net).forward({"a": a, "b": b})["y"]
    # 0.5*2 + 0.1*(8-4) = 1.4 -> /0.2 = 7 -> 1.4;  0.5*-4 + 0.1*(5-4) = -1.9 -> -9.5 -> -10 -> -2.0
    np.testing.assert_allclose(y[0, 0, 0], [1.4, -2.0], rtol=1e-6)


def test_int8_concat_requantizes_per_tensor_inputs():
    net = two_input_net("Concat", [[0.5], [0.1]], [0.25], axis=3)
    a = np.array([[[[1.0, -1.5]]]], np.float32)  # codes 2, -3
    b = np.array([[[[0.7, 0.3]]]], np.float32)  # codes 7, 3
    y = Interpreter(net).forward({"a": a, "b": b})["y"]
    # 2*0.5/0.25 = 4; -3*0.5/0.25 = -6; 7*0.1/0.25 = 2.8 -> 3; 3*0.1/0.25 = 1.2 -> 1
    np.testing.assert_allclose(y[0, 0, 0], [1.0, -1.5, 0.75, 0.25])


@pytest.mark.parametrize("shape, zero", [((2, 3, 5, 5), 0), ((2, 3, 5, 5), -4), ((3, 1, 1), 3), ((1, 64, 55, 55), 0)])
def test_int8_concat_tables_give_the_codes_of_the_arithmetic(shape, zero):
    """Concat requantizes through code tables (pairs of codes where the blob pairs up): the
    same codes as TNN's float32 steps on every value, odd sizes, strided blobs, zero points
    and a zero output scale included."""
    from kernels.ops.elementwise import _requantize, _requantized_codes

    rng = np.random.default_rng(sum(shape) + zero)
    codes = rng.integers(-128, 128, shape).astype(np.int8)
    for values in (codes, codes[:, ::-1], codes[..., :1]):
        for out_scale in (0.013, 0.7, 0.0):
            blob = Int8Blob(values, BlobScale(np.array([0.031], np.float32), np.array([zero], np.int8)))
            out = BlobScale(np.array([out_scale], np.float32), np.array([-zero // 2], np.int8))
            with np.errstate(all="ignore"):
                got = _requantized_codes(blob, out)
                want = _requantize(values, 0.031, zero, out_scale, -zero // 2)
            assert got.dtype == np.int8 and got.shape == values.shape and np.array_equal(got, want)


def test_int8_average_pooling_truncates_toward_zero():
    layer = make("Pooling", "pool", ["x"], ["y"], pool_type=1, kernel_h=2, kernel_w=2, stride_h=2,
                 stride_w=2, pad_h=0, pad_w=0)
    net = Net(inputs={"x": (1, 1, 2, 4)}, outputs=["y"], layers=[layer],
              resources={"x" + BLOB_SCALE_SUFFIX: blob_scale(1.0), "y" + BLOB_SCALE_SUFFIX: blob_scale(1.0)})
    x = np.array([[[[1, 2, -1, -2], [2, 2, -2, -2]]]], np.float32)
    y = Interpreter(net).forward({"x": x})["y"]
    assert y.tolist() == [[[[1.0, -1.0]]]]  # 7 / 4 -> 1 and -7 / 4 -> -1


def test_int8_max_pooling_never_goes_below_tnns_starting_value():
    """A window of -128 codes gives -127 without padding too (TNN starts every max at -127;
    MediaPipe's hand landmark model has saturated windows in front of a 2x2 VALID pooling)."""
    layer = make("Pooling", "pool", ["x"], ["y"], pool_type=0, kernel_h=2, kernel_w=2, stride_h=2,
                 stride_w=2, pad_h=0, pad_w=0)
    net = Net(inputs={"x": (1, 1, 2, 4)}, outputs=["y"], layers=[layer],
              resources={"x" + BLOB_SCALE_SUFFIX: blob_scale(1.0), "y" + BLOB_SCALE_SUFFIX: blob_scale(1.0)})
    x = np.array([[[[-128, -200, -3, -128], [-130, -128, -128, -128]]]], np.float32)
    y = Interpreter(net).forward({"x": x})["y"]
    assert y.tolist() == [[[[-127.0, -3.0]]]]


def test_without_quantized_layers_int8_runner_is_the_float_interpreter():
    folder = shared_path("tnn-reference", "squeezenet1.1")
    float_net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    a = Interpreter(float_net).forward({"data_0": x})["softmaxout_1"]
    mixed = tnnformat.load(folder / "b0_w0_t0.quantized.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
    for layer in mixed.layers:  # the same file with every layer float again
        layer.quantized = False
    mixed.resources = float_net.resources
    b = Interpreter(mixed).forward({"data_0": x})["softmaxout_1"]
    assert np.array_equal(a, b)


def test_missing_blob_scale_names_layer_and_blob():
    net = conv_net([0.5], 0, [0.25], 0, np.ones((1, 2, 1, 1), np.int8), [0.1], [0], [0])
    del net.resources["y" + BLOB_SCALE_SUFFIX]
    with pytest.raises(KernelError, match="layer 'conv'.*blob 'y'"):
        Interpreter(net)


def test_blob_scale_resource_round_trips_in_tnns_layout():
    scale = BlobScale(np.array([0.5, 0.25], np.float32), np.array([0, -3], np.int8))
    resource = scale.to_resource()
    assert list(resource) == ["zero_point", "scale", "bias"] and all(b.dims == () for b in resource.values())
    net = Net(inputs={}, outputs=[], layers=[])
    net.set_scale("x", scale)
    again = net.scale_of("x")
    assert again.scale.tolist() == [0.5, 0.25] and again.zero_point.tolist() == [0, -3]
    assert net.blob_scale("x")["bias"].numpy().tolist() == [0, 0] and net.scale_of("y") is None


def test_four_bit_activations_clamp_to_seven():
    """A 4-bit blob keeps TNN's rounding, then its codes are clamped to [-7, 7]: where the input
    is quantized and where an int8 kernel writes it; other blobs and the default are untouched."""
    net = conv_net([0.5], 0, [0.25], 0, np.ones((1, 2, 1, 1), np.int8), [1.0], [0], [0])
    x = np.zeros((1, 2, 3, 3), np.float32)
    x[0, 0, 0, :] = [1.5, -6.0, 20.0]  # codes 3, -12, 40
    x[0, 1, 0, :] = [0.5, -1.0, 40.0]  # codes 1, -2, 80
    plain = Interpreter(net).forward({"x": x})["y"]
    assert plain[0, 0, 0].tolist() == [4.0, -14.0, 31.75]  # acc 4, -14, 120; x 4: 16, -56, 480 -> 127
    assert np.array_equal(Interpreter(net, activation_bits={}).forward({"x": x})["y"], plain)
    narrow_out = Interpreter(net, activation_bits={"y": 4}).forward({"x": x})["y"]
    assert narrow_out[0, 0, 0].tolist() == [1.75, -1.75, 1.75]  # codes 7, -7, 7
    narrow_in = Interpreter(net, activation_bits={"x": 4, "y": 8}).forward({"x": x})["y"]
    assert narrow_in[0, 0, 0].tolist() == [4.0, -9.0, 14.0]  # inputs 3, -7, 7 and 1, -2, 7
    q = quantize(x, BlobScale(np.array([0.5], np.float32), np.array([0], np.int8)), bits=4)
    assert q.values.min() == -7 and q.values.max() == 7


def test_int8_blob_dequantizes_with_its_zero_point():
    blob = Int8Blob(np.array([[10, -10]], np.int8), BlobScale(np.array([0.5], np.float32), np.array([2], np.int8)))
    assert blob.dequantize().tolist() == [[4.0, -6.0]]


REFERENCE = ["b0_w0_t0", "b0_w0_t2", "b2_w1_t0", "b2_w1_t1", "b3_w3_t1"]


@pytest.fixture(scope="module")
def images():
    folder = shared_path("data", "imagenet-calib-100")
    mean = np.array([104, 117, 123], np.float32)
    return {p.name: (np.asarray(Image.open(p).convert("RGB"), np.float32)[..., ::-1] - mean).transpose(2, 0, 1)
            for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("prefix", REFERENCE)
def test_tnn_int8_files_compute_what_tnn_computed(prefix, images):
    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / f"{prefix}.quantized.tnnproto", folder / f"{prefix}.quantized.tnnmodel")
    expected = np.load(folder / f"{prefix}.tnn-outputs.npz")
    interpreter = Interpreter(net)
    names = sorted(expected.files)
    batch = np.stack([images[name] for name in names])
    got = np.concatenate([interpreter.forward({"data_0": batch[i:i + 10]})["softmaxout_1"]
                          for i in range(0, len(names), 10)]).reshape(len(names), -1)
    want = np.stack([expected[name].reshape(-1) for name in names])
    cosine = np.sum(got * want, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert np.sum(got.argmax(1) == want.argmax(1)) == len(names)
    assert cosine.mean() >= 0.9999 and np.abs(got - want).max() < 1e-4


def test_conv_add_fusion_adds_before_rounding_as_tnn_does():
    """TNN fuses a quantized 1x1 convolution and the quantized Add after it (then the ReLU):
    the other operand is added to the requantized accumulator before any rounding."""
    weights = np.array([[[[3]], [[-1]]], [[[2]], [[2]]]], np.int8)
    net = conv_net([0.5], 0, [0.25, 0.5], 0, weights, [0.1, 0.2], [0, 0], [7, -4])
    net.inputs = {"x": (1, 2, 3, 3), "z": (1, 2, 3, 3)}
    net.layers += [make("Add", "add", ["y", "z"], ["s"]), make("ReLU", "relu", ["s"], ["r"])]
    net.outputs = ["r"]
    net.resources.update({"z" + BLOB_SCALE_SUFFIX: blob_scale(0.1, 3), "s" + BLOB_SCALE_SUFFIX: blob_scale(0.2),
                          "r" + BLOB_SCALE_SUFFIX: blob_scale(0.2)})
    interpreter = Interpreter(net)
    assert [(l.type, l.params.get("fusion_type"), l.params["activation_type"]) for l in interpreter.net.layers] \
        == [("Convolution", 1, 1)]
    x = np.zeros((1, 2, 3, 3), np.float32)
    x[0, :, 0, 0] = [1.0, 2.0]  # codes 2, 4
    z = np.full((1, 2, 3, 3), -0.43, np.float32)  # codes round(-4.3) + 3 = -1
    r = interpreter.forward({"x": x, "z": z})["r"]
    # out 0 at (0,0): acc = 3*2 - 4 + 7 = 9; 9 * 0.1/0.2 = 4.5; + (-1 - 3) * 0.1/0.2 = -2 -> 2.5 -> 3 -> 0.6
    # out 1 at (0,0): acc = 4 + 8 - 4 = 8; 8 * 0.2/0.2 = 8; -2 -> 6 -> 1.2
    np.testing.assert_allclose(r[0, :, 0, 0], [0.6, 1.2], rtol=1e-6)
    # elsewhere: acc = bias: 7 * 0.5 - 2 = 1.5 -> 2 -> 0.4; -4 * 1 - 2 = -6 -> ReLU 0
    np.testing.assert_allclose(r[0, :, 1, 1], [0.4, 0.0], atol=1e-7)


@pytest.mark.parametrize("channels, expected_dtype", [(8, np.float32), (256, np.float64)])
def test_int8_convolution_sums_are_exact_in_float32_and_beyond(channels, expected_dtype):
    """Sums that stay below 2**24 run in float32 BLAS, larger ones in float64; both give, before
    rounding, the very floats TNN's int32 sum gives. With 256 channels, half the weights at 127
    and half at -128, partial sums pass 2**24 and then cancel: float32 would lose them."""
    rng = np.random.default_rng(1)
    weights = np.concatenate([np.full((4, channels // 2, 3, 3), 127, np.int8),
                              rng.choice(np.array([-128, 127], np.int8), (4, channels // 2, 3, 3))], axis=1)
    if channels == 256:
        weights[:, channels // 2:] = -128
    bias = rng.integers(-2 ** 20, 2 ** 20, 4).astype(np.int32)
    layer = conv_net([1.0], 3, [1.0], 0, weights, [1.0] * 4, [4] * 4, bias, pad=1).layers[0]
    x_scale = BlobScale(np.array([1.0], np.float32), np.array([3], np.int8))
    centered = weights.reshape(4, -1).astype(np.float64) - 4
    dtype = accumulator_dtype(centered, x_scale, bias)
    assert dtype is expected_dtype
    codes = np.full((2, channels, 3, 3), 126, np.int8)
    codes[0] = rng.choice(np.array([-128, 127, -61], np.int8), (channels, 3, 3))
    multiplier = rng.uniform(1e-4, 1e-3, 4).astype(np.float32).reshape(1, -1, 1, 1)
    got = requantized(convolve(codes.astype(dtype) - dtype(3), arrange_filter(centered.astype(dtype), layer), layer),
                      bias.reshape(1, -1, 1, 1), multiplier)
    padded = np.pad(codes.astype(np.int64) - 3, ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = sum(np.einsum("oc,nchw->nohw", weights[:, :, i, j].astype(np.int64) - 4, padded[:, :, i:i + 3, j:j + 3])
              for i in range(3) for j in range(3))
    expected = (acc + bias.reshape(1, -1, 1, 1)).astype(np.int32).astype(np.float32) * multiplier
    assert got.dtype == np.float32 and np.array_equal(got, expected)
