"""A model zoo of the common CNN families, built with onnx.helper and seeded random weights:
each converts, and our interpreter computes what onnxruntime computes."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

from conftest import require

onnx = require("onnx")
require("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from onnx_node_tests import compare_with_onnxruntime  # noqa: E402

from tnnformat.onnx2tnn import convert  # noqa: E402


class Builder:
    """Appends nodes with fresh names; weights are seeded random initializers."""

    def __init__(self, opset: int, seed: int = 0):
        self.opset, self.rng = opset, np.random.default_rng(seed)
        self.nodes: List[onnx.NodeProto] = []
        self.initializers: List[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value, prefix: str = "const") -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs):
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, group: int = 1,
             pad: Optional[int] = None, bias: bool = True) -> str:
        fan_in = cin // group * k * k
        weight = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / fan_in)
        inputs = [x, self.const(weight.astype(np.float32), "w")]
        if bias:
            inputs.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "b"))
        pad = k // 2 if pad is None else pad
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4, group=group)

    def bn(self, x: str, channels: int) -> str:
        rng = self.rng
        params = [rng.uniform(0.5, 1.5, channels), rng.standard_normal(channels) * 0.1,
                  rng.standard_normal(channels) * 0.1, rng.uniform(0.5, 1.5, channels)]
        return self.op("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params],
                       epsilon=1e-5)

    def clip(self, x: str, low: float, high: float) -> str:
        if self.opset < 11:
            return self.op("Clip", [x], min=low, max=high)
        return self.op("Clip", [x, self.const(np.float32(low)), self.const(np.float32(high))])

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, np.float32))

    def gemm(self, x: str, k: int, n: int) -> str:
        weight = (self.rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        bias = (self.rng.standard_normal(n) * 0.1).astype(np.float32)
        return self.op("Gemm", [x, self.const(weight, "fc_w"), self.const(bias, "fc_b")], transB=1)

    def model(self, inputs: Dict[str, Sequence[int]], outputs: Sequence[str],
              shapes: Optional[Dict[str, Sequence[int]]] = None) -> onnx.ModelProto:
        """The model; outputs take their inferred types unless `shapes` gives them."""
        graph = helper.make_graph(
            self.nodes, "zoo",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
            [helper.make_empty_tensor_value_info(n) for n in outputs], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info}
        for output in model.graph.output:
            if shapes and output.name in shapes:
                output.CopyFrom(helper.make_tensor_value_info(output.name, TensorProto.FLOAT,
                                                              list(shapes[output.name])))
            else:
                output.CopyFrom(inferred[output.name])
        onnx.checker.check_model(model)
        return model


def flatten_by_shape(b: Builder, x: str) -> str:
    """`x.view(x.size(0), -1)` as exporters write it: Shape, Gather, Unsqueeze, Concat, Reshape."""
    batch = b.op("Gather", [b.op("Shape", [x]), b.const(np.array(0, np.int64))], axis=0)
    if b.opset >= 13:
        batch = b.op("Unsqueeze", [batch, b.const(np.array([0], np.int64))])
    else:
        batch = b.op("Unsqueeze", [batch], axes=[0])
    shape = b.op("Concat", [batch, b.const(np.array([-1], np.int64))], axis=0)
    return b.op("Reshape", [x, shape])


def head(b: Builder, x: str, channels: int, classes: int = 10) -> str:
    return b.op("Softmax", [b.gemm(b.op("Flatten", [b.op("GlobalAveragePool", [x])]), channels, classes)],
                axis=1)


# ---- the families ---------------------------------------------------------------------------
def resnet() -> onnx.ModelProto:
    b = Builder(opset=13)
    x = b.op("Relu", [b.bn(b.conv("input", 3, 16), 16)])

    def block(x, cin, cout, stride):
        y = b.op("Relu", [b.bn(b.conv(x, cin, cout, stride=stride), cout)])
        y = b.bn(b.conv(y, cout, cout), cout)
        shortcut = x if stride == 1 and cin == cout else b.bn(b.conv(x, cin, cout, k=1, stride=stride), cout)
        return b.op("Relu", [b.op("Add", [y, shortcut])])

    x = block(block(x, 16, 16, 1), 16, 32, 2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return b.model({"input": (1, 3, 32, 32)}, [head(b, x, 32)])


def mobilenet_v2() -> onnx.ModelProto:
    b = Builder(opset=11)
    x = b.clip(b.bn(b.conv("input", 3, 16, stride=2), 16), 0, 6)

    def inverted_residual(x, cin, cout, stride, expand=4):
        hidden = cin * expand
        y = b.clip(b.bn(b.conv(x, cin, hidden, k=1, bias=False), hidden), 0, 6)
        y = b.clip(b.bn(b.conv(y, hidden, hidden, stride=stride, group=hidden, bias=False), hidden), 0, 6)
        y = b.bn(b.conv(y, hidden, cout, k=1, bias=False), cout)
        return b.op("Add", [x, y]) if stride == 1 and cin == cout else y

    x = inverted_residual(inverted_residual(x, 16, 16, 1), 16, 24, 2)
    x = b.clip(b.conv(x, 24, 64, k=1), 0, 6)
    x = flatten_by_shape(b, b.op("GlobalAveragePool", [x]))
    logits = b.gemm(x, 64, 10)
    return b.model({"input": (1, 3, 32, 32)}, [logits], {logits: (1, 10)})


def shufflenet_v2() -> onnx.ModelProto:
    b = Builder(opset=13)
    x = b.op("Relu", [b.bn(b.conv("input", 3, 24, stride=2), 24)])
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])

    def branch(x, cin, cout, stride):
        y = b.op("Relu", [b.bn(b.conv(x, cin, cout, k=1, bias=False), cout)])
        y = b.bn(b.conv(y, cout, cout, stride=stride, group=cout, bias=False), cout)
        return b.op("Relu", [b.bn(b.conv(y, cout, cout, k=1, bias=False), cout)])

    def shuffle(x, channels, size):
        y = b.op("Reshape", [x, b.const(np.array([1, 2, channels // 2, size, size], np.int64))])
        y = b.op("Transpose", [y], perm=[0, 2, 1, 3, 4])
        return b.op("Reshape", [y, b.const(np.array([1, channels, size, size], np.int64))])

    def unit(x, channels, size):
        left, right = b.op("Split", [x, b.const(np.array([channels // 2] * 2, np.int64))], outputs=2, axis=1)
        return shuffle(b.op("Concat", [left, branch(right, channels // 2, channels // 2, 1)], axis=1),
                       channels, size)

    def down_unit(x, cin, cout, size):
        left = b.op("Relu", [b.bn(b.conv(b.bn(b.conv(x, cin, cin, stride=2, group=cin, bias=False), cin),
                                          cin, cout // 2, k=1, bias=False), cout // 2)])
        return shuffle(b.op("Concat", [left, branch(x, cin, cout // 2, 2)], axis=1), cout, size)

    x = unit(down_unit(x, 24, 48, 4), 48, 4)
    return b.model({"input": (1, 3, 32, 32)}, [head(b, x, 48)])


def squeezenet() -> onnx.ModelProto:
    b = Builder(opset=10)
    x = b.op("Relu", [b.conv("input", 3, 16, stride=2, pad=0)])
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)

    def fire(x, cin, squeeze, expand):
        s = b.op("Relu", [b.conv(x, cin, squeeze, k=1)])
        return b.op("Concat", [b.op("Relu", [b.conv(s, squeeze, expand, k=1)]),
                               b.op("Relu", [b.conv(s, squeeze, expand, k=3)])], axis=1)

    x = fire(fire(x, 16, 8, 16), 32, 8, 16)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    x = b.op("Dropout", [x], ratio=0.5)
    x = b.op("GlobalAveragePool", [b.op("Relu", [b.conv(x, 32, 10, k=1)])])
    return b.model({"input": (1, 3, 33, 33)}, [b.op("Softmax", [x], axis=1)])


def _se(b: Builder, x: str, channels: int, hard_sigmoid) -> str:
    s = b.op("GlobalAveragePool", [x])
    s = b.op("Relu", [b.conv(s, channels, channels // 4, k=1)])
    return b.op("Mul", [x, hard_sigmoid(b.conv(s, channels // 4, channels, k=1))])


def mobilenet_v3(native: bool) -> onnx.ModelProto:
    """HardSigmoid/HardSwish ops (opset 14), or the decomposed forms older exports write."""
    b = Builder(opset=14 if native else 11, seed=1)
    if native:
        def hard_swish(x):
            return b.op("HardSwish", [x])

        def hard_sigmoid(x):
            return b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)
    else:
        def relu6_x_plus_3(x):
            return b.clip(b.op("Add", [x, b.scalar(3.0)]), 0, 6)

        def hard_swish(x):  # x * relu6(x + 3) / 6
            return b.op("Div", [b.op("Mul", [x, relu6_x_plus_3(x)]), b.scalar(6.0)])

        def hard_sigmoid(x):  # relu6(x + 3) / 6
            return b.op("Div", [relu6_x_plus_3(x), b.scalar(6.0)])
    x = hard_swish(b.bn(b.conv("input", 3, 16, stride=2), 16))
    y = hard_swish(b.bn(b.conv(x, 16, 16, group=16), 16))
    y = b.bn(b.conv(_se(b, y, 16, hard_sigmoid), 16, 16, k=1), 16)
    x = b.op("Add", [x, y])
    x = b.op("Mul", [x, hard_sigmoid(x)])  # hard swish written as x * hardsigmoid(x)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [b.conv(x, 16, 32, k=1)])])
    return b.model({"input": (1, 3, 32, 32)}, [b.gemm(hard_swish(b.gemm(x, 32, 32)), 32, 10)])


def unet() -> onnx.ModelProto:
    b = Builder(opset=13, seed=2)

    def double_conv(x, cin, cout):
        return b.op("Relu", [b.bn(b.conv(b.op("Relu", [b.conv(x, cin, cout)]), cout, cout), cout)])

    def pool(x):
        return b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def resize(x, mode, rule):
        scales = b.const(np.array([1, 1, 2, 2], np.float32))
        return b.op("Resize", [x, "", scales], mode=mode, coordinate_transformation_mode=rule)

    e1 = double_conv("input", 3, 8)
    e2 = double_conv(pool(e1), 8, 16)
    bottom = double_conv(pool(e2), 16, 32)
    d2 = double_conv(b.op("Concat", [resize(bottom, "nearest", "asymmetric"), e2], axis=1), 48, 16)
    weight = (b.rng.standard_normal((16, 8, 2, 2)) * 0.3).astype(np.float32)
    up = b.bn(b.op("ConvTranspose", [d2, b.const(weight), b.const(np.zeros(8, np.float32))],
                   kernel_shape=[2, 2], strides=[2, 2]), 8)
    d1 = double_conv(b.op("Concat", [up, e1], axis=1), 16, 8)
    smooth = resize(d1, "linear", "half_pixel")
    corners = b.op("Resize", [d1, "", "", b.const(np.array([1, 8, 63, 63], np.int64))],
                   mode="linear", coordinate_transformation_mode="align_corners")
    return b.model({"input": (1, 3, 32, 32)},
                   [b.op("Sigmoid", [b.conv(smooth, 8, 1, k=1)]), b.op("Tanh", [corners])])


def small_ops() -> onnx.ModelProto:
    """The remaining importer ops in one network: PRelu, LeakyRelu, Pad, Slice, AveragePool,
    Transpose, Squeeze/Unsqueeze, ReduceMean, Sub/Div with constants, MatMul, Upsample."""
    b = Builder(opset=9, seed=3)
    x = b.op("PRelu", ["input", b.const(b.rng.uniform(0, 0.3, (8, 1, 1)).astype(np.float32))])
    x = b.op("LeakyRelu", [b.conv(x, 8, 8)], alpha=0.2)
    x = b.op("Pad", [x], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")
    x = b.op("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
             count_include_pad=1)
    x = b.op("Slice", [x], starts=[0, 1], ends=[6, 100], axes=[1, 3])
    x = b.op("Upsample", [x, b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    x = b.op("Div", [b.op("Sub", [x, b.scalar(0.5)]), b.const(np.full((1, 6, 1, 1), 2.0, np.float32))])
    t = b.op("Transpose", [x], perm=[0, 2, 3, 1])
    m = b.op("ReduceMean", [t], axes=[1, 2], keepdims=0)
    m = b.op("MatMul", [m, b.const(b.rng.standard_normal((6, 4)).astype(np.float32))])
    m = b.op("Squeeze", [b.op("Unsqueeze", [m], axes=[1])], axes=[1])
    return b.model({"input": (1, 8, 12, 12)}, [b.op("Tanh", [m]), b.op("Sigmoid", [x])])


ZOO = {"resnet": resnet, "mobilenet_v2": mobilenet_v2, "shufflenet_v2": shufflenet_v2,
       "squeezenet": squeezenet, "mobilenet_v3": lambda: mobilenet_v3(native=True),
       "mobilenet_v3_decomposed": lambda: mobilenet_v3(native=False), "unet": unet,
       "small_ops": small_ops}

#: Layer types each family must turn into (fusions and TNN's conventions at work).
EXPECTED_TYPES = {"shufflenet_v2": {"ShuffleChannel", "SplitV"}, "mobilenet_v2": {"ReLU6", "InnerProduct"},
                  "mobilenet_v3": {"HardSwish", "HardSigmoid"},
                  "mobilenet_v3_decomposed": {"HardSwish", "HardSigmoid"},
                  "unet": {"Upsample", "Deconvolution"}, "squeezenet": {"SoftmaxCaffe"}}


def feeds(model: onnx.ModelProto, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]).astype(np.float32)
            for v in model.graph.input}


@pytest.mark.parametrize("family", sorted(ZOO))
def test_matches_onnxruntime(family):
    model = ZOO[family]()
    for agreement in compare_with_onnxruntime(model, feeds(model)):
        assert agreement.same_shape, agreement
        assert agreement.cosine >= 0.99999, agreement
        assert agreement.max_abs_diff <= 1e-4, agreement


@pytest.mark.parametrize("family", sorted(ZOO))
def test_layers_follow_tnn(family):
    """BatchNorm after conv is folded away; fusions produce TNN's own layer types."""
    model = ZOO[family]()
    types = {layer.type for layer in convert(model).layers}
    assert "BatchNormCxx" not in types
    assert EXPECTED_TYPES.get(family, set()) <= types
    assert not types & {"Clip", "Dropout", "Identity"}


def test_names_come_from_onnx():
    """Every blob and layer is named after an ONNX tensor or node, as Netron shows them."""
    model = resnet()
    onnx_names = {n.name for n in model.graph.node} | {o for n in model.graph.node for o in n.output}
    onnx_names |= {i.name for i in model.graph.input}
    net = convert(model)
    assert {layer.name for layer in net.layers} <= onnx_names
    assert set(net.all_blobs()) <= onnx_names
