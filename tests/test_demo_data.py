"""The shipped demo: consistent files, the documented float accuracy, and int8 close to it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

import kernels
import tnnformat
from quantization_cmd.cli import main as quantize
from quantization_cmd.eval_cmd import main as evaluate

DATA = Path(__file__).resolve().parents[1] / "data"
PREP = ["-n", "0", "-s", "0.00392156862745098"]
FLOAT_TOP1 = 0.9775  # data/README.md
SCALE = 0.00392156862745098


def held_out_labels() -> dict:
    """data/heldout_labels.txt as file name -> class index."""
    lines = (DATA / "heldout_labels.txt").read_text().splitlines()
    labels = {name: int(label) for name, label in (line.split() for line in lines)}
    assert len(labels) == len(lines), "a held-out file is labeled twice"
    return labels


def read_png(path: Path) -> np.ndarray:
    """An 8-bit grayscale 16x16 PNG as the network's input, preprocessed like `-n 0 -s SCALE`."""
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (16, 16), path
        pixels = np.asarray(image, dtype=np.float32)
    return (pixels - 0) * np.float32(SCALE)


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
    labels = held_out_labels()
    assert sorted(labels) == held_out and len(held_out) == 400
    assert set(labels.values()) == set(range(10))
    calibration = sorted((DATA / "calibration").glob("*.png"))
    assert len(calibration) >= 30
    assert not {p.name for p in calibration} & set(held_out)
    for path in calibration:
        read_png(path)


def test_documented_accuracy_is_the_tested_one():
    readme = (DATA / "README.md").read_text()
    assert re.search(r"float top-1 ([\d.]+)%", readme).group(1) == f"{100 * FLOAT_TOP1:.2f}"


def test_interpreter_reproduces_the_float_accuracy():
    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    labels = held_out_labels()
    names = sorted(labels)
    batch = np.stack([read_png(DATA / "heldout" / name) for name in names])[:, None]
    prob = kernels.Interpreter(net).forward({"input": batch})["prob"].reshape(len(names), 10)
    assert np.allclose(prob.sum(axis=1), 1, atol=1e-5)
    top1 = np.mean(prob.argmax(axis=1) == np.array([labels[name] for name in names]))
    assert top1 == FLOAT_TOP1  # what data/train_digits.py's numpy model scores


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
