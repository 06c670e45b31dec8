"""quantization_cmd beside onnxruntime's quantize_static, method by method, on this machine.

SqueezeNet 1.1, the 100 calibration images (BGR minus 104, 117, 123), each tool in a fresh
process that decodes the images itself; the runs alternate (ours, theirs, ours, theirs...) so
a change in the machine's load hits both, and each figure is the best of `--repeat` runs.
Peak memory is the child's maximum RSS. onnxruntime gets the opset-13 model (per-axis weights
need it), made once before timing. Comparable settings: onnxruntime quantizes activations per
tensor and weights per channel or per tensor, that is our `-t 1` (mix) and `-t 2`; `-t 0`,
TNN's default (blobs per channel too), is shown beside. The issue's target: ours with the
int8-vs-float table no slower than onnxruntime without one (ratio <= 1.0).

    python benchmarks/bench_quantize.py [--repeat 2] [--only KL]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "tnn-reference" / "squeezenet1.1" / "squeezenet1.1"
IMAGES = SHARED / "data" / "imagenet-calib-100"
TNN_SECONDS, TNN_MB = 203.0, 91.0  # TNN's own tool, -b 2 -w 1 -t 0 (quantization issue)

# a wrapper process of its own, so that its children's peak RSS is this run's alone
WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

ORT_CHILD = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

source, target, method, per_channel, folder = sys.argv[1:6]

class Reader(CalibrationDataReader):
    def __init__(self):
        self.files = iter(sorted(Path(folder).glob("*.png")))

    def get_next(self):
        path = next(self.files, None)
        if path is None:
            return None
        bgr = np.asarray(Image.open(path).convert("RGB"), np.float32)[:, :, ::-1]
        x = (bgr - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)[None]
        return {"data_0": np.ascontiguousarray(x)}

quantize_static(source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel == "1",
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, method))
"""

#: (label, our flags, onnxruntime's method, its per_channel)
ROWS: List[Tuple[str, List[str], str, bool]] = [
    ("MIN_MAX, mix / MinMax per-channel", ["-b", "0", "-w", "0", "-t", "1"], "MinMax", True),
    ("MIN_MAX, per-tensor / MinMax per-tensor", ["-b", "0", "-w", "0", "-t", "2"], "MinMax", False),
    ("MIN_MAX, per-channel (TNN default) / MinMax per-channel", ["-b", "0", "-w", "0", "-t", "0"], "MinMax", True),
    ("KL, mix / Entropy per-channel", ["-b", "2", "-w", "0", "-t", "1"], "Entropy", True),
    ("KL, per-tensor / Entropy per-tensor", ["-b", "2", "-w", "0", "-t", "2"], "Entropy", False),
    ("KL, per-channel (TNN default) / Entropy per-channel", ["-b", "2", "-w", "0", "-t", "0"], "Entropy", True),
    ("PERCENTILE 99.999, mix / Percentile per-channel",
     ["--range", "PERCENTILE", "--range_param", "99.999", "-w", "0", "-t", "1"], "Percentile", True),
]


def timed(command: List[str]) -> Tuple[float, float]:
    """Wall seconds and peak RSS in MB of `command` in a fresh process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER] + command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


def ours(flags: List[str], folder: str) -> List[str]:
    return [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from quantization_cmd.cli import main; main()", str(ROOT),
            "-p", f"{MODEL}.tnnproto", "-m", f"{MODEL}.tnnmodel", "-i", str(IMAGES),
            "-r", "1", "-n", "104,117,123", "-s", "1,1,1", "-o", str(Path(folder) / "q")] + flags


def opset13(folder: str) -> Path:
    import onnx
    from onnx import version_converter

    model = version_converter.convert_version(onnx.load(str(SHARED / "models" / "squeezenet1.1.onnx")), 13)
    model.ir_version = 7
    path = Path(folder) / "squeezenet1.1_opset13.onnx"
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", help="rows whose label contains this")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as folder:
        source = opset13(folder)
        print(f"{'ours / onnxruntime':58s} {'ours, no table':>15s} {'ours + table':>15s} "
              f"{'onnxruntime':>15s} {'ratio':>6s} {'+table':>7s}")
        for label, flags, method, per_channel in ROWS:
            if args.only and args.only not in label:
                continue
            runs = {"skip": [], "table": [], "ort": []}
            for _ in range(args.repeat):
                runs["skip"].append(timed(ours(flags + ["--skip_fidelity"], folder)))
                runs["ort"].append(timed([sys.executable, "-c", ORT_CHILD, str(source), str(Path(folder) / "o.onnx"),
                                          method, "1" if per_channel else "0", str(IMAGES)]))
                runs["table"].append(timed(ours(flags, folder)))
            (skip, skip_mb), (table, table_mb), (ort, ort_mb) = (min(runs[k]) for k in ("skip", "table", "ort"))
            print(f"{label:58s} {skip:6.1f} s {skip_mb:4.0f} MB {table:6.1f} s {table_mb:4.0f} MB "
                  f"{ort:6.1f} s {ort_mb:4.0f} MB {skip / ort:5.2f}x {table / ort:6.2f}x", flush=True)
        print(f"(TNN's own tool, -b 2 -w 1 -t 0: {TNN_SECONDS:.0f} s, {TNN_MB:.0f} MB)")


if __name__ == "__main__":
    main()
