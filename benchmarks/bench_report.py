"""What `--report` adds to a run: the demo and SqueezeNet 1.1, with and without the HTML page.

Target (speed issue): at most a second or two on the demo, a few seconds on SqueezeNet (the
matplotlib version added 48-50 s and about 150 s). Each run is a fresh process; best of
`--repeat`.

    python benchmarks/bench_report.py [--repeat 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SQUEEZENET = SHARED / "tnn-reference" / "squeezenet1.1" / "squeezenet1.1"
CASES = {
    "demo (digits, 40 held-out)": ["-p", str(ROOT / "data" / "digits.tnnproto"), "-m", str(ROOT / "data" / "digits.tnnmodel"),
                                   "-i", str(ROOT / "data" / "calibration"), "--eval_path", str(ROOT / "data" / "heldout"),
                                   "-n", "0", "-s", "0.00392156862745098"],
    "SqueezeNet 1.1, -b 2 (100 images)": ["-p", f"{SQUEEZENET}.tnnproto", "-m", f"{SQUEEZENET}.tnnmodel",
                                          "-i", str(SHARED / "data" / "imagenet-calib-100"), "-r", "1",
                                          "-n", "104,117,123", "-s", "1,1,1", "-b", "2"],
}


def seconds(args: List[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                        "from quantization_cmd.cli import main; main()", str(ROOT)] + args,
                       check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for label, flags in CASES.items():
            flags = flags + ["-o", str(Path(folder) / "q")]
            plain = seconds(flags, args.repeat)
            report = seconds(flags + ["--report", str(Path(folder) / "r.html")], args.repeat)
            size = (Path(folder) / "r.html").stat().st_size / 1e6
            print(f"{label:36s} without {plain:6.2f} s, with --report {report:6.2f} s: "
                  f"+{report - plain:5.2f} s ({size:.1f} MB page)", flush=True)


if __name__ == "__main__":
    main()
