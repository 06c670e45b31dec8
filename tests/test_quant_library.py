"""The library under the command: configs and overrides, bit widths, float layers, calibration
tables and encodings, mergeable statistics, several inputs, and a new range method plugged
in from outside. Models written here are run by TNN's own runtime where it matters."""
from __future__ import annotations

import hashlib
import json
import pickle
import threading
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tnnformat
from kernels import Interpreter, with_random_resources
from quantization_cmd import BlobConfig, LayerConfig, Override, QuantConfig, from_tnn_flags, quantize
from quantization_cmd.blob_methods import BLOB_METHODS, BlobMethod, register
from quantization_cmd.calibrate import HistogramStatistics, RangeStatistics
from quantization_cmd.cli import main
from quantization_cmd.config import ConfigError, TNN_BLOB_METHODS, TNN_WEIGHT_METHODS
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file
from quantization_cmd.pipeline import QuantState, SampleSource, collect
from quantization_cmd.plan import make_plan
from quantization_cmd.statistics import HISTOGRAM, RANGE, Histogram, Range, merge
from quantization_cmd.table import dump_table
from kernels.shapes import infer_shapes
from tnnformat import Layer, Net
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from conftest import REPO, shared_path

DATA = REPO / "data"
DIGITS = ["-p", str(DATA / "digits.tnnproto"), "-m", str(DATA / "digits.tnnmodel")]
PREP = ["-n", "0", "-s", "0.00392156862745098"]
DIGITS_PREP = Preprocess(False, (0.0,), (0.00392156862745098,))


def digits() -> Net:
    return tnnformat.load(DATA / "digits.tnnproto", DATA / "digits.tnnmodel")


def digit_batches(count: int = 16):
    files = sorted((DATA / "calibration").glob("*.png"))[:count]
    x = np.concatenate([read_input_file(f, (1, 1, 16, 16), DIGITS_PREP) for f in files])
    return [{"input": x[i:i + 8]} for i in range(0, len(x), 8)]


def digest(prefix) -> str:
    return hashlib.sha256(Path(f"{prefix}.tnnproto").read_bytes() + b"\0" +
                          Path(f"{prefix}.tnnmodel").read_bytes()).hexdigest()


def run(args, cwd: Path):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        return CliRunner().invoke(main, args)


def cal_folder(tmp_path: Path, count: int = 8) -> Path:
    folder = tmp_path / "cal"
    folder.mkdir(exist_ok=True)
    for path in sorted((DATA / "calibration").glob("*.png"))[:count]:
        shutil.copy(path, folder)
    return folder


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


# -- configs ---------------------------------------------------------------------------------

def test_tnn_flags_map_onto_config_objects():
    config = from_tnn_flags(2, 1, 1)
    assert config.activations == BlobConfig("KL_DIVERGENCE", "tensor", 8)
    assert config.weights == LayerConfig("ADMM", "channel", 8)
    assert from_tnn_flags(0, 3, 2).weights.granularity == "tensor"


def test_overrides_by_name_glob_type_and_blob():
    net = digits()
    shapes = infer_shapes(net)
    config = QuantConfig(overrides=(
        Override(layers=("conv*",), weights={"bits": 6}),
        Override(types=("InnerProduct",), weights={"weight_method": "ADMM"}),
        Override(blobs=("relu2",), activations={"method": "KL_DIVERGENCE"}),
        Override(layers=("conv3",), float_layers=True)))
    plan = make_plan(net, config, shapes)
    assert plan.layers["conv1"].bits == 6 and plan.layers["conv2"].bits == 6
    assert plan.layers["fc"] == LayerConfig("ADMM", "channel", 8)
    assert "conv3" not in plan.quantized and plan.float_layers == ["conv3"]
    # relu2 is the input of a max pooling: it shares pool2's scale, so pool2 takes the override
    assert plan.blobs["pool2"].method == "KL_DIVERGENCE" and plan.blobs["pool1"].method == "MIN_MAX"


@pytest.mark.parametrize("config, fragment", [
    (QuantConfig(overrides=(Override(layers=("nope*",), weights={"bits": 4}, origin="cfg.json"),)),
     "cfg.json: 'nope*' matches no layer"),
    (QuantConfig(BlobConfig("PERCENTILE_99")), "unknown blob method 'PERCENTILE_99'"),
    (QuantConfig(weights=LayerConfig(bits=9)), "bits must be an integer from 2 to 8"),
    (QuantConfig(weights=LayerConfig(bits=1)), "bits must be an integer from 2 to 8"),
    (QuantConfig(BlobConfig("KL_DIVERGENCE", symmetric=False)), "KL_DIVERGENCE has no asymmetric form"),
    (QuantConfig(overrides=(Override(layers=("conv1",), weights={"bitz": 4}),)), "unknown key 'bitz'"),
])
def test_bad_configs_name_what_is_wrong(config, fragment):
    with pytest.raises(ConfigError, match=None) as error:
        make_plan(digits(), config, infer_shapes(digits()))
    assert fragment in str(error.value)


def test_config_file_through_the_command(tmp_path):
    folder = cal_folder(tmp_path)
    config = tmp_path / "q.json"
    config.write_text(json.dumps({
        "activations": {"method": "KL_DIVERGENCE"},
        "weights": {"weight_method": "ADMM"},
        "overrides": [{"layers": ["conv1"], "weights": {"bits": 4}},
                      {"types": ["InnerProduct"], "float": True}]}))
    result = run(DIGITS + PREP + ["-i", str(folder), "--config", str(config), "-o", "q"], tmp_path)
    assert result.exit_code == 0, result.output
    net = tnnformat.load(tmp_path / "q.tnnproto", tmp_path / "q.tnnmodel")
    layers = {layer.name: layer for layer in net.layers}
    assert not layers["fc"].quantized and layers["conv2"].quantized
    conv1 = net.resources["conv1"]["filter"].numpy()
    assert np.abs(conv1).max() <= 7 and np.abs(net.resources["conv2"]["filter"].numpy()).max() > 7
    assert "fc(float)" in result.output and "kept float: fc" in result.output


@pytest.mark.parametrize("content, fragment", [
    ('{"overrides": [{"layers": ["conv9"], "float": true}]}', "overrides[0]: 'conv9' matches no layer"),
    ('{"activations": {"method": "NOPE"}}', "unknown blob method 'NOPE'"),
    ('{"weights": {"bits": 12}}', "bits must be an integer from 2 to 8"),
    ('{"overrides": [{"weights": {"bits": 4}}]}', "give a scope"),
    ('{"activation": {}}', "unknown key 'activation'"),
    ("{not json", "is not valid JSON"),
])
def test_bad_config_files_are_one_line_errors_and_write_nothing(tmp_path, content, fragment):
    folder = cal_folder(tmp_path, 2)
    config = tmp_path / "bad.json"
    config.write_text(content)
    result = run(DIGITS + PREP + ["-i", str(folder), "--config", str(config)], tmp_path)
    assert_one_line_error(result, fragment)
    assert not list(tmp_path.glob("model_quantized*"))


# -- bit widths --------------------------------------------------------------------------------

def test_low_bit_activations_are_simulated_and_reported():
    batches = digit_batches()
    eight = quantize(digits(), batches, QuantConfig(), fidelity_samples=batches)
    four = quantize(digits(), batches, QuantConfig(BlobConfig(bits=4)), fidelity_samples=batches)
    assert four.activation_bits and set(four.activation_bits.values()) == {4}
    assert four.fidelity.outputs[0].cosine < eight.fidelity.outputs[0].cosine
    # the 4-bit grid's scale is the 8-bit one times 127 / 7
    ratio = four.scales["relu3"].scale / eight.scales["relu3"].scale
    np.testing.assert_allclose(ratio, 127 / 7, rtol=1e-5)


def test_every_method_at_every_bit_width_stays_on_its_grid():
    batches = digit_batches(8)
    everything = quantize(digits(), batches, from_tnn_flags(5, 0, 0), histograms=True).statistics
    for bits in (2, 3, 5, 8):
        for name in TNN_BLOB_METHODS.values():
            for weights in TNN_WEIGHT_METHODS.values():
                config = QuantConfig(BlobConfig(name, bits=bits), LayerConfig(weights, bits=bits))
                result = quantize(digits(), None, config, statistics=everything)
                top = 2 ** (bits - 1) - 1
                for layer in result.plan.weighted:
                    resource = result.net.resources[layer]
                    q = resource["filter" if "filter" in resource else "weight"].numpy()
                    assert np.abs(q.astype(int)).max() <= top, (name, weights, bits, layer)
                for scale in result.scales.values():
                    assert np.all(scale.scale > 0) and np.all(np.abs(scale.zero_point) <= top)


# -- mergeable statistics --------------------------------------------------------------------

def test_statistics_of_two_halves_merge_into_those_of_the_whole():
    """SqueezeNet, KL (-b 2): ranges of the two halves of the 100 images merge exactly into
    those of one pass; histograms over the same fixed ranges merge into the whole's counts;
    the scales from the merged statistics are those of one pass over all 100."""
    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    prep = Preprocess(True, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))
    x = np.concatenate([read_input_file(f, (1, 3, 224, 224), prep)
                        for f in list_input_files(shared_path("data", "imagenet-calib-100"))])
    assert len(x) == 100
    halves = ({"data_0": x[:50]}, {"data_0": x[50:]})
    config = from_tnn_flags(2, 0, 0)
    state = QuantState(net, config, make_plan(net, config, infer_shapes(net)))

    def pass_over(p, data, known):
        state.statistics = dict(known)
        return collect(state.plan.net, SampleSource(data, net), p.statistics(state))

    ranges = merge(*(pass_over(RangeStatistics(), h, {}) for h in halves))
    full_ranges = pass_over(RangeStatistics(), {"data_0": x}, {})
    assert set(ranges) == set(full_ranges) and len(ranges) == len(state.plan.blobs)
    for key, stat in ranges.items():
        assert np.array_equal(stat.min, full_ranges[key].min) and np.array_equal(stat.max, full_ranges[key].max)
    histograms = merge(*(pass_over(HistogramStatistics(), h, full_ranges) for h in halves))
    full_histograms = pass_over(HistogramStatistics(), {"data_0": x}, full_ranges)
    assert histograms and {k.kind for k in histograms} == {HISTOGRAM}
    for key, stat in histograms.items():
        assert np.array_equal(stat.counts, full_histograms[key].counts)
    merged = quantize(net, None, config, statistics={**ranges, **histograms})
    one_pass = quantize(net, {"data_0": x}, config)
    assert {k.kind for k in one_pass.statistics} == {RANGE, HISTOGRAM}
    assert merged.scales.keys() == one_pass.scales.keys()
    for blob in merged.scales:
        assert np.array_equal(merged.scales[blob].scale, one_pass.scales[blob].scale), blob


def test_histograms_shared_by_threads_and_sent_to_workers_keep_their_counts():
    """A histogram filled by threads sharing it (summaries made apart, added in turns) counts
    what one observe counts; pickled (to and from worker processes) it comes back the same,
    in a fraction of its int64 size, and an empty one is hardly sent at all."""
    rng = np.random.default_rng(11)
    x = np.maximum(rng.standard_normal((8, 300, 9, 9)), 0).astype(np.float32)
    x[:, 7] = 0  # a dead channel: no valid range, no counts
    value_range = Range(300, False)
    value_range.observe(x)
    whole = Histogram.over(value_range)
    assert len(pickle.dumps(whole)) < 20_000 < whole.counts.nbytes
    whole.observe(x)
    shared, lock = Histogram.over(value_range), threading.Lock()

    def count(part: np.ndarray) -> None:
        summary = shared.summary(part)
        with lock:
            shared.add(summary)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(count, np.split(x, 4)))
    assert np.array_equal(shared.counts, whole.counts) and np.array_equal(shared.zeros, whole.zeros)
    assert whole.counts.sum() + whole.zeros.sum() == x.size - x[:, 7].size  # every value of a live channel
    sent = pickle.dumps(whole)
    back = pickle.loads(sent)
    assert back.counts.dtype == np.int64 and np.array_equal(back.counts, whole.counts)
    assert np.array_equal(back.zeros, whole.zeros) and np.array_equal(back.interval, whole.interval)
    assert len(sent) < whole.counts.nbytes / 3


# -- tables and encodings ----------------------------------------------------------------------

@pytest.mark.parametrize("flags", [(0, 0, 0), (0, 0, 2), (2, 1, 0), (2, 1, 1), (3, 3, 1), (4, 0, 0), (5, 1, 2)])
def test_table_round_trip_gives_the_same_bytes(flags, tmp_path):
    config = from_tnn_flags(*flags)
    first = quantize(digits(), digit_batches(), config)
    first.save(str(tmp_path / "a"))
    dump_table(str(tmp_path / "t.txt"), first, ["model: digits"])
    again = quantize(digits(), None, config, table=str(tmp_path / "t.txt"))
    again.save(str(tmp_path / "b"))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_command_table_round_trip_and_a_hand_edited_scale(tmp_path):
    folder = cal_folder(tmp_path)
    flags = DIGITS + PREP + ["-b", "2", "-w", "1"]
    assert run(flags + ["-i", str(folder), "--dump_table", "t.txt", "-o", "a", "--skip_fidelity"],
               tmp_path).exit_code == 0
    text = (tmp_path / "t.txt").read_text()
    assert text.startswith("# tnn-quantization calibration table") and "# flags: " in text
    result = run(flags + ["--load_table", "t.txt", "-o", "b", "--skip_fidelity"], tmp_path)
    assert result.exit_code == 0, result.output
    assert digest(tmp_path / "a") == digest(tmp_path / "b") and "from the table t.txt" in result.output
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("relu3 "))
    fields = dict(f.split("=") for f in lines[index].split()[1:])
    old = np.array(fields["scale"].split(","), np.float32)
    lines[index] = lines[index].replace(f"scale={fields['scale']}", "scale=" + ",".join(
        str(np.float32(v)) for v in old * 2))
    (tmp_path / "edited.txt").write_text("\n".join(lines) + "\n")
    assert run(flags + ["--load_table", "edited.txt", "-o", "c", "--skip_fidelity"], tmp_path).exit_code == 0
    a = tnnformat.load(tmp_path / "a.tnnproto", tmp_path / "a.tnnmodel")
    c = tnnformat.load(tmp_path / "c.tnnproto", tmp_path / "c.tnnmodel")
    changed = {k for k in a.resources if k.endswith("_scale_data_")
               and not np.array_equal(a.resources[k]["scale"].numpy(), c.resources[k]["scale"].numpy())}
    assert changed == {"relu3_scale_data_"}  # only the edited blob (no other blob shares its scale)
    np.testing.assert_array_equal(c.blob_scale("relu3")["scale"].numpy(), old * 2)


@pytest.mark.parametrize("edit, fragment", [
    (lambda lines: [l for l in lines if not l.startswith("pool2 ")], "no line for blob 'pool2'"),
    (lambda lines: lines + ["ghost method=MIN_MAX scale=1"], "'ghost' matches no layer"),
    (lambda lines: [l.replace("scale=", "scale=1,").replace("zero_point=", "zero_point=0,")
                    if l.startswith("pool2 ") else l for l in lines],
     "blob 'pool2' has 17 scales; the model needs 16 (per channel)"),
    (lambda lines: [l.replace("scale=", "scale=1,") if l.startswith("pool2 ") else l for l in lines],
     "blob 'pool2' has 17 scales and 16 zero points"),
    (lambda lines: [l.replace("method=MIN_MAX", "method=MAGIC", 1) if l.startswith("pool2 ") else l for l in lines],
     "unknown blob method 'MAGIC'"),
    (lambda lines: [l.replace("scale=", "scale=x") if l.startswith("pool2 ") else l for l in lines],
     "is not a comma-separated list of numbers"),
])
def test_tables_that_do_not_fit_are_one_line_errors(tmp_path, edit, fragment):
    folder = cal_folder(tmp_path, 4)
    assert run(DIGITS + PREP + ["-i", str(folder), "--dump_table", "t.txt", "--skip_fidelity", "-o", "a"],
               tmp_path).exit_code == 0
    lines = (tmp_path / "t.txt").read_text().splitlines()
    (tmp_path / "bad.txt").write_text("\n".join(edit(lines)) + "\n")
    result = run(DIGITS + ["--load_table", "bad.txt", "--skip_fidelity", "-o", "b"], tmp_path)
    assert_one_line_error(result, fragment)
    assert not list(tmp_path.glob("b.*"))


def test_encodings_follow_aimet_layout(tmp_path):
    folder = cal_folder(tmp_path, 4)
    result = run(DIGITS + PREP + ["-i", str(folder), "-b", "3", "--encodings", "e.json", "--skip_fidelity"],
                 tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "e.json").read_text())
    net = tnnformat.load(tmp_path / "model_quantized.tnnproto", tmp_path / "model_quantized.tnnmodel")
    relu3 = doc["activation_encodings"]["relu3"]
    scale = net.blob_scale("relu3")["scale"].numpy()
    zero = net.blob_scale("relu3")["zero_point"].numpy()
    assert len(relu3) == scale.size and relu3[0]["bitwidth"] == 8 and relu3[0]["is_symmetric"] == "False"
    for enc, s, z in zip(relu3, scale, zero):
        assert enc["offset"] == -128 - int(z) and np.isclose(enc["scale"], s)
        assert np.isclose(enc["min"], s * (-128 - int(z))) and np.isclose(enc["max"], s * (127 - int(z)))
    assert set(doc["param_encodings"]) == {"conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"}


# -- several inputs ----------------------------------------------------------------------------

def layer(type_name, name, inputs, outputs, **params):
    return Layer(type_name, name, inputs, outputs, default_params(spec(type_name).params, **params))


def two_input_net() -> Net:
    """a -> conv+relu, b -> conv, their sum -> conv: a model with inputs a and b."""
    def conv(name, src, dst, cin, cout):
        return layer("Convolution", name, [src], [dst], group=1, input_channel=cin, output_channel=cout,
                     kernel_h=3, kernel_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1, bias=1, pad_type=-1)

    layers = [conv("conv_a", "a", "ca", 3, 8), layer("ReLU", "relu_a", ["ca"], ["ra"]),
              conv("conv_b", "b", "cb", 2, 8), layer("Add", "sum", ["ra", "cb"], ["s"]),
              conv("conv_out", "s", "out", 8, 4)]
    net = Net(inputs={"a": (1, 3, 12, 12), "b": (1, 2, 12, 12)}, outputs=["out"], layers=layers)
    return with_random_resources(net, seed=3)


def test_a_two_input_model_calibrates_from_npz_and_from_named_folders(tmp_path):
    from tnn_runtime import run_tnn

    net = two_input_net()
    tnnformat.save(net, tmp_path / "two.tnnproto", tmp_path / "two.tnnmodel")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 3, 12, 12)).astype(np.float32), rng.uniform(-2, 2, (12, 2, 12, 12)).astype(np.float32)
    for name in ("npz", "a", "b"):
        (tmp_path / name).mkdir()
    for i in range(12):
        np.savez(tmp_path / "npz" / f"s{i:02d}.npz", a=a[i], b=b[i])
        np.save(tmp_path / "a" / f"s{i:02d}.npy", a[i])
        np.save(tmp_path / "b" / f"s{i:02d}.npy", b[i])
    model = ["-p", str(tmp_path / "two.tnnproto"), "-m", str(tmp_path / "two.tnnmodel")]
    first = run(model + ["-i", str(tmp_path / "npz"), "-o", "q1"], tmp_path)
    assert first.exit_code == 0, first.output
    second = run(model + ["-i", f"a={tmp_path / 'a'}", "-i", f"b={tmp_path / 'b'}", "-o", "q2"], tmp_path)
    assert second.exit_code == 0, second.output
    assert digest(tmp_path / "q1") == digest(tmp_path / "q2")
    assert "12 samples from 12 files" in first.output
    int8 = tnnformat.load(tmp_path / "q1.tnnproto", tmp_path / "q1.tnnmodel")
    assert {layer.name for layer in int8.layers if layer.quantized} == {"conv_a", "conv_b", "sum", "conv_out"}
    assert int8.blob_scale("a") is not None and int8.blob_scale("b") is not None
    ours = Interpreter(int8)
    for i in range(3):
        x = {"a": a[i:i + 1], "b": b[i:i + 1]}
        theirs = run_tnn(tmp_path / "q1.tnnproto", x)["out"].reshape(-1)
        np.testing.assert_allclose(ours.forward(x)["out"].reshape(-1), theirs, atol=1e-4)


@pytest.mark.parametrize("make, fragment", [
    (lambda d, a, b: np.savez(d / "x.npz", a=a), "has no array for input 'b'"),
    (lambda d, a, b: np.savez(d / "x.npz", a=a, b=a), "input 'b' has shape (3, 12, 12)"),
])
def test_bad_npz_files_are_named(tmp_path, make, fragment):
    net = two_input_net()
    tnnformat.save(net, tmp_path / "two.tnnproto", tmp_path / "two.tnnmodel")
    (tmp_path / "in").mkdir()
    make(tmp_path / "in", np.zeros((3, 12, 12), np.float32), np.zeros((2, 12, 12), np.float32))
    result = run(["-p", "two.tnnproto", "-m", "two.tnnmodel", "-i", "in"], tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "x.npz" in result.output and fragment in result.output, result.output
    assert not list(tmp_path.glob("model_quantized*"))


def test_several_inputs_need_every_folder(tmp_path):
    net = two_input_net()
    tnnformat.save(net, tmp_path / "two.tnnproto", tmp_path / "two.tnnmodel")
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "x.npy", np.zeros((3, 12, 12), np.float32))
    model = ["-p", "two.tnnproto", "-m", "two.tnnmodel"]
    result = run(model + ["-i", "a=a"], tmp_path)
    assert result.exit_code == 2 and "no folder for input 'b'" in result.output
    result = run(model + ["-i", "a=a", "-i", "c=a"], tmp_path)
    assert result.exit_code == 2 and "'c' is not an input of the model" in result.output


# -- a new range method from outside -----------------------------------------------------------

def test_a_new_range_method_is_one_registration():
    """What a contributor writes (README, layout): a function from BlobStats to scales, and
    one `register` line; the config, plan and table then know the method by name."""
    def half_range(stats):
        scale = (stats.range.absmax / 2 / (2 ** (stats.config.bits - 1) - 1)).astype(np.float32)
        return scale, np.zeros(scale.size, np.int8)

    if "HALF_RANGE" not in BLOB_METHODS:
        # the demo's blobs are small: without this quirk TNN's MIN_MAX fallback would apply
        register(BlobMethod("HALF_RANGE", half_range, "symmetric, half the largest |x| (a test method)",
                            small_blob_fallback=False))
    batches = digit_batches(8)
    half = quantize(digits(), batches, QuantConfig(BlobConfig("HALF_RANGE")))
    full = quantize(digits(), batches, QuantConfig(BlobConfig("MIN_MAX", symmetric=True)))
    ratio = half.scales["relu3"].scale / full.scales["relu3"].scale
    np.testing.assert_allclose(ratio, 0.5, rtol=1e-3)


def run_readme_block(marker: str, tmp_path: Path, monkeypatch) -> dict:
    """Run the README's first Python block after `marker` in tmp_path (with data/ linked in);
    its variables."""
    text = (REPO / "README.md").read_text()
    start = text.index(marker)
    block = text[text.index("```python", start) + len("```python"):text.index("```", text.index("```python", start) + 9)]
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    return scope


def test_readme_python_example_runs(tmp_path, monkeypatch):
    run_readme_block("Runnable on the demo:", tmp_path, monkeypatch)
    net = tnnformat.load(tmp_path / "digits_int8.tnnproto", tmp_path / "digits_int8.tnnmodel")
    assert not {layer.name: layer for layer in net.layers}["fc"].quantized
    assert np.abs(net.resources["conv3"]["filter"].numpy()).max() <= 7


def test_bias_correction_removes_the_mean_shift_int8_causes():
    """A 1x1 convolution with a weight off the int8 grid on inputs that are all positive: the
    rounding error of that weight becomes a mean shift of output channel 0 (-0.0054, 87 steps of
    the weight scale); bias correction folds it into the int32 bias and removes it to within the
    output's own int8 rounding; channel 1, on the grid, keeps its mean."""
    from quantization_cmd.api import default_passes

    rng = np.random.default_rng(0)
    conv = layer("Convolution", "c", ["x"], ["y"], group=1, input_channel=4, output_channel=2, kernel_h=1,
                 kernel_w=1, stride_h=1, stride_w=1, pad_h=0, pad_w=0, bias=1, pad_type=-1)
    weights = np.zeros((2, 4, 1, 1), np.float32)
    weights[0, :, 0, 0] = [1.0, 0.8333, 0.25, -0.5]
    weights[1, :, 0, 0] = [1.0, 0.0, 0.0, 0.0]
    net = Net(inputs={"x": (1, 4, 4, 4)}, outputs=["y"], layers=[conv], resources={"c": {
        "filter": tnnformat.RawBuffer.from_array(weights), "bias": tnnformat.RawBuffer.from_array(np.zeros(2, np.float32))}})
    x = rng.uniform(0.5, 1.0, (16, 4, 4, 4)).astype(np.float32)
    x[:, 0] = 1.0
    float_y = Interpreter(net).forward({"x": x})["y"]

    def mean_shift(result):
        return (float_y - Interpreter(result.net).forward({"x": x})["y"]).mean(axis=(0, 2, 3))

    plain = quantize(net, {"x": x}, QuantConfig())
    corrected = quantize(net, {"x": x}, QuantConfig(), passes=default_passes(bias_correction=True))
    before, after = mean_shift(plain), mean_shift(corrected)
    assert abs(before[0]) > 50 * corrected.net.resources["c"]["scale"].numpy()[0]
    assert abs(after[0]) < abs(before[0]) / 10
    assert corrected.net.resources["c"]["bias"].numpy()[0] < -50
    assert abs(after[1] - before[1]) < 1e-6


def test_equalization_keeps_float_outputs_and_meets_the_ranges():
    """SqueezeNet's squeeze -> ReLU -> expand pairs: after equalization each pair's per-channel
    ranges are equal, and the float model's output is the same (<= 1e-5 relative)."""
    from quantization_cmd.equalization import equalize, pairs
    from kernels import runtime_graph

    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = runtime_graph(tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel"))
    before = {k: v for k, v in net.resources.items()}
    equalized, count = equalize(net)
    assert count == len(pairs(net)) >= 8
    assert all(net.resources[k] is before[k] for k in before)  # the input is untouched
    for first, consumers in pairs(net):
        w1 = equalized.resources[first.name]["filter"].numpy(np.float32).reshape(first.params["output_channel"], -1)
        r1 = np.abs(w1).max(axis=1)
        w2 = [equalized.resources[c.name]["filter"].numpy(np.float32).reshape(
            c.params["output_channel"], first.params["output_channel"], -1) for c in consumers]
        r2 = np.max([np.abs(w).max(axis=(0, 2)) for w in w2], axis=0)
        np.testing.assert_allclose(r1, r2, rtol=1e-3)
    x = np.random.default_rng(0).uniform(-100, 100, (2, 3, 224, 224)).astype(np.float32)
    a = Interpreter(net).forward({"data_0": x})["softmaxout_1"]
    b = Interpreter(equalized).forward({"data_0": x})["softmaxout_1"]
    assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1)


def squeeze_excitation_net(gate_of_itself: bool = False) -> Net:
    """1x1 conv -> ReLU -> depthwise 3x3 -> ReLU -> squeeze-excitation (global pooling, two 1x1
    convolutions, HardSigmoid, Mul) -> 1x1 conv, random weights; with `gate_of_itself` the Mul
    multiplies the block's input by itself instead (its scale would be squared)."""
    def conv(name, src, dst, cin, cout, k=1, group=1):
        return layer("Convolution", name, [src], [dst], group=group, input_channel=cin // group, output_channel=cout,
                     kernel_h=k, kernel_w=k, stride_h=1, stride_w=1, pad_h=k // 2, pad_w=k // 2, bias=1, pad_type=-1)

    layers = [conv("a", "x", "a", 3, 4), layer("ReLU", "a_relu", ["a"], ["a_r"]),
              conv("dw", "a_r", "dw", 4, 4, k=3, group=4), layer("ReLU", "dw_relu", ["dw"], ["dw_r"]),
              layer("Pooling", "pool", ["dw_r"], ["pooled"], pool_type=1, kernel_h=0, kernel_w=0, stride_h=1, pad_h=0, pad_w=0,
                    stride_w=1, pad_type=-1),
              conv("se1", "pooled", "se1", 4, 2), layer("ReLU", "se1_relu", ["se1"], ["se1_r"]),
              conv("se2", "se1_r", "se2", 2, 4), layer("HardSigmoid", "gate", ["se2"], ["gate"], alpha=1 / 6, beta=0.5),
              layer("Mul", "excite", ["dw_r", "dw_r" if gate_of_itself else "gate"], ["excited"]),
              conv("c", "excited", "y", 4, 3)]
    net = Net(inputs={"x": (1, 3, 8, 8)}, outputs=["y"], layers=layers, resources={})
    return with_random_resources(net, seed=3)


def test_equalization_reaches_through_depthwise_and_squeeze_excitation():
    """The depthwise convolution is the consumer of the 1x1 before it, and its output reaches
    the last convolution and the excitation's first through pooling and the Mul: three pairs
    (and the excitation's own pair), float outputs unchanged, every pair's ranges brought
    together; a Mul of the block with itself stops the pair (the scale would be squared)."""
    from kernels import runtime_graph
    from quantization_cmd.equalization import equalize, pairs

    net = runtime_graph(squeeze_excitation_net())
    found = {first.name: sorted(c.name for c in consumers) for first, consumers in pairs(net)}
    assert found == {"a": ["dw"], "dw": ["c", "se1"], "se1": ["se2"]}
    assert "dw" not in {first.name for first, _ in pairs(runtime_graph(squeeze_excitation_net(True)))}

    def imbalance(n):
        """The largest ratio between a pair's output-channel and input-channel ranges."""
        worst = 1.0
        for first, consumers in pairs(n):
            w1 = n.resources[first.name]["filter"].numpy(np.float32).reshape(first.params["output_channel"], -1)
            r1 = np.abs(w1).max(axis=1)
            columns = []
            for c in consumers:
                w = n.resources[c.name]["filter"].numpy(np.float32).reshape(c.params["output_channel"], -1,
                                                                            c.params["kernel_h"] * c.params["kernel_w"])
                columns.append(np.abs(w).max(axis=(1, 2)) if c.params["group"] > 1 else np.abs(w).max(axis=(0, 2)))
            ratio = r1 / np.max(columns, axis=0)
            worst = max(worst, float(np.max(np.maximum(ratio, 1 / ratio))))
        return worst

    equalized, count = equalize(net)
    assert count == 3
    assert imbalance(net) > 2 and imbalance(equalized) < 1.01
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)
    a, b = Interpreter(net).forward({"x": x})["y"], Interpreter(equalized).forward({"x": x})["y"]
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_weight_progress_counts_values_and_moves_inside_a_layer(monkeypatch):
    """The weights' progress is in weight values: it ends at the model's count, never goes
    back, and ADMM reports inside a layer, piece by piece (pieces of 4 rows here)."""
    from quantization_cmd.events import Progress
    from quantization_cmd.weight_methods import admm

    net = digits()
    monkeypatch.setattr(admm, "PIECE_VALUES", 4 * 16)
    events = []
    quantize(net, digit_batches(8), from_tnn_flags(0, 1, 0),
             on_event=lambda e: events.append(e) if isinstance(e, Progress) and e.task == "quantizing weights" else None)
    values = sum(net.resources[layer.name][key].data.size for layer in net.layers if layer.name in net.resources
                 for key in ("filter", "weight") if key in net.resources[layer.name])
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == values and {e.total for e in events} == {values}
    weighted = sum(1 for layer in net.layers if layer.type_str in ("Convolution", "InnerProduct"))
    assert len(set(done)) > weighted + 1  # more steps than one per layer
