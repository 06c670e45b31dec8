"""How long the executables take to print `--help`: the single file, the one-folder build and
the installed command, beside each other (target, speed issue: under 1.5 s).

Builds both with packaging/build_binary.sh (needs the [build] extra), then times each
`--help` as the best of `--repeat` fresh runs.

    python benchmarks/bench_binary.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]


def best_seconds(command: List[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with tempfile.TemporaryDirectory() as folder:
        build = ROOT / "packaging" / "build_binary.sh"
        subprocess.run(["bash", str(build), f"{folder}/file"], check=True, capture_output=True, env=env)
        subprocess.run(["bash", str(build), "--onedir", f"{folder}/dir"], check=True, capture_output=True, env=env)
        rows = [("single file", [f"{folder}/file/quantization_cmd"]),
                ("one folder (--onedir)", [f"{folder}/dir/quantization_cmd/quantization_cmd"])]
        installed = shutil.which("quantization_cmd", path=env["PATH"])
        if installed:
            rows.append(("installed entry point", [installed]))
        for label, command in rows:
            print(f"{label:24s} --help in {best_seconds(command + ['--help'], args.repeat):5.2f} s")


if __name__ == "__main__":
    main()
