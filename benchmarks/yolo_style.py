"""A YOLOv8-style detector as an ONNX graph, with seeded random weights.

The parts of YOLOv8n that trouble int8 tools (TNN issue #1947): SiLU convolutions (Conv,
Sigmoid, Mul), C2f blocks (a 1x1 conv split in two, bottlenecks with residual Adds, a
concatenation), an upsampling neck with a Concat, and the anchor-free head with its DFL:
the box branch reshaped to (n, 4, 16, anchors), transposed, softmaxed over the 16 bins and
reduced by a fixed 1x1 convolution with weights 0..15, next to the sigmoid class scores.
Output (n, 4 + classes, anchors), as YOLOv8 exports it.

    python benchmarks/yolo_style.py out.onnx
"""
from __future__ import annotations

import sys
from typing import List

import numpy as np

BINS = 16  # DFL bins per box side


class _Builder:
    def __init__(self, seed: int):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers = [], []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value: np.ndarray, prefix: str = "w") -> str:
        name = self.name(prefix)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: List[str], outputs: int = 1, **attrs) -> List[str]:
        names = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, name=self.name(op), **attrs))
        return names

    def conv(self, x: str, cin: int, cout: int, k: int = 1, stride: int = 1, silu: bool = True) -> str:
        fan_in = cin * k * k
        w = (self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        (y,) = self.node("Conv", [x, self.const(w), self.const(b, "b")], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[k // 2] * 4)
        if not silu:
            return y
        (s,) = self.node("Sigmoid", [y])
        return self.node("Mul", [y, s])[0]

    def c2f(self, x: str, cin: int, cout: int, blocks: int = 1) -> str:
        half = cout // 2
        y = self.conv(x, cin, cout)
        parts = self.node("Split", [y, self.const(np.array([half, half], np.int64), "split")], outputs=2, axis=1)
        for _ in range(blocks):
            inner = self.conv(self.conv(parts[-1], half, half, 3), half, half, 3)
            parts.append(self.node("Add", [parts[-1], inner])[0])
        (cat,) = self.node("Concat", parts, axis=1)
        return self.conv(cat, half * (2 + blocks), cout)

    def head(self, x: str, channels: int, classes: int) -> str:
        """One scale's (n, 4 * BINS + classes, h * w)."""
        box = self.conv(self.conv(x, channels, 32, 3), 32, 4 * BINS, 1, silu=False)
        cls = self.conv(self.conv(x, channels, 32, 3), 32, classes, 1, silu=False)
        (both,) = self.node("Concat", [box, cls], axis=1)
        shape = self.const(np.array([1, 4 * BINS + classes, -1], np.int64), "shape")
        return self.node("Reshape", [both, shape])[0]


def build(size: int = 96, classes: int = 8, seed: int = 0):
    """The ONNX model: input `images` (1, 3, size, size), output `output0` (1, 4 + classes, anchors)."""
    import onnx

    g = _Builder(seed)
    x = g.conv("images", 3, 16, 3, 2)          # /2
    x = g.conv(x, 16, 32, 3, 2)                # /4
    p3 = g.c2f(g.conv(x, 32, 32, 3, 2), 32, 32)   # /8
    p4 = g.c2f(g.conv(p3, 32, 64, 3, 2), 64, 64)  # /16
    (up,) = g.node("Resize", [p4, "", g.const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest")
    (cat,) = g.node("Concat", [up, p3], axis=1)
    n3 = g.c2f(cat, 96, 32)
    (flat,) = g.node("Concat", [g.head(n3, 32, classes), g.head(p4, 64, classes)], axis=2)
    box, cls = g.node("Split", [flat, g.const(np.array([4 * BINS, classes], np.int64), "split")], outputs=2, axis=1)
    anchors = (size // 8) ** 2 + (size // 16) ** 2
    (bins,) = g.node("Reshape", [box, g.const(np.array([1, 4, BINS, anchors], np.int64), "shape")])
    (moved,) = g.node("Transpose", [bins], perm=[0, 2, 1, 3])
    (soft,) = g.node("Softmax", [moved], axis=1)
    dfl = g.const(np.arange(BINS, dtype=np.float32).reshape(1, BINS, 1, 1), "dfl")
    (dist,) = g.node("Conv", [soft, dfl], kernel_shape=[1, 1])
    (dist,) = g.node("Reshape", [dist, g.const(np.array([1, 4, anchors], np.int64), "shape")])
    (scores,) = g.node("Sigmoid", [cls])
    g.nodes.append(onnx.helper.make_node("Concat", [dist, scores], ["output0"], axis=1, name="output"))
    graph = onnx.helper.make_graph(
        g.nodes, "yolo_style",
        [onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, size, size])],
        [onnx.helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 4 + classes, anchors])],
        g.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":  # pragma: no cover
    import onnx

    onnx.save(build(), sys.argv[1])
