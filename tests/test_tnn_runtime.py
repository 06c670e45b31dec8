"""tests/tnn_runtime.py: TNN's own runtime on models with one and with several inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tnnformat
from kernels import Interpreter
from tnnformat import DataType, Layer, Net
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from tnn_runtime import run_tnn, tnn_test_binary

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "data" / "digits.tnnproto"


def _layer(type_name, name, inputs, outputs, **params) -> Layer:
    params = default_params(spec(type_name).params, **params)
    return Layer(type_name, name, list(inputs), list(outputs), params)


@pytest.mark.parametrize("b_shape", [(1, 2, 3, 3), (1, 2, 1, 1)], ids=["same-shape", "broadcast"])
def test_two_inputs_get_their_own_values(tmp_path, b_shape):
    # TNNTest feeds every input from the start of one -ip file; run_tnn must still give a
    # and b their own values (Sub pins the order, the second shape the packing sizes).
    tnn_test_binary()
    net = Net(inputs={"a": (1, 2, 3, 3), "b": b_shape}, outputs=["difference", "sum"],
              layers=[_layer("Add", "sum", ["a", "b"], ["sum"]),
                      _layer("Sub", "difference", ["a", "b"], ["difference"])],
              input_types={"a": DataType.FLOAT, "b": DataType.FLOAT})
    tnnformat.save(net, tmp_path / "add.tnnproto", tmp_path / "add.tnnmodel")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    b = (10 + rng.standard_normal(b_shape)).astype(np.float32)

    out = run_tnn(tmp_path / "add.tnnproto", {"a": a, "b": b})

    assert sorted(out) == ["difference", "sum"]
    assert out["sum"].shape == out["difference"].shape == (1, 2, 3, 3)
    np.testing.assert_allclose(out["sum"], a + b, rtol=0, atol=1e-5)  # TNNTest prints 6 decimals
    np.testing.assert_allclose(out["difference"], a - b, rtol=0, atol=1e-5)


def _digits_check(proto: Path, net: tnnformat.Net) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 16, 16)).astype(np.float32)
    got = run_tnn(proto, {"input": x})
    want = Interpreter(net).forward({"input": x})
    assert got["prob"].shape == want["prob"].shape == (1, 10)
    np.testing.assert_allclose(got["prob"], want["prob"], rtol=0, atol=1e-5)


def test_digits_matches_interpreter():
    tnn_test_binary()
    _digits_check(DIGITS, tnnformat.load(DIGITS, DIGITS.with_suffix(".tnnmodel")))


def test_global_pooling_with_same_padding_keeps_the_size_in_both(tmp_path):
    """Kernel 0 with pad_type 0 (SAME) pools to the input's size in TNN, and in ours (the demo
    had this once, and TNN then read past the InnerProduct's input)."""
    tnn_test_binary()
    net = tnnformat.load(DIGITS, DIGITS.with_suffix(".tnnmodel"))
    net.layer("global_pool").params["pad_type"] = 0
    net.layers, net.outputs = [l for l in net.layers if l.name not in ("fc", "prob")], ["global_pool"]
    tnnformat.save(net, tmp_path / "same.tnnproto", tmp_path / "same.tnnmodel")
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 16, 16)).astype(np.float32)
    ours = Interpreter(net).forward({"input": x})["global_pool"]
    theirs = run_tnn(tmp_path / "same.tnnproto", {"input": x})["global_pool"]
    assert ours.shape == theirs.shape == (1, 32, 4, 4)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_tnn_failure_raises_with_tnn_message(tmp_path):
    # TNN's status 0x1000 makes TNNTest exit 0: the missing output file must still fail.
    tnn_test_binary()
    net = tnnformat.load(DIGITS, DIGITS.with_suffix(".tnnmodel"))
    net.layer("global_pool").params["pad_type"] = 2
    tnnformat.save(net, tmp_path / "bad.tnnproto", tmp_path / "bad.tnnmodel")
    with pytest.raises(AssertionError, match="global_pool"):
        run_tnn(tmp_path / "bad.tnnproto", {"input": np.zeros((1, 1, 16, 16), np.float32)})
