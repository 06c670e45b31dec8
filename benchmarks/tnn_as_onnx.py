"""The benchmark protos (random weights) as ONNX models, so onnxruntime can run the same work.

Covers the layer types of mobilenet_v2, resnet50 and inception_v3: Convolution (with fused
activations), ReLU, ReLU6, Add, Pooling, Concat, Softmax, Reshape, InnerProduct. Every conv is
given explicit pads from our own shape rule, so the ONNX model computes the same shapes;
`check` compares the two runtimes' outputs, so a benchmark knows the work is the same.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402
import tnnformat  # noqa: E402
from kernels.ops.conv import conv_pads  # noqa: E402
from kernels.ops.pooling import pool_geometry  # noqa: E402
from kernels.random_resources import with_random_resources  # noqa: E402
from kernels.shapes import infer_shapes  # noqa: E402

PROTOS = ROOT.parent / "shared" / "tnn-protos"


def random_net(name: str) -> tnnformat.Net:
    """A benchmark proto with seeded random weights."""
    return with_random_resources(tnnformat.load(PROTOS / f"{name}.tnnproto"))


def to_onnx(net: tnnformat.Net) -> bytes:
    """The net as an ONNX model (opset 13) with a free batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shapes = infer_shapes(net, net.inputs)
    nodes: List = []
    weights: List = []

    def const(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    for layer in net.layers:
        p, ins, outs, kind = layer.params, layer.inputs, layer.outputs, layer.type_str
        res = net.resources.get(layer.name, {})
        if kind == "Convolution":
            n, c, h, w = shapes[ins[0]]
            _, _, top, bottom, left, right = conv_pads(p, h, w)
            filt = res["filter"].numpy().reshape(p["output_channel"], c // p["group"], p["kernel_h"], p["kernel_w"])
            args = [ins[0], const(layer.name + ".w", filt.astype(np.float32))]
            if p["bias"]:
                args.append(const(layer.name + ".b", res["bias"].numpy().reshape(-1).astype(np.float32)))
            act = p.get("activation_type", 0)
            y = outs[0] if act == 0 else layer.name + ".pre"
            nodes.append(helper.make_node("Conv", args, [y], group=p["group"], kernel_shape=[p["kernel_h"], p["kernel_w"]],
                                          strides=[p["stride_h"], p["stride_w"]], pads=[top, left, bottom, right],
                                          dilations=[p["dilation_h"], p["dilation_w"]]))
            if act == 1:
                nodes.append(helper.make_node("Relu", [y], outs))
            elif act == 2:
                nodes.append(helper.make_node("Clip", [y, const(layer.name + ".lo", np.float32(0)),
                                                       const(layer.name + ".hi", np.float32(6))], outs))
            elif act != 0:
                raise ValueError(f"{layer.name}: activation {act}")
        elif kind == "ReLU":
            nodes.append(helper.make_node("Relu", ins, outs))
        elif kind == "ReLU6":
            nodes.append(helper.make_node("Clip", ins + [const(layer.name + ".lo", np.float32(0)),
                                                         const(layer.name + ".hi", np.float32(6))], outs))
        elif kind == "Add":
            nodes.append(helper.make_node("Add", ins, outs))
        elif kind == "Concat":
            nodes.append(helper.make_node("Concat", ins, outs, axis=p["axis"]))
        elif kind in ("Softmax", "SoftmaxCaffe"):
            nodes.append(helper.make_node("Softmax", ins, outs, axis=p["axis"]))
        elif kind == "Pooling":
            n, c, h, w = shapes[ins[0]]
            kh, kw, sh, sw, out_h, out_w, top, left = pool_geometry(p, h, w)
            if (kh, kw, out_h, out_w) == (h, w, 1, 1):
                nodes.append(helper.make_node("GlobalAveragePool" if p["pool_type"] else "GlobalMaxPool", ins, outs))
                continue
            bottom, right = (out_h - 1) * sh + kh - h - top, (out_w - 1) * sw + kw - w - left
            op = "AveragePool" if p["pool_type"] else "MaxPool"
            extra = {"count_include_pad": 0} if p["pool_type"] else {}
            nodes.append(helper.make_node(op, ins, outs, kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[top, left, max(bottom, 0), max(right, 0)], **extra))
        elif kind == "Reshape":
            shape = [0] + list(shapes[outs[0]][1:])
            nodes.append(helper.make_node("Reshape", [ins[0], const(layer.name + ".shape", np.array(shape, np.int64))], outs))
        elif kind == "InnerProduct":
            flat = layer.name + ".flat"
            nodes.append(helper.make_node("Flatten", ins, [flat], axis=p["axis"]))
            weight = res["weight"].numpy().reshape(p["num_output"], -1).astype(np.float32)
            args = [flat, const(layer.name + ".w", weight)]
            if p["has_bias"]:
                args.append(const(layer.name + ".b", res["bias"].numpy().reshape(-1).astype(np.float32)))
            nodes.append(helper.make_node("Gemm", args, outs, transB=1))
        else:
            raise ValueError(f"{layer.name}: layer type {kind} is not exported")
    inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N"] + list(v[1:])) for k, v in net.inputs.items()]
    outputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in net.outputs]
    graph = helper.make_graph(nodes, "tnn", inputs, outputs, initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def check(net: tnnformat.Net, session, batch: Dict[str, np.ndarray]) -> float:
    """Largest difference between our output and onnxruntime's, relative to the output's range."""
    ours = kernels.Interpreter(net).forward(batch)[net.outputs[0]]
    theirs = session.run(None, batch)[0].reshape(ours.shape)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))
