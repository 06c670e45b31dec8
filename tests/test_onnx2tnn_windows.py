"""Sliding windows at random shapes, strides, dilations and pads: onnx2tnn picks TNN pad types
by simulating TNN's rules, so whatever it converts must compute what onnxruntime computes.
Conv, ConvTranspose and MaxPool always convert (explicit Pad or crop layers cover what pad
types cannot); Resize and AveragePool are refused, with the reason, where TNN differs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

onnx = require("onnx")
require("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from onnx_node_tests import compare_with_onnxruntime  # noqa: E402

from tnnformat.onnx2tnn import ConversionError  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_node(op: str, shape, initializers=(), opset: int = 13, **attrs) -> onnx.ModelProto:
    inputs = ["x"] + [t.name for t in initializers]
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_empty_tensor_value_info("y")], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    onnx.checker.check_model(model)
    return model


def assert_matches(model: onnx.ModelProto, shape, seed: int = 0) -> None:
    feeds = {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}
    for agreement in compare_with_onnxruntime(model, feeds):
        assert agreement.same_shape, agreement
        assert agreement.max_abs_diff <= 1e-4 * max(1.0, agreement.max_abs_value), agreement


@st.composite
def windows(draw, max_kernel=4):
    kernel = [draw(st.integers(1, max_kernel)) for _ in range(2)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = [draw(st.integers(0, k - 1)) for k in kernel * 2]
    size = [draw(st.integers(max(kernel) + 1, 12)) for _ in range(2)]
    attrs = dict(kernel_shape=kernel, strides=strides, auto_pad=auto_pad)
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    return size, attrs


@SETTINGS
@given(windows(), st.integers(1, 2), st.booleans())
def test_conv(window, dilation, grouped):
    size, attrs = window
    if attrs["auto_pad"].startswith("SAME"):
        dilation = 1  # onnxruntime has no dilated SAME convolution
    channels, group = (4, 4) if grouped else (3, 1)
    kernel = attrs["kernel_shape"]
    size = [s + (dilation - 1) * (max(kernel) - 1) for s in size]  # the dilated kernel fits
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((6 if not grouped else 4, channels // group, *kernel))
                                     .astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(weight.dims[0]).astype(np.float32), "b")
    shape = (1, channels, *size)
    model = one_node("Conv", shape, [weight, bias], group=group, dilations=[dilation] * 2, **attrs)
    assert_matches(model, shape)


@SETTINGS
@given(windows(), st.sampled_from(["MaxPool", "AveragePool"]), st.integers(0, 1), st.integers(0, 1))
def test_pool(window, op, ceil_mode, count_include_pad):
    size, attrs = window
    same = attrs["auto_pad"].startswith("SAME")
    assume(not (same and any(k < s for k, s in zip(attrs["kernel_shape"], attrs["strides"]))))  # onnxruntime fails
    if op == "AveragePool":
        attrs["count_include_pad"] = count_include_pad
    shape = (1, 2, *size)
    model = one_node(op, shape, ceil_mode=ceil_mode, **attrs)
    try:
        assert_matches(model, shape)
    except ConversionError as exc:  # max pooling converts but for one ceil_mode corner
        assert (op == "AveragePool" and "cannot reproduce" in str(exc)) or "drops a last window" in str(exc)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(0, 1), st.integers(2, 6))
def test_conv_transpose(kernel, stride, pad, output_padding, size):
    pad, output_padding = min(pad, kernel - 1), min(output_padding, stride - 1)
    assume(stride * (size - 1) + kernel - 2 * pad > 0)
    weight = numpy_helper.from_array(np.random.default_rng(2).standard_normal((3, 2, kernel, kernel))
                                     .astype(np.float32), "w")
    shape = (1, 3, size, size + 1)
    bias = numpy_helper.from_array(np.arange(2, dtype=np.float32), "b")
    model = one_node("ConvTranspose", shape, [weight, bias], kernel_shape=[kernel] * 2,
                     strides=[stride] * 2, pads=[pad] * 4, output_padding=[output_padding] * 2)
    assert_matches(model, shape)


@SETTINGS
@given(st.integers(2, 9), st.integers(2, 9), st.sampled_from([0.5, 1.5, 2.0, 3.0]),
       st.sampled_from(["nearest", "linear"]),
       st.sampled_from(["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]))
def test_resize(height, width, scale, mode, rule):
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    shape = (1, 2, height, width)
    model = one_node("Resize", shape, [roi, scales], mode=mode, coordinate_transformation_mode=rule)
    try:
        assert_matches(model, shape)
    except ConversionError as exc:
        assert "reads other inputs than TNN's Upsample" in str(exc)


@SETTINGS
@given(st.lists(st.tuples(st.integers(-12, 12), st.integers(-12, 12), st.sampled_from([-2, -1, 1, 2, 3])),
                min_size=1, max_size=3), st.permutations([1, 2, 3]))
def test_slice(bounds, axes):
    shape = (1, 5, 6, 7)
    starts, ends, steps = zip(*bounds)
    axes = axes[:len(bounds)]
    tensors = [numpy_helper.from_array(np.array(v, np.int64), n)
               for n, v in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))]
    model = one_node("Slice", shape, tensors)
    if 0 in [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]:
        with pytest.raises(ConversionError, match="not expressible"):
            assert_matches(model, shape)
    else:
        assert_matches(model, shape)


def test_conv_transpose_output_padding():
    """PyTorch's 2x upsampling ConvTranspose2d(k=3, s=2, p=1, output_padding=1): TNN's
    converter writes pad_type 3, which TNN's runtime computes as ONNX does."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 2, 3, 3))
                                     .astype(np.float32), "w")
    shape = (1, 3, 4, 4)
    model = one_node("ConvTranspose", shape, [weight], kernel_shape=[3, 3], strides=[2, 2],
                     pads=[1, 1, 1, 1], output_padding=[1, 1])
    assert_matches(model, shape)
