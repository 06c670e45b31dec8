"""quantization_cmd on SqueezeNet 1.1 with the 100 images, beside TNN's own tool.

Target (quantization issue): `-b 2 -w 1 -t 0` (KL + ADMM, per channel) under 30 s and 1 GB;
TNN's C++ tool takes 203 s here (peak 91 MB). Runs the command in a fresh process and reports
its wall time and peak memory, with and without the int8-vs-float comparison TNN does not do.

    python benchmarks/bench_quantize.py
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TNN_SECONDS, TNN_MB = 203.0, 91.0


def run(extra, folder: str) -> tuple:
    model = SHARED / "tnn-reference" / "squeezenet1.1"
    args = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from quantization_cmd.cli import main; main()", str(ROOT),
            "-p", str(model / "squeezenet1.1.tnnproto"), "-m", str(model / "squeezenet1.1.tnnmodel"),
            "-i", str(SHARED / "data" / "imagenet-calib-100"), "-r", "1", "-n", "104,117,123", "-s", "1,1,1",
            "-b", "2", "-w", "1", "-t", "0", "-o", str(Path(folder) / "q")] + extra
    # a wrapper process of its own, so that its children's peak RSS is this run's alone
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper] + args, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for label, extra in [("-b 2 -w 1 -t 0 (what TNN's tool does)", ["--skip_fidelity"]),
                             ("-b 2 -w 1 -t 0 + int8-vs-float table", [])]:
            seconds, peak = run(extra, folder)
            print(f"{label}: {seconds:6.1f} s ({TNN_SECONDS / seconds:4.1f}x faster than TNN's "
                  f"{TNN_SECONDS:.0f} s; target 30 s), peak memory {peak:5.0f} MB "
                  f"(TNN {TNN_MB:.0f} MB; target 1024 MB)")


if __name__ == "__main__":
    main()
