"""Scaling on SqueezeNet 1.1: `-j 1` against `-j 2` (time, and the very same bytes), and 100
against 2000 calibration inputs (the 100 images again under other names: peak memory and time).

Each run is the command in a fresh process under a wrapper of its own, so that the peak RSS
is that run's alone (its worker processes included: ru_maxrss of the children is the largest
of them). Runs are interleaved so that a load on the machine falls on both sides.

    python benchmarks/bench_scale.py [--repeat 2] [--inputs 2000] [--skip_inputs]
"""
from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SQUEEZENET = SHARED / "tnn-reference" / "squeezenet1.1"
IMAGES = SHARED / "data" / "imagenet-calib-100"
SQUEEZENET_FLAGS = ["-p", str(SQUEEZENET / "squeezenet1.1.tnnproto"), "-m", str(SQUEEZENET / "squeezenet1.1.tnnmodel"),
                    "-r", "1", "-n", "104,117,123", "-s", "1,1,1"]


class Run(NamedTuple):
    seconds: float  # wall
    cpu: float  # user + system seconds of the command and its worker processes
    peak_mb: float  # the largest peak RSS among them
    stdout: str


def peak_run(command: str, args: Sequence[str], cwd: Path = ROOT) -> Run:
    """Run `python -m command args` (this checkout first on the path) in a wrapper process."""
    inner = [sys.executable, "-c", f"import sys; sys.path.insert(0, sys.argv.pop(1)); from {command} import main; "
             "main()", str(ROOT)] + list(args)
    # the wrapper adopts orphaned descendants (PR_SET_CHILD_SUBREAPER, 36: the workers of a
    # fork server) and waits for them, so that their CPU time counts too
    wrapper = ("import ctypes, os, resource, subprocess, sys; ctypes.CDLL(None).prctl(36, 1, 0, 0, 0); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr); print(r.stdout)\n"
               "while True:\n try: os.waitpid(-1, 0)\n except ChildProcessError: break\n"
               "u = resource.getrusage(resource.RUSAGE_CHILDREN); print(u.ru_utime + u.ru_stime, u.ru_maxrss); "
               "sys.exit(r.returncode)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper] + inner, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}{out.stderr[-2000:]}")
    *lines, usage = out.stdout.rstrip().splitlines()
    cpu, peak = usage.split()
    return Run(seconds, float(cpu), int(peak) / 1024, "\n".join(lines))


def renamed_copies(source: Path, folder: Path, count: int) -> Path:
    """`count` symbolic links to the files of `source`, cycling through them under new names."""
    files = sorted(p for p in source.iterdir() if p.is_file())
    folder.mkdir(parents=True)
    for k in range(count):
        original = files[k % len(files)]
        (folder / f"{k:05d}_{original.name}").symlink_to(original)
    return folder


def compare_jobs(flag_sets: List[List[str]], repeat: int, work: Path) -> None:
    print("-j 1 against -j 2 on SqueezeNet, 100 images (interleaved; median of the runs):")
    for flags in flag_sets:
        runs: Dict[int, List[Run]] = {1: [], 2: []}
        for _ in range(repeat):
            for jobs in (1, 2):
                runs[jobs].append(peak_run("quantization_cmd.cli", SQUEEZENET_FLAGS + flags + [
                    "-i", str(IMAGES), "-o", str(work / f"j{jobs}"), "-j", str(jobs)]))
        same = all(filecmp.cmp(work / f"j1{s}", work / f"j2{s}", shallow=False) for s in (".tnnproto", ".tnnmodel"))
        one, two = (sorted(runs[j])[len(runs[j]) // 2] for j in (1, 2))
        print(f"  {' '.join(flags):28s} -j 1 {one.seconds:6.1f} s ({one.cpu:5.1f} CPU-s)  -j 2 {two.seconds:6.1f} s "
              f"({two.cpu:5.1f} CPU-s)  ratio {two.seconds / one.seconds:.2f}  {'same bytes' if same else 'BYTES DIFFER'}")


def compare_inputs(flags: List[str], counts: Sequence[int], work: Path) -> None:
    print(f"calibration inputs on SqueezeNet ({' '.join(flags)}):")
    first = None
    for count in counts:
        folder = renamed_copies(IMAGES, work / f"in{count}", count)
        seconds, _, peak, _ = peak_run("quantization_cmd.cli", SQUEEZENET_FLAGS + flags + [
            "-i", str(folder), "-o", str(work / f"n{count}")])
        first = first or (count, seconds, peak)
        print(f"  {count:5d} inputs: {seconds:7.1f} s ({seconds / count * 1000:5.0f} ms per input, "
              f"x{seconds / first[1]:.1f} for x{count / first[0]:.0f} inputs), peak RSS {peak:5.0f} MB "
              f"({100 * (peak / first[2] - 1):+.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--skip_inputs", action="store_true")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        compare_jobs([["-b", "0", "--skip_fidelity"], ["-b", "0"], ["-b", "2", "-w", "1", "--skip_fidelity"]],
                     args.repeat, work)
        if not args.skip_inputs:
            compare_inputs(["-b", "0", "--skip_fidelity"], (100, args.inputs), work)


if __name__ == "__main__":
    main()
