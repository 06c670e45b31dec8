"""ONNX's backend node tests through onnx2tnn and our interpreter: pass/fail per op.

onnx ships one small model per op variant with its inputs and expected outputs
(`onnx.backend.test.case.node.collect_testcases`). For every case whose ops onnx2tnn converts,
we convert the model at the case's input shapes, run it with kernels.Interpreter and compare
with the expected outputs at the case's tolerance. Cases TNN cannot hold are skipped, with the
reason: inputs that are not float32 (TNN models take float images and tensors), and rank-0 or
empty tensors (TNN blobs have at least one dim and one element).

    python benchmarks/onnx_node_tests.py            # print the table
    python benchmarks/onnx_node_tests.py --write    # also write docs/onnx-node-tests.md

Also the comparison helpers the onnx2tnn tests share (onnxruntime against our interpreter).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import onnx  # noqa: E402

from tnnformat.onnx2tnn import ConversionError, convert, supported_ops  # noqa: E402

DOC = os.path.join(REPO, "docs", "onnx-node-tests.md")


# ---- shared by the onnx2tnn tests ----------------------------------------------------------
def tnn_forward(net, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Our interpreter's outputs for `feeds`."""
    import kernels

    return kernels.Interpreter(net).forward(dict(feeds))


def onnxruntime_outputs(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the model zoo's unused initializers are not news
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).reshape(-1), b.astype(np.float64).reshape(-1)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return 1.0 if norms == 0 and not a.any() and not b.any() else float(a @ b / norms)


@dataclass
class Agreement:
    output: str
    max_abs_diff: float
    cosine: float
    same_shape: bool
    max_abs_value: float  # of onnxruntime's output, to judge the difference against


def compare_with_onnxruntime(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                             input_shapes: Optional[Mapping[str, Sequence[int]]] = None
                             ) -> List[Agreement]:
    """Convert `model`, run it in both, and measure how far our outputs are from onnxruntime's."""
    net = convert(model, input_shapes)
    ours = tnn_forward(net, feeds)
    expected = onnxruntime_outputs(model, feeds)
    return [Agreement(name, float(np.abs(ours[name].astype(np.float64) - value).max()),
                      cosine(ours[name], value), ours[name].shape == value.shape,
                      float(np.abs(value).max()))
            for name, value in expected.items()]


# ---- the node test sweep ---------------------------------------------------------------------
@dataclass
class Outcome:
    case: str
    op: str
    status: str  # pass, fail, refused (ConversionError), skip
    detail: str = ""


def primary_op(case) -> str:
    """The op a case tests: its only op, or the one its name starts with (expanded cases)."""
    ops = [node.op_type for node in case.model.graph.node]
    if len(set(ops)) == 1:
        return ops[0]
    name = case.name[len("test_"):].replace("_", "").lower()
    matching = [op for op in ops if name.startswith(op.lower())]
    return max(matching, key=len) if matching else ops[0]


def bake(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` where the named graph inputs are initializers holding `values`."""
    baked = onnx.ModelProto()
    baked.CopyFrom(model)
    kept = [v for v in baked.graph.input if v.name not in values]
    del baked.graph.input[:]
    baked.graph.input.extend(kept)
    baked.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(v), n) for n, v in values.items())
    return baked


def _unfit(arrays) -> Optional[str]:
    """Why these tensors cannot be TNN blobs, or None."""
    for array in arrays:
        if array.dtype != np.float32:
            return f"{array.dtype} data (TNN inputs are float32)"
        if array.ndim == 0 or array.size == 0:
            return "rank-0 or empty tensor"
    return None


def _run_data_set(case, model, feeds, expected) -> Optional[Outcome]:
    """None if our outputs match `expected`, else the failing Outcome."""
    op = primary_op(case)
    try:
        net = convert(model, {name: value.shape for name, value in feeds.items()})
    except ConversionError as exc:
        return Outcome(case.name, op, "refused", str(exc))
    try:
        ours = tnn_forward(net, feeds)
        results = [ours[output.name] for output in model.graph.output]
    except Exception as exc:  # the interpreter's failure is the case's result
        return Outcome(case.name, op, "fail", f"{type(exc).__name__}: {exc}")
    for result, wanted in zip(results, expected):
        if result.shape != wanted.shape:
            return Outcome(case.name, op, "fail", f"shape {result.shape}, expected {wanted.shape}")
        if not np.allclose(result, wanted, rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-5)):
            return Outcome(case.name, op, "fail",
                           f"max abs diff {float(np.abs(result - wanted).max()):.3g}")
    return None


def run_case(case) -> Outcome:
    """Run every data set of a case. The first input is data; later inputs are parameters
    when they are not float tensors (shapes, axes, pads, scalar bounds) or when onnx2tnn needs
    them constant (weights, scales): a TNN model holds those, so they become initializers."""
    op = primary_op(case)
    model = case.model
    names = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    for inputs, outputs in case.data_sets:
        values = dict(zip(names, (np.asarray(a) for a in inputs)))
        params = {n: v for i, (n, v) in enumerate(values.items())
                  if i and (v.dtype != np.float32 or v.ndim == 0)}
        expected = [np.asarray(a) for a in outputs]
        for attempt in ("parameters as inputs", "parameters baked"):
            feeds = {n: v for n, v in values.items() if n not in params}
            reason = _unfit(list(feeds.values()) + expected)
            if reason:
                return Outcome(case.name, op, "skip", reason)
            outcome = _run_data_set(case, bake(model, params), feeds, expected)
            if outcome is None or "must be a constant" not in outcome.detail or len(feeds) < 2:
                break
            params = {n: v for i, (n, v) in enumerate(values.items()) if i}
        if outcome is not None:
            return outcome
    return Outcome(case.name, op, "pass")


def node_cases(ops: Optional[Sequence[str]] = None):
    """The node test cases whose ops onnx2tnn converts (all of a case's ops must be)."""
    from onnx.backend.test.case.node import collect_testcases

    supported = set(supported_ops() if ops is None else ops)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # case generators overflow casts on purpose
        cases = collect_testcases(None)
    return [case for case in cases
            if all(node.op_type in supported and node.domain in ("", "ai.onnx")
                   for node in case.model.graph.node)]


def sweep() -> List[Outcome]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [run_case(case) for case in node_cases()]


def table(outcomes: Sequence[Outcome]) -> str:
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for outcome in outcomes:
        counts[outcome.op][outcome.status] += 1
    statuses = ("pass", "fail", "refused", "skip")
    lines = ["| op | pass | fail | refused | skipped |", "| --- | ---: | ---: | ---: | ---: |"]
    for op in sorted(counts):
        lines.append(f"| {op} | " + " | ".join(str(counts[op][s]) for s in statuses) + " |")
    total = collections.Counter(o.status for o in outcomes)
    lines.append("| **all** | " + " | ".join(f"**{total[s]}**" for s in statuses) + " |")
    return "\n".join(lines)


def details(outcomes: Sequence[Outcome]) -> str:
    rows = [f"| {o.case} | {o.status} | {o.detail.replace('|', '/')} |"
            for o in outcomes if o.status != "pass"]
    return "\n".join(["| case | result | why |", "| --- | --- | --- |"] + rows)


def document(outcomes: Sequence[Outcome]) -> str:
    return f"""# ONNX backend node tests through onnx2tnn

Generated by `python benchmarks/onnx_node_tests.py --write` with onnx {onnx.__version__}.

Every test case of `onnx.backend.test.case.node` whose ops onnx2tnn all converts is converted
at its input shapes and run with our interpreter (`kernels.Interpreter`); it passes when every
output matches the expected one within the case's tolerance (at least rtol 1e-4, atol 1e-5).
A case counts for the op it tests (the `_expanded` variants, written with several ops, count
for the op they expand). The first input is the data; later inputs that are not float tensors
(shapes, axes, pads, scalar bounds), or that onnx2tnn needs constant (weights, scales), become
initializers, as a TNN model holds them.

- **refused**: onnx2tnn stops with a one-line error naming the node and the reason (an
  attribute value or mode TNN's layers cannot reproduce, such as a pad mode or a coordinate
  rule of Resize); nothing is written.
- **skipped**: the case cannot be a TNN model: an input or output that is not float32 (TNN
  takes float tensors; integer and boolean variants of the ops are out of scope), or a rank-0
  or empty tensor (a TNN blob has at least one dim and one element).

{table(outcomes)}

## Cases that do not pass

{details(outcomes)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {os.path.relpath(DOC, REPO)}")
    args = parser.parse_args()
    outcomes = sweep()
    print(table(outcomes))
    if args.write:
        os.makedirs(os.path.dirname(DOC), exist_ok=True)
        with open(DOC, "w") as f:
            f.write(document(outcomes))


if __name__ == "__main__":
    main()
