"""No partial output, ever: writes are atomic, a proto always has its own model beside it,
failures (a full disk, a kill) leave no temporary file, and the file at fault is named."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tnnformat
from tnnformat import TnnFormatError, write_atomically

from conftest import require
from test_robust_cli import DATA, PREP, REPO, assert_one_line_error, calibration, model_args, quantize

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.argv[0] = "quantization_cmd"
from quantization_cmd.cli import main
main()
"""


def quantize_with_file_limit(limit: int, args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-c", LIMITED.format(limit=limit), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    result = quantize_with_file_limit(8000, model_args() + ["-i", calibration(tmp_path)] + PREP, tmp_path)
    assert_one_line_error(result, "model_quantized.tnnmodel", "File too large")
    assert not list(tmp_path.glob("model_quantized*")) and not leftovers(tmp_path)


def test_a_full_disk_while_writing_the_report_names_the_report(tmp_path):
    result = quantize_with_file_limit(20000, model_args() + ["-i", calibration(tmp_path), "--report", "r.html",
                                                             "--dump_table", "t.txt"] + PREP, tmp_path)
    assert_one_line_error(result, "r.html", "File too large")
    assert not (tmp_path / "r.html").exists() and not leftovers(tmp_path)


def test_special_files_are_refused_before_any_work(tmp_path):
    """`--report /dev/full` used to fail after the model was written, naming no file."""
    for flag in ("--report", "--dump_table"):
        result = quantize(model_args() + ["-i", calibration(tmp_path), flag, "/dev/full"] + PREP, tmp_path)
        assert_one_line_error(result, flag, "/dev/full", "not a regular file", code=2)
        assert not list(tmp_path.glob("model_quantized*"))


def test_a_failed_write_removes_its_temporary_files(tmp_path):
    def fail(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    (tmp_path / "b").write_text("old")
    with pytest.raises(OSError) as info:
        write_atomically([(tmp_path / "a", lambda f: f.write(b"complete")), (tmp_path / "b", fail)])
    assert info.value.filename == str(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"] and (tmp_path / "b").read_text() == "old"


def test_save_names_the_target_when_the_folder_is_missing(tmp_path):
    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    with pytest.raises(TnnFormatError, match="nowhere/x.tnnmodel: cannot write"):
        tnnformat.save(net, tmp_path / "nowhere" / "x.tnnproto", tmp_path / "nowhere" / "x.tnnmodel")


SAVER = """
import sys, tnnformat
first = tnnformat.load(sys.argv[1], sys.argv[2])
second = tnnformat.load(sys.argv[3], sys.argv[4])
print("ready", flush=True)
while True:
    for net in (first, second):
        tnnformat.save(net, "out.tnnproto", "out.tnnmodel")
"""


def test_sigkill_during_saves_never_leaves_a_temporary_file_or_a_mismatched_pair(tmp_path):
    """Two different models saved in turn under one name, killed at random moments: every
    time, the folder holds no temporary file and the proto (if any) loads with its model."""
    reference = tmp_path / "int8"
    run = quantize(model_args() + ["-i", calibration(tmp_path), "-o", reference, "--skip_fidelity"] + PREP, tmp_path)
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "saves"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = random.Random(15)
    for _ in range(12):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, DATA / "digits.tnnproto", DATA / "digits.tnnmodel",
                                  f"{reference}.tnnproto", f"{reference}.tnnmodel"], cwd=folder, env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.2))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        saver.stdout.close()
        assert not leftovers(folder)
        if (folder / "out.tnnproto").exists():
            tnnformat.load(folder / "out.tnnproto", folder / "out.tnnmodel")  # a mismatch would not load


def test_onnx2tnn_names_its_output_not_a_temporary_file(tmp_path):
    require("onnx")
    from click.testing import CliRunner

    from tnnformat.onnx2tnn.cli import main as onnx2tnn
    from test_onnx2tnn_damaged import gemm_model

    (tmp_path / "m.onnx").write_bytes(gemm_model().SerializeToString())
    result = CliRunner().invoke(onnx2tnn, [str(tmp_path / "m.onnx"), "-o", str(tmp_path / "nowhere" / "x")])
    assert result.exit_code == 1, result.output
    assert "nowhere/x.tnnmodel: cannot write" in result.output and ".tmp" not in result.output
