"""Every layer type against an independent reference: onnx's reference evaluator running the
equivalent ONNX op (or a plain numpy loop where ONNX has no equivalent), edge cases included."""
from __future__ import annotations

import itertools
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

from kernels import KERNELS, Interpreter
from tnnformat import Layer, Net, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from conftest import require

onnx = require("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RNG = np.random.default_rng(7)
TESTED = set()


def tnn(type_name: str, inputs: Sequence[str] = ("x",), outputs: Sequence[str] = ("y",), **params) -> Layer:
    TESTED.add(type_name)
    return Layer(type_name, type_name.lower(), list(inputs), list(outputs),
                 default_params(spec(type_name).params, **params))


def run_tnn(layers: List[Layer], feeds: Dict[str, np.ndarray], outputs: Sequence[str],
            resources: Optional[dict] = None) -> List[np.ndarray]:
    net = Net(inputs={k: v.shape for k, v in feeds.items()}, outputs=list(outputs), layers=layers,
              resources=resources or {})
    got = Interpreter(net).forward(feeds)
    return [got[o] for o in outputs]


def run_onnx(nodes, feeds: Dict[str, np.ndarray], outputs: Sequence[str], initializers=(), opset=17,
             engine: str = "reference"):
    """The ONNX graph's outputs from onnx's reference evaluator, or from onnxruntime where
    the reference evaluator is wrong (grouped ConvTranspose, LRN in onnx 1.23)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if engine == "reference":
        return ReferenceEvaluator(model).run(None, feeds)
    ort = require("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(outputs), feeds)


def same(layers, nodes, feeds, resources=None, initializers=(), outputs=("y",), atol=1e-5, engine="reference"):
    ours = run_tnn(layers, feeds, outputs, resources)
    theirs = run_onnx(nodes, feeds, outputs, initializers, engine=engine)
    for a, b in zip(ours, theirs):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def fbuf(array):
    return RawBuffer.from_array(np.asarray(array, np.float32))


# ---- convolution ---------------------------------------------------------------------------
CONV_CASES = [  # (in_c, out_c, group, kernel, stride, pad, dilation, size, activation)
    (3, 4, 1, (3, 3), (1, 1), (1, 1), (1, 1), (7, 9), 0),
    (4, 6, 2, (3, 1), (2, 1), (1, 0), (1, 1), (9, 8), 1),
    (6, 6, 6, (3, 3), (2, 2), (1, 1), (1, 1), (11, 10), 2),  # depthwise, odd sizes
    (4, 8, 4, (3, 3), (1, 1), (0, 0), (1, 1), (6, 6), 0),  # depthwise with multiplier 2
    (3, 5, 1, (2, 2), (3, 3), (0, 0), (1, 1), (10, 11), 0),  # stride > kernel
    (3, 4, 1, (3, 3), (1, 2), (2, 1), (2, 3), (12, 13), 0),  # dilation
    (8, 4, 1, (1, 1), (1, 1), (0, 0), (1, 1), (5, 7), 1),  # 1x1
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution(case):
    in_c, out_c, group, (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w), act = case
    weight, bias = rand(out_c, in_c // group, kh, kw), rand(out_c)
    layer = tnn("Convolution", group=group, input_channel=in_c, output_channel=out_c, kernel_h=kh,
                kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, bias=1, pad_type=-1,
                dilation_h=dh, dilation_w=dw, activation_type=act)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=group, kernel_shape=[kh, kw],
                              strides=[sh, sw], pads=[ph, pw, ph, pw], dilations=[dh, dw])]
    nodes.append({0: helper.make_node("Identity", ["c"], ["y"]), 1: helper.make_node("Relu", ["c"], ["y"]),
                  2: helper.make_node("Clip", ["c", "lo", "hi"], ["y"])}[act])
    same([layer], nodes, {"x": rand(2, in_c, h, w)}, {"convolution": {"filter": fbuf(weight), "bias": fbuf(bias)}},
         {"w": weight, "b": bias, "lo": np.float32(0), "hi": np.float32(6)})


@pytest.mark.parametrize("shape, kernel, stride, dilation", [
    ((2, 5, 9, 11), (3, 3), (1, 1), (1, 1)), ((1, 7, 10, 13), (3, 3), (2, 2), (1, 1)),
    ((3, 4, 17, 12), (5, 3), (2, 1), (2, 3)), ((1, 3, 6, 6), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 9), (3, 3), (3, 3), (1, 1)), ((2, 300, 61, 60), (3, 3), (2, 2), (1, 1))])  # the last: many blocks
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 2, 0, 1), (3, 0, 2, 4), (-1, 1, 0, -2)])
def test_depthwise_gives_the_sums_over_whole_tensors_bit_for_bit(shape, kernel, stride, dilation, pads):
    """Both layouts, stride phases, the wide grid and cache-sized blocks change no bit: the same
    products added in the same order as one multiply-add per kernel offset over whole tensors."""
    from kernels.ops.conv import _depthwise_channels_last, _depthwise_planes, _padded

    x, filt = rand(*shape), rand(shape[1], *kernel)
    unpadded, x = x, _padded(x, *pads)
    shape = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    out = ((shape[2] - dh * (kh - 1) - 1) // sh + 1, (shape[3] - dw * (kw - 1) - 1) // sw + 1)
    expected = None
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dh:i * dh + sh * (out[0] - 1) + 1:sh, j * dw:j * dw + sw * (out[1] - 1) + 1:sw]
            term = patch * filt[None, :, i, j, None, None]
            expected = term if expected is None else expected + term
    assert np.array_equal(_depthwise_planes(x, filt, (0, 0, 0, 0), out, stride, dilation), expected)
    if min(pads) >= 0:  # the padding as the phases' own zeros (negative pads are cropped first)
        assert np.array_equal(_depthwise_planes(unpadded, filt, pads, out, stride, dilation), expected)
    assert np.array_equal(_depthwise_channels_last(unpadded, filt, pads, out, stride, dilation), expected)


@pytest.mark.parametrize("pad_type, size, stride", [(0, (7, 8), 2), (0, (6, 6), 3), (1, (9, 7), 2)])
def test_convolution_same_and_valid_padding(pad_type, size, stride):
    """TNN's SAME pads the extra row and column at the end (ONNX's SAME_UPPER)."""
    weight = rand(2, 3, 3, 3)
    layer = tnn("Convolution", group=1, input_channel=3, output_channel=2, kernel_h=3, kernel_w=3,
                stride_h=stride, stride_w=stride, pad_h=0, pad_w=0, bias=0, pad_type=pad_type)
    auto = "SAME_UPPER" if pad_type == 0 else "VALID"
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[stride] * 2, auto_pad=auto)
    same([layer], [node], {"x": rand(1, 3, *size)}, {"convolution": {"filter": fbuf(weight)}}, {"w": weight})


@pytest.mark.parametrize("group, stride, pad, kernel, size", [(1, 2, 1, 3, (4, 5)), (2, 3, 0, 2, (3, 3)),
                                                               (1, 1, 0, 1, (5, 4)), (4, 2, 2, 5, (3, 4))])
def test_deconvolution(group, stride, pad, kernel, size):
    in_c, out_c = 4, 4 * (2 if group == 1 else 1)
    weight, bias = rand(in_c, out_c // group, kernel, kernel), rand(out_c)
    layer = tnn("Deconvolution", group=group, input_channel=in_c, output_channel=out_c, kernel_h=kernel,
                kernel_w=kernel, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, bias=1, pad_type=-1)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=group, kernel_shape=[kernel] * 2,
                            strides=[stride] * 2, pads=[pad] * 4)
    same([layer], [node], {"x": rand(2, in_c, *size)},
         {"deconvolution": {"filter": fbuf(weight), "bias": fbuf(bias)}}, {"w": weight, "b": bias}, engine="ort")


# ---- pooling --------------------------------------------------------------------------------
POOL_CASES = [  # (pool_type, kernel, stride, pad, ceil, size)
    (0, (3, 3), (2, 2), (0, 0), 0, (13, 13)), (0, (3, 3), (2, 2), (0, 0), 1, (14, 12)),
    (1, (3, 3), (2, 2), (1, 1), 0, (7, 8)), (1, (2, 3), (2, 1), (1, 1), 1, (10, 6)),
    (0, (2, 2), (3, 3), (0, 0), 0, (11, 10)), (1, (3, 3), (1, 1), (1, 1), 0, (5, 5)),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling(case):
    kind, (kh, kw), (sh, sw), (ph, pw), ceil, size = case
    layer = tnn("Pooling", pool_type=kind, kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph,
                pad_w=pw, pad_type=-1, ceil_mode=ceil)
    op = "MaxPool" if kind == 0 else "AveragePool"
    extra = {} if kind == 0 else {"count_include_pad": 0}
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[kh, kw], strides=[sh, sw],
                            pads=[ph, pw, ph, pw], ceil_mode=ceil, **extra)
    same([layer], [node], {"x": rand(2, 3, *size)})


def _windows_by_loop(x, axis, kernel, stride, out, pad, combine, fill):
    """Each window along `axis` combined value by value, in order, padding left out."""
    moved, windows = np.moveaxis(x, axis, -1), []
    for k in range(out):
        low, high = max(k * stride - pad, 0), min(k * stride - pad + kernel, moved.shape[-1])
        value = np.full(moved.shape[:-1], fill, x.dtype) if low >= high else moved[..., low].copy()
        for i in range(low + 1, high):
            value = combine(value, moved[..., i])
        windows.append(value)
    return np.moveaxis(np.stack(windows, -1), -1, axis)


@pytest.mark.parametrize("kernel, stride, pad, ceil", [(3, 2, 0, 1), (3, 1, 1, 0), (2, 2, 0, 0), (5, 3, 2, 1),
                                                       (1, 2, 0, 0), (3, 3, 1, 1)])
def test_pooling_windows_equal_a_loop_bit_for_bit(kernel, stride, pad, ceil):
    """Pooling is separable, and along the last axis the windows are combined from every
    position of the whole array and picked (kernels/ops/pooling.py): max and sums equal the
    plain loop's to the bit, in float32 and on int8 codes, with padding and ceil mode."""
    from kernels.ops.pooling import _window_reduce, pool_geometry

    rng = np.random.default_rng(kernel * 10 + stride)
    p = dict(kernel_h=kernel, kernel_w=kernel, stride_h=stride, stride_w=stride, pad_type=-1, pad_h=pad,
             pad_w=pad, ceil_mode=ceil)
    for x in (rng.standard_normal((2, 3, 17, 23)).astype(np.float32),
              rng.integers(-128, 128, (2, 3, 17, 23)).astype(np.int8)):
        g = pool_geometry(p, 17, 23)
        for average in ([False, True] if x.dtype == np.float32 else [False]):
            combine, fill = (np.add, x.dtype.type(0)) if average else (np.maximum, x.dtype.type(-127))
            rows = _windows_by_loop(x, 2, kernel, stride, g[4], pad, combine, fill)
            expected = _windows_by_loop(rows, 3, kernel, stride, g[5], pad, combine, fill)
            got = _window_reduce(x, g, average, fill)
            assert got.dtype == x.dtype and got.tobytes() == expected.tobytes(), (x.dtype, average)


@pytest.mark.parametrize("kind", [0, 1])
def test_global_pooling(kind):
    layer = tnn("Pooling", pool_type=kind, kernel_h=0, kernel_w=0, stride_h=1, stride_w=1, pad_h=0, pad_w=0, pad_type=-1)
    node = helper.make_node("GlobalMaxPool" if kind == 0 else "GlobalAveragePool", ["x"], ["y"])
    same([layer], [node], {"x": rand(2, 5, 7, 6)})


def test_adaptive_pooling_against_a_loop():
    x = rand(1, 2, 7, 10)
    layer = tnn("Pooling", pool_type=1, kernel_h=0, kernel_w=0, stride_h=1, stride_w=1, pad_h=0, pad_w=0,
                is_adaptive=1, output_h=3, output_w=4)
    got = run_tnn([layer], {"x": x}, ["y"])[0]
    expected = np.zeros((1, 2, 3, 4), np.float32)
    for i, j in itertools.product(range(3), range(4)):
        r0, r1 = i * 7 // 3, -(-(i + 1) * 7 // 3)
        c0, c1 = j * 10 // 4, -(-(j + 1) * 10 // 4)
        expected[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ---- activations ----------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", {}, [("Relu", ["x"], {})]),
    ("ReLU6", {}, [("Clip", ["x", "zero", "six"], {})]),
    ("Clip", {"min": -0.5, "max": 0.75}, [("Clip", ["x", "lo", "hi"], {})]),
    ("Sigmoid", {}, [("Sigmoid", ["x"], {})]),
    ("Tanh", {}, [("Tanh", ["x"], {})]),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, [("HardSigmoid", ["x"], {"alpha": 0.2, "beta": 0.5})]),
    ("HardSwish", {"alpha": float(np.float32(1 / 6)), "beta": 0.5}, [("HardSwish", ["x"], {})]),
    ("Swish", {}, [("Sigmoid", ["x"], {}, "s"), ("Mul", ["x", "s"], {})]),
    ("Elu", {"alpha": 0.7}, [("Elu", ["x"], {"alpha": 0.7})]),
    ("Abs", {}, [("Abs", ["x"], {})]),
    ("Exp", {}, [("Exp", ["x"], {})]),
    ("Neg", {}, [("Neg", ["x"], {})]),
    ("Dropout", {}, [("Identity", ["x"], {})]),
    ("Softplus", {}, [("Softplus", ["x"], {})]),
]


@pytest.mark.parametrize("type_name, params, onnx_nodes", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation(type_name, params, onnx_nodes):
    nodes = [helper.make_node(op, inputs, [spec_[0] if spec_ else "y"], **attrs)
             for op, inputs, attrs, *spec_ in onnx_nodes]
    constants = {"zero": np.float32(0), "six": np.float32(6), "lo": np.float32(-0.5), "hi": np.float32(0.75)}
    same([tnn(type_name, **params)], nodes, {"x": rand(2, 3, 4, 5) * 4}, initializers=constants)


@pytest.mark.parametrize("shared", [0, 1])
def test_prelu(shared):
    slope = rand(1 if shared else 3) * 0.3
    layer = tnn("PReLU", channel_shared=shared)
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    same([layer], [node], {"x": rand(2, 3, 4, 4)}, {"prelu": {"slope": fbuf(slope)}},
         {"s": slope.reshape(-1, 1, 1) if not shared else slope})


# ---- element-wise binary ops --------------------------------------------------------------------
BINARY = [("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Maximum", "Max"), ("Minimum", "Min")]


@pytest.mark.parametrize("tnn_type, onnx_op", BINARY)
@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 3, 1, 1)),
                                    ((1, 3, 1, 5), (2, 1, 4, 1)), ((2, 3, 4, 5), (5,))])
def test_binary_broadcasting(tnn_type, onnx_op, shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1]) + (3 if tnn_type == "Div" else 0)
    layer = tnn(tnn_type, inputs=("a", "b"))
    same([layer], [helper.make_node(onnx_op, ["a", "b"], ["y"])], {"a": a, "b": b})


@pytest.mark.parametrize("tnn_type, onnx_op", BINARY)
@pytest.mark.parametrize("const_shape, dims", [((3,), ()), ((1,), ()), ((1, 3, 4, 5), (1, 3, 4, 5)),
                                               ((4, 5), ())])
@pytest.mark.parametrize("side", [0, 1])
def test_binary_with_a_constant_from_the_model(tnn_type, onnx_op, const_shape, dims, side):
    """A constant without dims is placed as TNN places it (per channel, per element, ...)."""
    x, const = rand(2, 3, 4, 5), rand(*const_shape) + 3
    layer = tnn(tnn_type, weight_input_index=side)
    resource = {layer.name: {"element": RawBuffer.from_array(const, dims=dims)}}
    placed = {(3,): (1, 3, 1, 1), (4, 5): (1, 1, 4, 5)}.get(const_shape, const.shape)
    placed = const.reshape(placed)
    order = ["c", "x"] if side == 0 else ["x", "c"]
    same([layer], [helper.make_node(onnx_op, order, ["y"])], {"x": x}, resource, {"c": placed})


def test_concat():
    layer = tnn("Concat", inputs=("a", "b", "c"), axis=1)
    feeds = {"a": rand(2, 3, 4, 5), "b": rand(2, 1, 4, 5), "c": rand(2, 2, 4, 5)}
    same([layer], [helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1)], feeds)
    layer = tnn("Concat", inputs=("a", "b"), axis=-1)
    same([layer], [helper.make_node("Concat", ["a", "b"], ["y"], axis=-1)], {"a": rand(2, 3, 5), "b": rand(2, 3, 2)})


# ---- fully connected ------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [0, 1])
def test_inner_product(bias):
    weight, b = rand(7, 3 * 4 * 5), rand(7)
    layer = tnn("InnerProduct", num_output=7, has_bias=bias, transpose=0, axis=1)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    same([layer], nodes, {"x": rand(2, 3, 4, 5)}, {"innerproduct": {"weight": fbuf(weight), "bias": fbuf(b)}},
         {"w": weight, "b": b if bias else np.zeros(7, np.float32)})


def test_matmul_two_inputs_and_constant():
    same([tnn("MatMul", inputs=("a", "b"))], [helper.make_node("MatMul", ["a", "b"], ["y"])],
         {"a": rand(2, 3, 4, 5), "b": rand(2, 3, 5, 6)})
    weight = rand(5, 6)
    layer = tnn("MatMul", weight_position=1)
    same([layer], [helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": rand(2, 4, 5)},
         {"matmul": {"weight": fbuf(weight)}}, {"w": weight})


# ---- normalization --------------------------------------------------------------------------
@pytest.mark.parametrize("type_name", ["Softmax", "SoftmaxCaffe"])
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax(type_name, axis):
    same([tnn(type_name, axis=axis)], [helper.make_node("Softmax", ["x"], ["y"], axis=axis)], {"x": rand(2, 3, 4, 5)})


@pytest.mark.parametrize("type_name", ["BatchNormCxx", "Scale"])
def test_per_channel_affine(type_name):
    scale, bias = rand(3), rand(3)
    params = {"axis": 1, "num_axes": 1, "bias_term": 1} if type_name == "Scale" else {}
    layer = tnn(type_name, **params)
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    same([layer], nodes, {"x": rand(2, 3, 4, 5)}, {layer.name: {"scale": fbuf(scale), "bias": fbuf(bias)}},
         {"s": scale.reshape(1, 3, 1, 1), "b": bias.reshape(1, 3, 1, 1)})


def test_lrn():
    layer = tnn("LRN", alpha=0.001, beta=0.75, bias=1.5, size=5)
    node = helper.make_node("LRN", ["x"], ["y"], alpha=0.001, beta=0.75, bias=1.5, size=5)
    same([layer], [node], {"x": rand(2, 7, 4, 5) * 3}, engine="ort")


def test_normalize():
    layer = tnn("Normalize", across_spatial=0, epsilon=1e-12, channel_shared=1, axis=1, p=2)
    same([layer], [helper.make_node("LpNormalization", ["x"], ["y"], axis=1, p=2)], {"x": rand(2, 6, 3, 4)})


# ---- shape and data movement --------------------------------------------------------------------
def test_reshape_and_flatten():
    layer = tnn("Reshape", axis=0, num_axes=3, shape=[0, -1, 4], reshape_type=0)
    same([layer], [helper.make_node("Reshape", ["x", "s"], ["y"])], {"x": rand(2, 3, 4, 5)},
         initializers={"s": np.array([0, -1, 4], np.int64)})
    same([tnn("Flatten", axis=2)], [helper.make_node("Flatten", ["x"], ["y"], axis=2)], {"x": rand(2, 3, 4, 5)})


def test_reshape_in_tensorflow_order():
    """reshape_type 1 reshapes the NHWC view of the data."""
    x = rand(2, 3, 4, 6)
    layer = tnn("Reshape", axis=0, num_axes=4, shape=[2, 6, 2, 6], reshape_type=1)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "s"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 3, 1, 2])]
    same([layer], nodes, {"x": x}, initializers={"s": np.array([2, 2, 6, 6], np.int64)})


def test_permute_squeeze_unsqueeze():
    same([tnn("Permute", orders=[0, 3, 1, 2])], [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])],
         {"x": rand(2, 3, 4, 5)})
    same([tnn("Squeeze", axes=[2])], [helper.make_node("Squeeze", ["x", "a"], ["y"])], {"x": rand(2, 3, 1, 5)},
         initializers={"a": np.array([2], np.int64)})
    same([tnn("Unsqueeze", axes=[1, -1])], [helper.make_node("Unsqueeze", ["x", "a"], ["y"])], {"x": rand(2, 3)},
         initializers={"a": np.array([1, -1], np.int64)})


def test_shuffle_channel():
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s2"], ["y"])]
    same([tnn("ShuffleChannel", group=3)], nodes, {"x": rand(2, 6, 4, 5)},
         initializers={"s1": np.array([2, 3, 2, 4, 5], np.int64), "s2": np.array([2, 6, 4, 5], np.int64)})


@pytest.mark.parametrize("slices", [[1, 4, 1], []])
def test_splitv(slices):
    outputs = ("o1", "o2", "o3")
    layer = tnn("SplitV", outputs=outputs, axis=1, slices=slices)
    x = rand(2, 6 if not slices else 6, 3, 3)
    inputs = ["x", "s"] if slices else ["x"]
    node = helper.make_node("Split", inputs, list(outputs), axis=1)
    same([layer], [node], {"x": x}, initializers={"s": np.array(slices, np.int64)} if slices else (),
         outputs=outputs)


@pytest.mark.parametrize("begins, ends, axes, strides", [
    ([1, 0], [3, -1], [1, 3], [1, 2]), ([-3], [2**31 - 1], [2], [1]), ([4], [-2**31], [3], [-2]), ([0], [5], [1], [2])])
def test_strided_slice_v2(begins, ends, axes, strides):
    layer = tnn("StridedSliceV2", begins=begins, ends=ends, axes=axes, strides=strides)
    tensors = {"b": np.array(begins, np.int64), "e": np.array(ends, np.int64), "a": np.array(axes, np.int64),
               "s": np.array(strides, np.int64)}
    same([layer], [helper.make_node("Slice", ["x", "b", "e", "a", "s"], ["y"])], {"x": rand(2, 5, 6, 7)},
         initializers=tensors)


def test_strided_slice_v1_end_zero_means_whole_axis():
    layer = tnn("StridedSlice", begins=[0, 2, 0, 1], ends=[0, 5, 0, 0], strides=[1, 1, 2, 2])
    got = run_tnn([layer], {"x": (x := rand(2, 6, 5, 7))}, ["y"])[0]
    np.testing.assert_array_equal(got, x[:, 2:5, ::2, 1::2])


@pytest.mark.parametrize("mode, onnx_mode", [(0, "constant"), (1, "reflect"), (2, "edge")])
def test_pad(mode, onnx_mode):
    layer = tnn("Pad", pad_t=1, pad_b=2, pad_l=0, pad_r=3, pad_c_begin=0, pad_c_end=0, mode=mode, value=0.5)
    pads = np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64)
    inputs = ["x", "p", "v"] if mode == 0 else ["x", "p"]
    node = helper.make_node("Pad", inputs, ["y"], mode=onnx_mode)
    same([layer], [node], {"x": rand(2, 3, 4, 5)}, initializers={"p": pads, "v": np.float32(0.5)})


@pytest.mark.parametrize("mode, align, onnx_mode, rule, scale", [
    (1, 0, "nearest", "asymmetric", 2.0), (2, 0, "linear", "half_pixel", 2.0),
    (2, 1, "linear", "align_corners", 2.0), (2, 0, "linear", "half_pixel", 3.0)])
def test_upsample(mode, align, onnx_mode, rule, scale):
    layer = tnn("Upsample", mode=mode, scale_h=scale, scale_w=scale, align_corners=align)
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode=onnx_mode, coordinate_transformation_mode=rule,
                            nearest_mode="floor")
    same([layer], [node], {"x": rand(2, 3, 4, 5)}, initializers={"s": np.array([1, 1, scale, scale], np.float32)})


@pytest.mark.parametrize("type_name, onnx_op", [("ReduceMean", "ReduceMean"), ("ReduceSum", "ReduceSum"),
                                                ("ReduceMax", "ReduceMax")])
@pytest.mark.parametrize("axes, keep", [([1], 1), ([2, 3], 0), ([-1], 1)])
def test_reductions(type_name, onnx_op, axes, keep):
    layer = tnn(type_name, keep_dims=keep, axes=axes)
    if onnx_op == "ReduceSum":  # axes are an input from opset 13, an attribute for the others until 18
        node, constants = helper.make_node(onnx_op, ["x", "a"], ["y"], keepdims=keep), {"a": np.array(axes, np.int64)}
    else:
        node, constants = helper.make_node(onnx_op, ["x"], ["y"], keepdims=keep, axes=axes), {}
    same([layer], [node], {"x": rand(2, 3, 4, 5)}, initializers=constants)


def test_const():
    value = rand(1, 3, 1, 1)
    layers = [tnn("Const", inputs=(), outputs=("c",), dims=[1, 3, 1, 1]), tnn("Add", inputs=("x", "c"))]
    same(layers, [helper.make_node("Add", ["x", "c"], ["y"])], {"x": rand(2, 3, 4, 5)},
         {"const": {"weight": fbuf(value)}}, {"c": value})


def test_every_required_layer_type_has_a_kernel_and_a_test():
    required = {"Convolution", "Deconvolution", "Pooling", "ReLU", "ReLU6", "Clip", "PReLU", "Sigmoid", "Tanh",
                "HardSwish", "HardSigmoid", "Swish", "Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Concat",
                "InnerProduct", "MatMul", "Softmax", "SoftmaxCaffe", "BatchNormCxx", "Scale", "Reshape",
                "Flatten", "Permute", "Squeeze", "Unsqueeze", "Upsample", "Pad", "SplitV", "StridedSlice",
                "StridedSliceV2", "ShuffleChannel", "Dropout", "LRN", "Normalize", "ReduceMean", "ReduceSum",
                "ReduceMax", "Const"}
    assert required <= set(KERNELS)
    assert required <= TESTED, sorted(required - TESTED)
