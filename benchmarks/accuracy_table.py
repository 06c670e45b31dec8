"""Float and int8 top-1 of SqueezeNet 1.1 for each flag combination TNN's documents list.

Calibrates on ../shared/data/imagenet-calib-100 and evaluates on the same 100 images (the
only labeled ImageNet images here: a small sample, stated with the results), with our
quantization_cmd; where TNN's own tool was run with the same flags
(../shared/tnn-reference), TNN's int8 top-1 from its runtime outputs is shown beside ours.

    python benchmarks/accuracy_table.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "tnn-reference" / "squeezenet1.1"
IMAGES = SHARED / "data" / "imagenet-calib-100"
PREP = ["-r", "1", "-n", "104,117,123", "-s", "1,1,1"]
NAMES = {0: "MIN_MAX", 1: "ADMM", 2: "KL", 3: "ASY_MIN_MAX", 4: "ACIQ_GAUS", 5: "ACIQ_LAPLACE"}
MERGE = {0: "per-channel", 1: "mix", 2: "per-tensor"}
#: (blob, weight, merge) combinations in TNN's doc/cn/user/quantization.md and tools/evaluation/README.md
COMBOS = [(0, 0, 0), (0, 0, 1), (0, 0, 2), (3, 3, 0), (3, 3, 1), (3, 3, 2), (4, 0, 0), (4, 0, 1),
          (5, 0, 0), (2, 1, 0), (2, 1, 1), (2, 1, 2)]
#: TNN's published top-1 for those combinations (their evaluation sets, not ours)
TNN_DOCS = {(0, 0, 0): "52.71 / 54.82", (0, 0, 1): "52.56", (0, 0, 2): "47.29", (3, 3, 0): "52.78",
            (3, 3, 1): "52.94", (3, 3, 2): "47.93", (4, 0, 0): "52.76", (4, 0, 1): "52.63",
            (5, 0, 0): "40.25", (2, 1, 0): "51.58", (2, 1, 1): "55.37", (2, 1, 2): "50.23"}


def command(module: str, *args: str) -> str:
    code = f"import sys; sys.path.insert(0, sys.argv.pop(1)); from quantization_cmd.{module} import main; main()"
    done = subprocess.run([sys.executable, "-c", code, str(ROOT), *args], check=True, capture_output=True, text=True)
    return done.stdout


def top1(proto: Path, model: Path) -> float:
    out = command("eval_cmd", "-p", str(proto), "-m", str(model), "-i", str(IMAGES),
                  "--synsets", str(SHARED / "data" / "imagenet-synsets.txt"), "--json", *PREP)
    return json.loads(out.strip().splitlines()[-1])["top1"]


def tnn_top1(prefix: str) -> str:
    """Top-1 of TNN's runtime outputs for a reference model, where the reference has it."""
    path = MODEL / f"{prefix}.tnn-outputs.npz"
    if not path.exists():
        return ""
    outputs = np.load(path)
    synsets = (SHARED / "data" / "imagenet-synsets.txt").read_text().split()
    hits = [np.argmax(outputs[name]) == synsets.index(name.split("_")[0]) for name in outputs.files]
    return f"{100 * np.mean(hits):.0f}%"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    rows = [("FP32", "", "", f"{100 * top1(MODEL / 'squeezenet1.1.tnnproto', MODEL / 'squeezenet1.1.tnnmodel'):.0f}%",
             tnn_top1("squeezenet1.1"), "53.01 / 55.71", "")]
    with tempfile.TemporaryDirectory() as folder:
        for combo in COMBOS:
            b, w, t = combo
            out = Path(folder) / "q"
            summary = command("cli", "-p", str(MODEL / "squeezenet1.1.tnnproto"), "-m", str(MODEL / "squeezenet1.1.tnnmodel"),
                              "-i", str(IMAGES), "-b", str(b), "-w", str(w), "-t", str(t), "-o", str(out), *PREP)
            agreement = [line for line in summary.splitlines() if line.startswith("top-1 agreement")][0]
            rows.append((NAMES[b], NAMES[w], MERGE[t], f"{100 * top1(Path(f'{out}.tnnproto'), Path(f'{out}.tnnmodel')):.0f}%",
                         tnn_top1("b{}_w{}_t{}".format(*combo)), TNN_DOCS[combo], agreement.split(": ")[1]))
            print(*rows[-1], sep=" | ", file=sys.stderr)
    print("| blob method | weight method | merge | ours: top-1 | TNN's tool: top-1 | TNN's docs: top-1 "
          "| int8 agrees with float |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
