"""Damaged ONNX files the fuzzer found (benchmarks/fuzz_models.py): each is one
ConversionError naming what is wrong, never a raw exception."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require

onnx = require("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tnnformat.onnx2tnn import ConversionError, convert  # noqa: E402


def gemm_model(input_type=TensorProto.FLOAT) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((2, 4), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="the_gemm")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", input_type, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [weight, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def converted(tmp_path, data: bytes):
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    return convert(str(path))


def test_the_undamaged_model_converts(tmp_path):
    assert converted(tmp_path, gemm_model().SerializeToString()).layers


def test_an_undecodable_node_name_is_replaced(tmp_path):
    data = gemm_model().SerializeToString().replace(b"the_gemm", b"the_g\xffmm")
    net = converted(tmp_path, data)
    assert net.layers[0].name.startswith("the_g")


@pytest.mark.parametrize("damage, fragment", [
    (lambda m: m.graph.initializer[1].__setattr__("raw_data", b"\0" * 16), "tensor 'b' cannot be read"),
    (lambda m: m.graph.initializer[1].__setattr__("data_type", 65), "tensor 'b' has an unknown element type 65"),
    (lambda m: m.graph.input[0].type.tensor_type.__setattr__("elem_type", 65), "element type 65"),
])
def test_damaged_tensors_and_types_are_one_error(tmp_path, damage, fragment):
    model = gemm_model()
    damage(model)
    with pytest.raises(ConversionError, match=fragment):
        converted(tmp_path, model.SerializeToString())
