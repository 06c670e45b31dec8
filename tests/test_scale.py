"""Scaling: memory that does not grow with the calibration inputs, `-j N` and `--dask` giving
the bytes of one process, and their flag errors."""
from __future__ import annotations

import pickle
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import numpy as np
import pytest

import tnnformat
from quantization_cmd import from_tnn_flags, quantize
from quantization_cmd.inputs import Preprocess, read_input_file
from kernels.threads import map_batch_parts
from quantization_cmd.shards import LOCAL, Processes, Work

from conftest import require, shared_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_scale import SQUEEZENET_FLAGS, peak_run, renamed_copies  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = ["-p", str(DATA / "digits.tnnproto"), "-m", str(DATA / "digits.tnnmodel"), "-n", "0", "-s", "0.00392156862745098"]
TNN_FLAGS = [(b, w, t) for b in (0, 2, 3, 4, 5) for w in (0, 1, 3) for t in (0, 1, 2)]


def model_bytes(prefix: Path) -> bytes:
    return prefix.with_suffix(".tnnproto").read_bytes() + prefix.with_suffix(".tnnmodel").read_bytes()


def cli(args: List[str], cwd: Path, command: str = "quantization_cmd.cli") -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
                           f"from {command} import main; main()"] + args, capture_output=True, text=True, cwd=cwd)


def test_peak_memory_of_2000_inputs_is_that_of_100(tmp_path):
    """Streaming: 2000 inputs (the held-out images again under other names) peak within 10%
    of 100, with the KL pass (histograms) and the int8 check, beside the decoded inputs kept
    for the later passes by design (a fixed cap, KEPT_BYTES: here all 2000 16x16 images as
    uint8 pixels, 0.5 MB)."""
    from quantization_cmd.cli_support import KEPT_BYTES

    kept_mb = min(KEPT_BYTES, 2000 * 16 * 16) / 2 ** 20
    peaks = {}
    for count in (100, 2000):
        folder = renamed_copies(DATA / "heldout", tmp_path / f"in{count}", count)
        run = peak_run("quantization_cmd.cli", DEMO + ["-b", "2", "-i", str(folder), "-o", str(tmp_path / f"q{count}")])
        assert f"{count} samples from {count} files" in run.stdout
        peaks[count] = run.peak_mb
    assert peaks[2000] <= 1.1 * peaks[100] + kept_mb, peaks


@pytest.fixture(scope="module")
def demo_inputs() -> np.ndarray:
    prep = Preprocess(scale=(1 / 255,))
    return np.concatenate([read_input_file(f, (1, 1, 16, 16), prep) for f in sorted((DATA / "calibration").glob("*.png"))])


@pytest.fixture(scope="module")
def two_workers():
    with Processes(2) as runner:
        yield runner


def test_two_processes_give_the_bytes_of_one_for_every_tnn_flag_set(tmp_path, demo_inputs, two_workers):
    """-b 0..5 x -w 0..2 x -t 0..2 on the demo (40 inputs: three shards), the int8 check too."""
    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    for b, w, t in TNN_FLAGS:
        results = [quantize(net, {"input": demo_inputs}, from_tnn_flags(b, w, t), fidelity_samples={"input": demo_inputs},
                            jobs=jobs) for jobs in (1, two_workers)]
        for k, result in enumerate(results):
            result.save(str(tmp_path / f"m{k}"))
        assert model_bytes(tmp_path / "m0") == model_bytes(tmp_path / "m1"), (b, w, t)
        one, two = (r.fidelity for r in results)
        assert [(e.name, e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in one.blobs + one.outputs] == \
            [(e.name, e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in two.blobs + two.outputs], (b, w, t)
        assert (one.samples, one.top1_agree) == (two.samples, two.top1_agree) == (40, two.top1_agree)
    assert two_workers._pool is not None  # the shards did run in the workers


@pytest.mark.parametrize("extra", [["--tune", "--adaround", "--bias_correction", "-b", "2", "-w", "1"],
                                   ["--range", "QUANTILE_MEDIAN", "--equalize"], ["--range", "PERCENTILE", "-t", "2"]])
def test_two_processes_give_the_bytes_and_table_of_one_on_files(tmp_path, extra):
    """The command on files: the passes that add their own statistics (sample limits, float
    sums of weights' inputs, per-sample lists), the same model and the same printed table."""
    tables = []
    for jobs in ("1", "2"):
        result = cli(DEMO + extra + ["-i", str(DATA / "calibration"), "--eval_path", str(DATA / "heldout"),
                                     "-o", f"j{jobs}", "-j", jobs], tmp_path)
        assert result.returncode == 0, result.stderr
        tables.append(result.stdout.split("quantized ")[0])
    assert model_bytes(tmp_path / "j1") == model_bytes(tmp_path / "j2")
    assert tables[0] == tables[1] and "top-1 agreement" in tables[0]
    evaluated = [cli(["-p", "j1.tnnproto", "-m", "j1.tnnmodel", "-i", str(DATA / "heldout"), "-g",
                      str(DATA / "heldout_labels.txt"), "-n", "0", "-s", "0.00392156862745098", "--json", "-j", jobs],
                     tmp_path, "quantization_cmd.eval_cmd").stdout for jobs in ("1", "2")]
    assert evaluated[0] == evaluated[1] and '"n": 400' in evaluated[0]


@pytest.mark.parametrize("flags", [["-b", "0", "-t", "0"], ["-b", "2", "-w", "1", "-t", "1"]])
def test_two_processes_give_the_bytes_of_one_on_squeezenet(tmp_path, flags):
    images = renamed_copies(shared_path("data", "imagenet-calib-100"), tmp_path / "images", 40)
    for jobs in ("1", "2"):
        result = cli(SQUEEZENET_FLAGS + flags + ["-i", str(images), "--skip_fidelity", "-o", f"j{jobs}", "-j", jobs],
                     tmp_path)
        assert result.returncode == 0, result.stderr
    assert model_bytes(tmp_path / "j1") == model_bytes(tmp_path / "j2")


def test_dask_cluster_gives_the_bytes_of_a_local_run(tmp_path):
    distributed = require("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for name, extra in (("dask", ["--dask", cluster.scheduler_address]), ("local", [])):
            result = cli(DEMO + ["-b", "5", "-w", "1", "--bias_correction", "-i", str(DATA / "calibration"),
                                 "-o", name] + extra, tmp_path)
            assert result.returncode == 0, result.stderr
        assert model_bytes(tmp_path / "dask") == model_bytes(tmp_path / "local")
        evaluated = cli(["-p", "dask.tnnproto", "-m", "dask.tnnmodel", "-i", str(DATA / "heldout"), "-g",
                         str(DATA / "heldout_labels.txt"), "-n", "0", "-s", "0.00392156862745098", "--json",
                         "--dask", cluster.scheduler_address], tmp_path, "quantization_cmd.eval_cmd")
        assert evaluated.returncode == 0 and '"n": 400' in evaluated.stdout, evaluated.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, fragments", [
    (["-j", "0"], ["'-j' / '--jobs'", "0 is not in the range"]),
    (["-j", "two"], ["'-j' / '--jobs'"]),
    (["--dask", "no-port"], ["'--dask'", "tcp://host:port"]),
    (["--dask", f"tcp://127.0.0.1:{_closed_port()}"], ["'--dask'", "cannot reach a Dask scheduler"]),
    (["--dask", "tcp://127.0.0.1:1", "-j", "2"], ["either -j", "--dask"]),
])
def test_parallel_flag_errors_are_one_line_and_write_nothing(tmp_path, args, fragments):
    result = cli(DEMO + ["-i", str(DATA / "calibration")] + args, tmp_path)
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and all(f in error[0] for f in fragments), result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_dask_not_installed_is_a_flag_error(tmp_path):
    result = subprocess.run([sys.executable, "-c", "import sys; sys.modules['distributed'] = None; "
                             f"sys.path.insert(0, {str(DATA.parent)!r}); from quantization_cmd.cli import main; main()"]
                            + DEMO + ["-i", str(DATA / "calibration"), "--dask", "tcp://127.0.0.1:1"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "'--dask'" in result.stderr and "pip install" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_statistics_on_every_core_give_the_bytes_of_one_thread(tmp_path, demo_inputs, monkeypatch):
    """The statistics pass runs its shards here one per core at once (ranges and histogram
    counts shared by the threads): the bytes of one thread, for methods of each statistic."""
    from kernels import threads
    from quantization_cmd import shards

    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    started = []
    pool = shards.ThreadPoolExecutor
    monkeypatch.setattr(shards, "ThreadPoolExecutor", lambda *a, **k: started.append(1) or pool(*a, **k))
    for b, w, t in [(0, 0, 0), (2, 1, 2), (3, 3, 1), (4, 0, 0)]:
        for k, one_core in enumerate((True, False)):
            monkeypatch.setattr(threads, "_one_core", one_core)
            quantize(net, {"input": demo_inputs}, from_tnn_flags(b, w, t)).save(str(tmp_path / f"m{k}"))
        assert model_bytes(tmp_path / "m0") == model_bytes(tmp_path / "m1"), (b, w, t)
    assert started, "the statistics pass never ran in threads"


def _doubled_in_parts(context, shard: np.ndarray) -> np.ndarray:
    """A shard's work that itself splits a batch over the cores (as a batch-8 forward does)."""
    return np.concatenate(map_batch_parts(lambda part: part["x"] * context, {"x": shard}))


def test_in_process_shards_run_side_by_side_and_may_split_their_batches():
    """Shards run in this process one per core in threads; a shard that splits its batch
    again runs its parts in its own thread (no second pool, no wait on the BLAS lock the
    pool's starter holds), and the results come in shard order."""
    shards = [np.arange(8, dtype=np.float32) + 8 * k for k in range(6)]
    results: List[np.ndarray] = []
    runner = threading.Thread(target=lambda: results.extend(LOCAL.map(Work(lambda shared: shared, _doubled_in_parts),
                                                                       np.float32(2), shards)), daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the shards deadlocked"
    assert [r.tolist() for r in results] == [(2 * s).tolist() for s in shards]


def test_later_passes_take_the_kept_inputs_and_decode_only_the_rest(monkeypatch):
    """The screening read keeps the first decoded inputs that fit the budget; later passes
    (and subsets of the same items) decode only the others and give the same batches. Kept
    arrays are read-only, images' as their uint8 pixels; a shard sent to a worker process
    carries those of its own items."""
    from quantization_cmd import cli_support

    files = sorted((DATA / "calibration").glob("*.png"))[:10]
    shape, prep = (1, 1, 16, 16), Preprocess(scale=(1 / 255,))
    decoded: List[str] = []
    real = cli_support.read_decoded
    monkeypatch.setattr(cli_support, "read_decoded", lambda path, *args: decoded.append(path.name) or real(path, *args))
    one = int(np.prod(shape))  # bytes of one image's pixels
    samples = cli_support.Samples([{"input": f} for f in files], {"input": shape}, prep, size=4,
                                  kept=cli_support.KeptArrays(4 * one))
    samples.screen()
    assert len(decoded) == 10 and samples.kept.used == 4 * one
    fresh = np.concatenate([read_input_file(f, shape, prep) for f in files])
    for source in (samples, samples.rebatched(3)):
        decoded.clear()
        np.testing.assert_array_equal(np.concatenate([batch["input"] for batch in source]), fresh)
        assert sorted(decoded) == [f.name for f in files[4:]]
    with pytest.raises(ValueError):
        samples.kept.get({"input": files[0]})["input"][...] = 0
    assert samples.kept.get({"input": files[4]}) is None
    (_, head, _), (_, tail, _) = samples.shards(1)[:2]  # items 0-3 (all kept) and 4-7 (none)
    # the head carries its four arrays (and their keys, which hold the paths) beyond the tail,
    # with at most 128 bytes of pickle's own a kept array
    keys = sum(len(str(f)) for f in files[:4])
    assert 4 * one < len(pickle.dumps(head)) - len(pickle.dumps(tail)) < 4 * one + keys + 4 * 128
    assert all(pickle.loads(pickle.dumps(tail)).kept.get({"input": f}) is None for f in files[4:8])
    decoded.clear()
    sent = pickle.loads(pickle.dumps(head))
    np.testing.assert_array_equal(np.concatenate([batch["input"] for batch in sent]), fresh[:4])
    assert decoded == [] and sent.kept.budget == 0


def test_the_openblas_kernels_named_are_the_ones_threadpoolctl_sees():
    """The benchmarks' headers name the kernels numpy's OpenBLAS runs (an OPENBLAS_CORETYPE
    in the environment changes them, and with them every figure): the name OpenBLAS itself
    reports, as threadpoolctl, an independent reader, finds it."""
    from kernels.threads import openblas_kernels

    threadpoolctl = require("threadpoolctl")
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib.get("internal_api") == "openblas"]
    assert blas, "numpy's wheels bundle OpenBLAS; none is loaded"
    assert openblas_kernels().lower() == blas[0]["architecture"].lower()
