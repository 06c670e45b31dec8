"""ONNX's backend node tests, for every op onnx2tnn converts, through onnx2tnn and our
interpreter (benchmarks/onnx_node_tests.py runs the same sweep and writes the table in
docs/onnx-node-tests.md). A case passes, is refused by the converter with a one-line reason,
or is out of scope because TNN cannot hold its tensors (non-float32 or empty data); it never
computes a wrong answer."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import require

require("onnx")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import onnx_node_tests  # noqa: E402

CASES = onnx_node_tests.node_cases()


def test_every_supported_op_has_cases():
    from tnnformat.onnx2tnn import supported_ops

    assert set(supported_ops()) <= {onnx_node_tests.primary_op(case) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case):
    outcome = onnx_node_tests.run_case(case)
    if outcome.status == "skip":  # listed as out of scope in docs/onnx-node-tests.md
        assert outcome.detail.endswith("(TNN inputs are float32)") or outcome.detail == "rank-0 or empty tensor"
        return
    assert outcome.status in ("pass", "refused"), outcome.detail
    if outcome.status == "refused":
        assert outcome.detail.startswith("node '") and "\n" not in outcome.detail
