"""The single-file executable: built with PyInstaller, it quantizes the demo with no Python
environment on PATH, and what it writes loads back."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tnnformat

from conftest import require

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_single_file_binary_quantizes_the_demo(tmp_path):
    require("PyInstaller")
    dist = tmp_path / "dist"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(["bash", str(ROOT / "packaging" / "build_binary.sh"), str(dist)], check=True, env=env,
                   capture_output=True, text=True)
    binary = dist / "quantization_cmd"
    assert binary.is_file() and os.access(binary, os.X_OK)
    work = tmp_path / "work"
    shutil.copytree(ROOT / "data", work / "data")
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}  # no Python on PATH
    result = subprocess.run([str(binary), "-p", "data/digits.tnnproto", "-m", "data/digits.tnnmodel",
                             "-i", "data/calibration", "-n", "0", "-s", "0.00392156862745098", "-o", "out"],
                            cwd=work, env=bare, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "quantized 6 of 8 layers" in result.stdout
    net = tnnformat.load(work / "out.tnnproto", work / "out.tnnmodel")
    assert sum(layer.quantized for layer in net.layers) == 6
    bad = subprocess.run([str(binary), "-p", "nope.tnnproto", "-m", "x", "-i", "data/calibration"],
                         cwd=work, env=bare, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "nope.tnnproto" in bad.stderr
