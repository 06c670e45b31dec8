"""The nine model-zoo networks onnx ships in onnx/backend/test/data/light/ convert and match
onnxruntime: as shipped (every weight a ConstantOfShape fill, so outputs are nearly uniform)
and with each fill replaced by seeded random weights, so that a wrong layer would show."""
from __future__ import annotations

import sys
from typing import Dict
from pathlib import Path

import numpy as np
import pytest

from conftest import require

onnx = require("onnx")
require("onnxruntime")
from onnx import numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from onnx_node_tests import compare_with_onnxruntime  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
          "squeezenet", "vgg19", "zfnet512"]
#: VGG-19 (20 GFLOPs, 550 MB of weights) runs with the slow tests.
SLOW = {"vgg19"}


def load(name: str) -> onnx.ModelProto:
    return onnx.load(str(LIGHT / f"light_{name}.onnx"))


def with_random_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """The model with each ConstantOfShape fill replaced by a random initializer (He-scaled
    normal weights for tensors, uniform [0.5, 1.5] for vectors, so BatchNorm variances stay
    positive), and the logits before each Softmax as extra outputs."""
    rng = np.random.default_rng(seed)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    result = onnx.ModelProto()
    result.CopyFrom(model)
    kept = []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in constants:
            kept.append(node)
            continue
        shape = [int(d) for d in constants[node.input[0]]]
        if len(shape) >= 2:
            fan_in = int(np.prod(shape)) // (shape[0] if shape[0] > 1 else max(shape))
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            value = rng.uniform(0.5, 1.5, shape)
        result.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        if model.ir_version < 4:  # initializers must also be graph inputs before IR 4
            result.graph.input.append(onnx.helper.make_tensor_value_info(
                node.output[0], onnx.TensorProto.FLOAT, shape))
    del result.graph.node[:]
    result.graph.node.extend(kept)
    return with_logits(result)


def softmax_logits(model: onnx.ModelProto) -> Dict[str, str]:
    return {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Softmax"}


def with_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the logits before each Softmax as extra outputs: random and constant
    weights saturate a softmax, the logits say more."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(result).graph.value_info}
    outputs = {o.name for o in result.graph.output}
    for logits in softmax_logits(model).values():
        if logits in inferred and logits not in outputs:
            result.graph.output.append(inferred[logits])
    onnx.checker.check_model(result)
    return result


def image_input(model: onnx.ModelProto, seed: int = 0):
    initializers = {t.name for t in model.graph.initializer}
    (data,) = [v for v in model.graph.input if v.name not in initializers]
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    return {data.name: np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def params():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in MODELS]


@pytest.mark.parametrize("name", params())
def test_matches_onnxruntime(name):
    """Every output agrees, with the shipped weights (constants) and random ones. A softmax
    whose logits are so large that their last float32 bit moves it is left out, its logits
    compared instead: the shipped models' constant weights give equal logits of ~7e9 whose
    last bit depends on BLAS's summation order, in either runtime."""
    shipped = load(name)
    for model in (with_logits(shipped), with_random_weights(shipped)):
        agreements = {a.output: a for a in compare_with_onnxruntime(model, image_input(model))}
        for output, logits in softmax_logits(model).items():
            if logits in agreements and agreements[logits].max_abs_value * 2.0 ** -23 > 1e-4:
                del agreements[output]
        for agreement in agreements.values():
            assert agreement.same_shape, agreement
            assert agreement.cosine >= 0.99999, (name, agreement)
            assert agreement.max_abs_diff <= 1e-4 * max(1.0, agreement.max_abs_value), (name, agreement)
