"""The commands against hostile models, inputs and flags, run as a user runs them (a process):
one line naming the file, layer or flag, a non-zero exit, no traceback, no numpy warning and
no output file."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

import tnnformat
from kernels import Interpreter, KernelError
from tnnformat import Layer, Net, RawBuffer

from conftest import shared_path
from test_quant_cli import calibration_folder

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
PREP = ["-n", "0", "-s", "0.00392156862745098"]


def command(module: str, args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def quantize(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return command("quantization_cmd.cli", args, cwd)


def evaluate(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return command("quantization_cmd.eval_cmd", args, cwd)


def model_args(proto=DATA / "digits.tnnproto", model=DATA / "digits.tnnmodel") -> List[str]:
    return ["-p", proto, "-m", model]


def calibration(tmp_path: Path, count: int = 4) -> Path:
    """The demo's first `count` calibration images in tmp_path/cal (made once)."""
    folder = tmp_path / "cal"
    return folder if folder.is_dir() else calibration_folder(tmp_path, count)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "Warning:" not in text, text
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_no_output(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if p.suffix in (".tnnproto", ".tnnmodel") or ".tmp-" in p.name]
    assert not [name for name in left if "quantized" in name or ".tmp-" in name], left


# ---- priority 1 through the command -------------------------------------------------------
def test_an_int8_model_is_refused(tmp_path):
    folder = shared_path("tnn-reference", "squeezenet1.1")
    result = quantize(model_args(folder / "b0_w0_t0.quantized.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
                      + ["-i", calibration(tmp_path)], tmp_path)
    assert_one_line_error(result, "already int8", "conv1_1")
    assert_no_output(tmp_path)


def test_a_float_proto_with_an_int8_model_is_refused_by_both_commands(tmp_path):
    folder = shared_path("tnn-reference", "squeezenet1.1")
    args = model_args(folder / "squeezenet1.1.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
    assert_one_line_error(quantize(args + ["-i", calibration(tmp_path)], tmp_path), "do not belong together")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.name} 0\n" for p in (tmp_path / "cal").iterdir()))
    assert_one_line_error(evaluate(args + ["-i", tmp_path / "cal", "-g", labels], tmp_path), "do not belong together")
    assert_no_output(tmp_path)


def test_pad_h_one_million_is_refused_at_load(tmp_path):
    """The issue's one-number change that ran 180 s to 14 GB."""
    proto = tmp_path / "big.tnnproto"
    proto.write_text((DATA / "digits.tnnproto").read_text().replace(
        "conv1 1 1 8 3 3 1 1 1 1", "conv1 1 1 8 3 3 1 1 1000000 1", 1))
    result = quantize(model_args(proto) + ["-i", calibration(tmp_path)] + PREP, tmp_path)
    assert_one_line_error(result, str(proto), "layer 'conv1'", "pad_h")
    assert_no_output(tmp_path)


# ---- priority 2: NaN and infinity during a run --------------------------------------------
def test_nan_names_the_first_layer_that_produced_it():
    net = Net(inputs={"x": (1, 1, 2, 2)}, outputs=["z"], layers=[
        Layer("ReLU", "relu", ["x"], ["y"]), Layer("Sqrt", "sqrt", ["y"], ["s"]), Layer("Log", "log", ["s"], ["z"])])
    run = Interpreter(net)
    assert np.isfinite(run.forward({"x": np.ones((2, 1, 2, 2), np.float32)})["z"]).all()
    with pytest.raises(KernelError, match="layer 'log' .* NaN or infinite values in blob 'z'"):
        run.forward({"x": np.zeros((2, 1, 2, 2), np.float32)})
    with pytest.raises(KernelError, match="input 'x' holds NaN"):
        run.forward({"x": np.full((1, 1, 2, 2), np.nan, np.float32)})


def test_a_nan_weight_stops_both_commands_with_one_line(tmp_path):
    """A flipped weight byte loads (the structure is intact) but its NaN is named at run."""
    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    weights = net.resources["conv2"]["filter"].numpy(np.float32).copy()
    weights.flat[5] = np.nan
    net.resources["conv2"]["filter"] = RawBuffer.from_array(weights)
    tnnformat.save(net, tmp_path / "nan.tnnproto", tmp_path / "nan.tnnmodel")
    args = model_args(tmp_path / "nan.tnnproto", tmp_path / "nan.tnnmodel") + PREP
    assert_one_line_error(quantize(args + ["-i", calibration(tmp_path)], tmp_path), "layer 'conv2'", "NaN")
    assert_no_output(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.name} 0\n" for p in (tmp_path / "cal").iterdir()))
    assert_one_line_error(evaluate(args + ["-i", tmp_path / "cal", "-g", labels], tmp_path), "layer 'conv2'", "NaN")


def test_the_demo_prints_no_numpy_warning(tmp_path):
    result = quantize(model_args() + ["-i", calibration(tmp_path, 8)] + PREP, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "site-packages" not in result.stderr, result.stderr


# ---- priority 4: flags ----------------------------------------------------------------------
@pytest.mark.parametrize("flag, value", [("-n", "nan"), ("-s", "inf"), ("-s", "1e39"), ("-s", "0"), ("-n", "-inf")])
def test_preprocessing_values_must_be_finite_and_scales_non_zero(tmp_path, flag, value):
    args = {"-n": "0", "-s": "0.00392156862745098", flag: value}
    result = quantize(model_args() + ["-i", calibration(tmp_path)] + [t for kv in args.items() for t in kv], tmp_path)
    assert_one_line_error(result, flag, code=2)
    assert_no_output(tmp_path)


def test_the_output_may_not_be_an_input(tmp_path):
    """The issue's data loss: -o digits beside digits.tnnproto overwrote the float model."""
    for path in (DATA / "digits.tnnproto", DATA / "digits.tnnmodel"):
        shutil.copy(path, tmp_path)
    before = (tmp_path / "digits.tnnmodel").read_bytes()
    for output in ("digits", "digits.tnnmodel", str(tmp_path / "." / "digits")):
        result = quantize(["-p", "digits.tnnproto", "-m", "digits.tnnmodel", "-i", calibration(tmp_path),
                           "-o", output] + PREP, tmp_path)
        assert_one_line_error(result, "-o", "is the input file", code=2)
    assert (tmp_path / "digits.tnnmodel").read_bytes() == before


@pytest.mark.parametrize("output", ["", "out/", ".tnnproto", "out/.tnnmodel"])
def test_an_output_that_names_no_file_is_refused(tmp_path, output):
    (tmp_path / "out").mkdir()
    result = quantize(model_args() + ["-i", calibration(tmp_path), "-o", output] + PREP, tmp_path)
    assert_one_line_error(result, "-o", "names no file", code=2)
    assert not [p for p in tmp_path.rglob(".tnn*")]


def test_an_output_with_a_model_suffix_means_its_prefix(tmp_path):
    result = quantize(model_args() + ["-i", calibration(tmp_path), "-o", "x.tnnproto", "--skip_fidelity"] + PREP,
                      tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("x*")) == ["x.tnnmodel", "x.tnnproto"]


def test_report_without_the_comparison_is_an_error(tmp_path):
    result = quantize(model_args() + ["-i", calibration(tmp_path), "--report", "r.html", "--skip_fidelity"] + PREP,
                      tmp_path)
    assert_one_line_error(result, "--report", "--skip_fidelity", code=2)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("label", [99999, -3, 10])
def test_eval_cmd_refuses_labels_outside_the_classes(tmp_path, label):
    folder = calibration(tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{name} {label if k == 1 else 0}\n" for k, name in enumerate(names)))
    result = evaluate(model_args() + ["-i", folder, "-g", labels] + PREP, tmp_path)
    assert_one_line_error(result, str(labels), names[1], f"label {label}", "10 classes")


# ---- priority 7: what a user sees ---------------------------------------------------------
def test_nan_rows_come_first_and_the_table_says_so():
    from quantization_cmd.fidelity import BlobError, Fidelity
    from quantization_cmd.report import format_table

    good, poor, broken, out = BlobError("good", "l1"), BlobError("poor", "l2"), BlobError("broken", "l3"), \
        BlobError("prob", "prob")
    f = np.linspace(1, 2, 16, dtype=np.float32)
    good.add(f, f + 0.001)
    poor.add(f, f[::-1])
    broken.add(f, np.where(f > 1.5, np.nan, f))
    out.add(f, f)
    lines = format_table(Fidelity([good, poor, broken], [out], samples=1)).splitlines()
    assert "1 blob of the int8 model hold" in lines[0] and "listed first" in lines[0]
    assert lines[2].split()[:2] == ["broken", "NaN/inf"] and lines[2].split()[-1] == "nan", lines
    assert [line.split()[0] for line in lines[3:5]] == ["poor", "good"]


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 1_000_003])
def test_the_checks_sums_agree_with_float64_and_survive_float32_overflow(size):
    """The int8 check sums float32 products in blocks: the tail past the last whole block
    counts, the result is float64's to 1e-7 for one block and 1e-8 for a large blob, and values whose squares overflow float32 are
    summed again in float64 (a broken model's blobs, not infinities)."""
    from quantization_cmd.fidelity import BlobError

    rng = np.random.default_rng(size)
    f = (rng.standard_normal(size) * rng.uniform(0.1, 10, size)).astype(np.float32)
    q = (f + rng.standard_normal(size).astype(np.float32) * 0.01).astype(np.float32)
    for scale in (1.0, 1e20):
        fs, qs = f * np.float32(scale), q * np.float32(scale)
        err = BlobError("b", "l")
        err.add(fs, qs)
        f64, q64, e64 = fs.astype(np.float64), qs.astype(np.float64), (fs - qs).astype(np.float64)
        for got, want in ((err.ff, f64 @ f64), (err.qq, q64 @ q64), (err.ee, e64 @ e64)):
            assert np.isfinite(got) and got == pytest.approx(want, rel=1e-7 if size < 10000 else 1e-8,
                                                             abs=1e-30), (scale, got, want)
        assert err.nonfinite == 0


@pytest.mark.parametrize("shape, channels, zero", [((3, 4, 7, 5), 1, 0), ((3, 4, 7, 5), 1, -3), ((3, 4, 7, 5), 4, 0),
                                                    ((2, 5, 9), 5, 2), ((2, 3, 300, 301), 3, 1), ((1, 2, 70000), 1, 0)])
def test_the_checks_sums_from_int8_codes_are_those_of_the_dequantized_values(shape, channels, zero):
    """The check takes int8 blobs as codes and dequantizes them piece by piece: the sums are
    float64's over Int8Blob.dequantize() (per tensor and per channel, with zero points, rows
    shorter and longer than a piece), and the largest error is exactly its."""
    from kernels.int8 import Int8Blob
    from quantization_cmd.fidelity import BlobError
    from tnnformat import BlobScale

    rng = np.random.default_rng(sum(shape))
    codes = rng.integers(-128, 128, shape).astype(np.int8)
    scale = BlobScale(rng.uniform(0.01, 0.2, channels).astype(np.float32),
                      np.full(channels, zero, np.int8) - np.arange(channels, dtype=np.int8) * (zero != 0))
    blob = Int8Blob(codes, scale)
    d = blob.dequantize()
    f = (d + rng.standard_normal(shape).astype(np.float32) * 0.05).astype(np.float32)
    err = BlobError("b", "l")
    err.add(f, blob)
    f64, d64 = f.astype(np.float64).ravel(), d.astype(np.float64).ravel()
    e64 = (f - d).astype(np.float64).ravel()
    for got, want in ((err.ff, f64 @ f64), (err.qq, d64 @ d64), (err.ee, e64 @ e64), (err.fq, f64 @ d64)):
        assert got == pytest.approx(want, rel=1e-7), (got, want)
    assert err.max_abs == float(np.abs(f - d).max()) and err.nonfinite == 0


def test_a_float_model_going_infinite_in_the_check_names_the_layer():
    """The check's float run tests only its outputs; one that is not finite runs the part
    again to name the first layer, as every other forward does."""
    from kernels import KernelError
    from quantization_cmd.api import quantize as quantize_net
    from quantization_cmd.fidelity import measure

    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    name, shape = next(iter(net.inputs.items()))
    x = np.random.default_rng(0).uniform(0, 1, (4,) + tuple(shape[1:])).astype(np.float32)
    int8 = quantize_net(net, [{name: x}]).net
    assert measure(net, int8, [{name: x}]).samples == 4
    with pytest.raises(KernelError, match="layer '.*' .*produced NaN or infinite"):
        measure(net, int8, [{name: x * np.float32(3e38)}])


def test_the_two_input_passes_have_distinct_labels(tmp_path):
    folder = calibration(tmp_path)
    result = quantize(model_args() + ["-i", folder, "--eval_path", folder] + PREP, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reading calibration inputs" in result.stderr and "reading held-out inputs" in result.stderr


def test_the_demo_runs_without_warnings(tmp_path):
    """The README's quick start, word for word."""
    result = quantize(model_args() + ["-i", DATA / "calibration", "--eval_path", DATA / "heldout"] + PREP, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr


def test_a_bug_is_one_line_too(monkeypatch, tmp_path):
    """Whatever slips through still reaches the user as one line, marked as our bug."""
    from click.testing import CliRunner

    import quantization_cmd.cli as cli

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'shape'")

    monkeypatch.setattr(cli, "model_batch", broken)
    result = CliRunner().invoke(cli.main, model_args() + ["-i", str(calibration(tmp_path))] + PREP)
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "unexpected AttributeError" in result.output and "please report it" in result.output


@pytest.mark.parametrize("flag, value, fragment", [
    ("--dump_table", "digits.tnnproto", "is the input file"),
    ("--encodings", "digits.tnnmodel", "is the input file"),
    ("--report", "digits.tnnproto", "is the input file"),
    ("--dump_table", "model_quantized.tnnmodel", "two outputs would be the same file"),
])
def test_no_output_overwrites_an_input_or_another_output(tmp_path, flag, value, fragment):
    for path in (DATA / "digits.tnnproto", DATA / "digits.tnnmodel"):
        shutil.copy(path, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("digits.*")}
    result = quantize(["-p", "digits.tnnproto", "-m", "digits.tnnmodel", "-i", calibration(tmp_path), flag, value]
                      + PREP, tmp_path)
    assert_one_line_error(result, fragment, code=2)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("digits.*")} == before
    assert not list(tmp_path.glob("model_quantized*"))


def test_a_fifo_as_label_config_or_table_file_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    folder = calibration(tmp_path)
    assert_one_line_error(evaluate(model_args() + ["-i", folder, "-g", fifo] + PREP, tmp_path), "not a regular file")
    for flag in ("--config", "--load_table"):
        result = quantize(model_args() + ["-i", folder, flag, fifo] + PREP, tmp_path)
        assert_one_line_error(result, "fifo.txt", "not a regular file")


def test_the_check_holds_a_few_float_blobs_at_a_time_not_the_whole_forward():
    """The check runs the float model only as far as the int8 model's next compared blob, so
    its memory is a few blobs, not every float blob of the batch (on Inception v3 the table's
    peak was 1.5x the calibration's). Traced again, the same sums."""
    import tracemalloc

    from quantization_cmd.fidelity import measure

    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    int8 = tnnformat.load(folder / "b0_w0_t0.quantized.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
    x = {"data_0": np.random.default_rng(0).uniform(-100, 100, (4, 3, 224, 224)).astype(np.float32)}
    whole: dict = {}
    Interpreter(net).forward(x, hook=lambda layer, blob, value: whole.setdefault(blob, value))
    result = measure(net, int8, [x])  # once untraced: the code tables and caches are made
    tracemalloc.start()
    try:
        again = measure(net, int8, [x])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    compared = sum(whole[e.name].nbytes for e in result.blobs)
    assert peak < 0.7 * compared, (peak / 2**20, compared / 2**20)  # was 1.04x; now about 0.5x: the first layers' arrays
    assert [(e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in result.blobs] == \
        [(e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in again.blobs]


@pytest.mark.parametrize("flags, copies", [("b0_w0_t0", 8), ("b2_w1_t0", 6), ("b0_w0_t2", 0)])
def test_concatenations_that_copy_their_inputs_take_their_inputs_sums(monkeypatch, flags, copies):
    """An int8 concatenation whose values are its inputs' (codes copied under the same
    per-channel scales: all 8 in TNN's own MIN_MAX per-channel SqueezeNet file, 6 in its KL one)
    gets its inputs' sums instead of comparing its values again; the table is that of comparing
    them, within the float32 block sums' rounding (1e-9 here). A concatenation that requantizes
    (per tensor), or whose scales differ in one channel, is compared itself."""
    import quantization_cmd.fidelity as fidelity

    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    int8 = tnnformat.load(folder / f"{flags}.quantized.tnnproto", folder / f"{flags}.quantized.tnnmodel")
    run = Interpreter(int8)
    everything = {b for layer in run.net.layers for b in layer.outputs}
    found = fidelity.copied_concatenations(run, everything)
    assert len(found) == copies
    x = {"data_0": np.random.default_rng(1).uniform(-100, 100, (3, 3, 224, 224)).astype(np.float32)}
    assert_sums_as_compared(monkeypatch, net, int8, x)
    for index, layer in enumerate(run.net.layers):
        if layer.outputs[0] in found:
            ins, (out,) = run.scales[index]
            changed = tnnformat.BlobScale(out.scale.copy(), out.zero_point.copy())
            changed.scale[-1] *= 2
            run.scales[index] = (ins, [changed])
            assert layer.outputs[0] not in fidelity.copied_concatenations(run, everything)
            break


@pytest.mark.parametrize("override, copies", [
    ({}, 8),
    ({"layers": ("fire3/expand3x3_1",), "float_layers": True}, 7),  # its input is quantized at the concat
    ({"blobs": ("fire5/concat_1",), "activations": {"bits": 6}}, 7),  # narrower codes than its inputs'
])
def test_a_concatenation_of_a_float_layer_or_narrower_codes_is_compared_itself(monkeypatch, override, copies):
    """Our own -b 0 -t 0 SqueezeNet on four real images: the concatenations copy their inputs,
    except where an input is a float layer's value (the concatenation quantizes it) or its own
    bits are fewer. (On random inputs some channels stay zero, and a zero channel's scale in a
    concatenation need not be its input's: then it is compared itself too.)"""
    from PIL import Image

    from quantization_cmd.api import quantize as quantize_net
    from quantization_cmd.config import Override, from_tnn_flags
    from quantization_cmd.fidelity import copied_concatenations

    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    files = sorted(shared_path("data", "imagenet-calib-100").glob("*.png"))[:4]
    bgr = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32)[:, :, ::-1] for f in files])
    x = {"data_0": np.ascontiguousarray((bgr - np.float32([104, 117, 123])).transpose(0, 3, 1, 2))}
    config = from_tnn_flags(0, 0, 0)
    if override:
        config = config.with_overrides(Override(**override))
    result = quantize_net(net, [x], config)
    bits = result.activation_bits
    run = Interpreter(result.net, activation_bits=bits)
    assert len(copied_concatenations(run, {b for layer in run.net.layers for b in layer.outputs})) == copies
    assert_sums_as_compared(monkeypatch, result.float_net, result.net, x, bits, result.plan.float_layers)


def assert_sums_as_compared(monkeypatch, net, int8, x, *args) -> None:
    """The check's sums as they are, and with every blob compared itself, agree."""
    import quantization_cmd.fidelity as fidelity

    derived = fidelity.measure(net, int8, [x], *args)
    with monkeypatch.context() as patch:
        patch.setattr(fidelity, "copied_concatenations", lambda run, compared: {})
        direct = fidelity.measure(net, int8, [x], *args)
    for a, b in zip(derived.blobs, direct.blobs):
        assert a.name == b.name and a.max_abs == b.max_abs, (a, b)
        assert (a.ff, a.qq, a.ee, a.fq) == pytest.approx((b.ff, b.qq, b.ee, b.fq), rel=1e-8), a.name


def test_the_checks_shards_here_share_one_pair_of_interpreters(monkeypatch):
    """The check's shards run one per core at once here; they share the two models' prepared
    interpreters (two copies of ResNet50's prepared weights raised the table's peak from 556 to
    743 MB), and the result is that of the shards one after the other."""
    import quantization_cmd.fidelity as fidelity
    from kernels import threads
    from quantization_cmd.api import quantize as quantize_net
    from quantization_cmd.pipeline import SampleSource

    net = tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")
    name, shape = next(iter(net.inputs.items()))
    x = np.random.default_rng(3).uniform(0, 1, (40,) + tuple(shape[1:])).astype(np.float32)
    int8 = quantize_net(net, {name: x}).net
    made = []

    class Counted(Interpreter):
        def __init__(self, *args, **kwargs):
            made.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(fidelity, "Interpreter", Counted)
    together = fidelity.measure_sharded(net, int8, SampleSource({name: x}, net))
    assert len(made) == 2 and together.samples == 40
    monkeypatch.setattr(threads, "_one_core", True)
    apart = fidelity.measure_sharded(net, int8, SampleSource({name: x}, net))
    assert [(e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in together.blobs + together.outputs] == \
        [(e.fq, e.ff, e.qq, e.ee, e.max_abs) for e in apart.blobs + apart.outputs]
