"""The shipped demo: consistent files, the documented float accuracy, and int8 close to it."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import tnnformat
from quantization_cmd.cli import main as quantize
from quantization_cmd.eval_cmd import main as evaluate

DATA = Path(__file__).resolve().parents[1] / "data"
PREP = ["-n", "0", "-s", "0.00392156862745098"]
FLOAT_TOP1 = 0.9775  # data/README.md


def evaluate_json(proto: Path, model: Path) -> dict:
    result = CliRunner().invoke(evaluate, [
        "-p", str(proto), "-m", str(model), "-i", str(DATA / "heldout"),
        "-g", str(DATA / "heldout_labels.txt"), "--json"] + PREP)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_files_are_consistent():
    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    assert net.inputs == {"input": (1, 1, 16, 16)} and net.outputs == ["prob"]
    held_out = sorted(p.name for p in (DATA / "heldout").glob("*.png"))
    labels = dict(line.split() for line in (DATA / "heldout_labels.txt").read_text().splitlines())
    assert sorted(labels) == held_out and len(held_out) == 400
    assert {int(v) for v in labels.values()} == set(range(10))
    assert len(list((DATA / "calibration").glob("*.png"))) >= 30


def test_float_accuracy_is_the_documented_one():
    result = evaluate_json(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    assert result == {"top1": FLOAT_TOP1, "top5": result["top5"], "n": 400}


def test_int8_model_keeps_the_accuracy(tmp_path):
    out = tmp_path / "digits_int8"
    result = CliRunner().invoke(quantize, [
        "-p", str(DATA / "digits.tnnproto"), "-m", str(DATA / "digits.tnnmodel"),
        "-i", str(DATA / "calibration"), "-o", str(out), "--eval_path", str(DATA / "heldout")] + PREP)
    assert result.exit_code == 0, result.output
    assert "top-1 agreement of int8 with float" in result.output
    int8 = evaluate_json(Path(f"{out}.tnnproto"), Path(f"{out}.tnnmodel"))
    assert int8["n"] == 400 and int8["top1"] >= FLOAT_TOP1 - 0.01
