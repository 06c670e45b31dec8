"""One line on what the figures ran on: cores, load, and the kernels numpy's OpenBLAS runs.

Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) in the environment, for older
OpenBLAS builds that fail on their CPUs; a current numpy then runs older kernels than it would
pick (on an AMD EPYC with AVX-512, its AVX2 Haswell kernels instead of SkylakeX: GEMMs 1.8x
slower). The benchmarks' children inherit the setting, so the line says which kernels ran.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.threads import openblas_kernels  # noqa: E402


def describe() -> str:
    forced = os.environ.get("OPENBLAS_CORETYPE")
    line = (f"cores: {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, "
            f"OpenBLAS kernels: {openblas_kernels() or 'not found'}, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    if forced:
        line += (f"\nnote: OPENBLAS_CORETYPE={forced} is set and chooses those kernels; numpy's own choice on this "
                 "machine may be faster (unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE to measure it)")
    return line
