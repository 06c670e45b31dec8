"""Bad input: one-line errors that name the file, input or node (with op type and opset),
exit code 1 (2 for usage errors), no traceback, nothing written, inputs left as they were."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require

onnx = require("onnx")
from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tnnformat.onnx2tnn import ConversionError, convert  # noqa: E402
from tnnformat.onnx2tnn.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def relu_model(shape=(1, 3, 8, 8), name="x", opset=13, op="Relu", **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, [name], ["y"], name="the_node", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_cli(tmp_path, model, *args):
    path = tmp_path / "m.onnx"
    if isinstance(model, bytes):
        path.write_bytes(model)
    else:
        onnx.save(model, str(path))
    result = CliRunner().invoke(main, [str(path), "-o", str(tmp_path / "out"), *args])
    return result, path


def assert_one_line_failure(result, tmp_path, code=1):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    if code == 1:
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not list(tmp_path.glob("out*"))  # nothing written, not even temporary files
    assert not list(tmp_path.glob(".tmp-*"))


def test_not_onnx(tmp_path):
    result, path = run_cli(tmp_path, b"this is not a protobuf \xff\xfe")
    assert_one_line_failure(result, tmp_path)
    assert f"{path} is not an ONNX model" in result.output


def test_fails_the_checker(tmp_path):
    model = relu_model()
    model.graph.node[0].input[0] = "undefined_tensor"
    result, path = run_cli(tmp_path, model)
    assert_one_line_failure(result, tmp_path)
    assert f"{path} fails the ONNX checker" in result.output and "undefined_tensor" in result.output


def test_dynamic_input_says_how_to_fix_it(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(shape=("batch", 3, "height", "width")))
    assert_one_line_failure(result, tmp_path)
    assert "input 'x' has a dynamic shape (batch,3,height,width)" in result.output
    assert "--input-shape x:1,3,224,224" in result.output
    result, _ = run_cli(tmp_path, relu_model(shape=("batch", 3, "height", "width")), "--input-shape", "x:2,3,5,7")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "out.tnnproto").exists()


def test_unsupported_op_names_node_op_and_opset(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(op="Einsum", opset=12, equation="abcd->abdc"))
    assert_one_line_failure(result, tmp_path)
    assert "node 'the_node' (Einsum, opset 12): op Einsum is not supported by onnx2tnn" in result.output


def test_unsupported_mode_names_node(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(op="LRN", size=4))
    assert_one_line_failure(result, tmp_path)
    assert "node 'the_node' (LRN, opset 13): an even size is not supported" in result.output


def test_usage_errors_exit_2(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(), "--input-shape", "x")
    assert_one_line_failure(result, tmp_path, code=2)
    result, _ = run_cli(tmp_path, relu_model(), "--input-shape", "x:1,0,2,2")
    assert_one_line_failure(result, tmp_path, code=2)


def test_unknown_input_name(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(), "--input-shape", "image:1,3,8,8")
    assert_one_line_failure(result, tmp_path)
    assert "--input-shape names 'image', which is not an input of the model (its inputs: x)" in result.output


def test_missing_file(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path / "none.onnx"), "-o", str(tmp_path / "out")])
    assert_one_line_failure(result, tmp_path)
    assert "none.onnx: cannot read it" in result.output


def test_old_opset(tmp_path):
    result, _ = run_cli(tmp_path, relu_model(opset=6))
    assert_one_line_failure(result, tmp_path)
    assert "opset 6" in result.output and "opset 7" in result.output


def test_success_prints_a_summary(tmp_path):
    result, _ = run_cli(tmp_path, relu_model())
    assert result.exit_code == 0, result.output
    assert "1 ONNX nodes -> 1 TNN layers" in result.output
    assert (tmp_path / "out.tnnproto").exists() and (tmp_path / "out.tnnmodel").exists()


def test_slow_conversions_show_progress(tmp_path, monkeypatch):
    monkeypatch.setattr("tnnformat.importer.cli.PROGRESS_DELAY", 0.0)
    result, _ = run_cli(tmp_path, relu_model())
    assert result.exit_code == 0, result.output
    assert "converting nodes" in result.output


def test_names_with_colons_and_spaces(tmp_path):
    """TF-style names ("input:0") become valid TNN names; --input-shape splits on the last colon."""
    result, _ = run_cli(tmp_path, relu_model(shape=("n", 3, 4, 4), name="input:0"),
                        "--input-shape", "input:0:1,3,4,4")
    assert result.exit_code == 0, result.output
    assert '"input_0 4 1 3 4 4 0 ,"' in (tmp_path / "out.tnnproto").read_text()


def test_the_model_is_not_modified():
    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Identity", ["c"], ["y"]),
             helper.make_node("Dropout", ["y"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 4, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    before = model.SerializeToString()
    net = convert(model)
    assert model.SerializeToString() == before
    assert [(layer.type, layer.outputs) for layer in net.layers] == [("Convolution", ["z"])]


def test_api_error_is_conversion_error():
    with pytest.raises(ConversionError, match=r"^node 'the_node' \(Einsum, opset 12\)"):
        convert(relu_model(op="Einsum", opset=12, equation="abcd->abdc"))


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


def test_tnnformat_does_not_import_onnx():
    result = _python("import sys, tnnformat, tnnformat.onnx2tnn.cli; print('onnx' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_without_onnx_the_cli_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None\n"
            "from tnnformat.onnx2tnn.cli import main\n"
            f"main([{str(tmp_path / 'm.onnx')!r}, '-o', {str(tmp_path / 'out')!r}])")
    result = _python(code)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error: onnx2tnn needs the onnx package: pip install "tnn-quantization[onnx]"'
