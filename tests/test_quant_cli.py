"""quantization_cmd and eval_cmd as users meet them: flags, inputs, bad input, output files."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import tnnformat
from quantization_cmd.cli import main as quantize
from quantization_cmd.eval_cmd import main as evaluate
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file



DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = ["-p", str(DATA / "digits.tnnproto"), "-m", str(DATA / "digits.tnnmodel")]
PREP = ["-n", "0", "-s", "0.00392156862745098"]


def run(command, args, cwd: Path):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        return CliRunner().invoke(command, args)


def calibration_folder(tmp_path: Path, count: int = 8) -> Path:
    folder = tmp_path / "cal"
    folder.mkdir()
    for path in sorted((DATA / "calibration").glob("*.png"))[:count]:
        shutil.copy(path, folder)
    return folder


def assert_clean_error(result, code: int, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_quantizes_and_writes_a_loadable_model(tmp_path):
    folder = calibration_folder(tmp_path)
    result = run(quantize, MODEL + ["-i", str(folder), "-b", "2", "-w", "1"] + PREP, tmp_path)
    assert result.exit_code == 0, result.output
    net = tnnformat.load(tmp_path / "model_quantized.tnnproto", tmp_path / "model_quantized.tnnmodel")
    quantized = [layer for layer in net.layers if layer.quantized]
    assert len(quantized) == 6
    for layer in quantized:
        for blob in layer.inputs + layer.outputs:
            scale = net.blob_scale(blob)["scale"].numpy()
            assert np.all(np.isfinite(scale)) and np.all(scale > 0)
    assert "quantized 6 of 8 layers" in result.output and "8 samples from 8 files, 0 skipped" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal", "model_quantized.tnnmodel", "model_quantized.tnnproto"]


def test_txt_npy_and_odd_images_are_read(tmp_path):
    folder = calibration_folder(tmp_path, count=2)
    pixels = np.asarray(Image.open(next(folder.glob("*.png"))), np.float32) / 255
    (folder / "one.TXT").write_text("\n".join(f"{v:.6f}" for v in pixels.reshape(-1)))
    np.save(folder / "batch.npy", np.stack([pixels[None]] * 3))
    Image.fromarray((pixels * 65535).astype(np.uint16)).save(folder / "wide.png")
    Image.fromarray((pixels * 255).astype(np.uint8)).convert("RGBA").resize((20, 12)).save(folder / "rgba.PNG")
    Image.fromarray((pixels * 255).astype(np.uint8)).convert("P").save(folder / "palette.bmp")
    result = run(quantize, MODEL + ["-i", str(folder), "-o", "q"] + PREP, tmp_path)
    assert result.exit_code == 0, result.output
    assert "9 samples from 7 files, 0 skipped" in result.output


def test_batches_of_kept_pixels_and_tensors_are_each_files_input(tmp_path):
    """Images are kept between passes as uint8 pixels (a quarter of the float input's bytes)
    and preprocessed when a batch is made, all at once where the batch is all images: the
    batch holds each file's own read_input_file values, bit for bit, in a batch of images and
    in one that mixes images with a .npy tensor."""
    from quantization_cmd.cli_support import KeptArrays, Samples

    rng = np.random.default_rng(3)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / f"i{k}.png")
    np.save(tmp_path / "t.npy", rng.normal(size=(1, 3, 6, 5)).astype(np.float32))
    shape, prep = (1, 3, 6, 5), Preprocess(True, (104.0, 117.5, 123.0), (0.017, 1.0, 1 / 58))
    files = sorted(tmp_path.glob("i*.png")) + [tmp_path / "t.npy"]
    samples = Samples([{"x": f} for f in files], {"x": shape}, prep, size=3, kept=KeptArrays(1 << 20))
    samples.screen()
    assert samples.kept.used == 3 * 6 * 5 * 3 + 3 * 6 * 5 * 4  # three images' pixels, one tensor's floats
    batches = [batch["x"] for batch in samples]
    assert [len(b) for b in batches] == [3, 1]
    expected = np.concatenate([read_input_file(f, shape, prep) for f in files])
    assert np.concatenate(batches).tobytes() == expected.tobytes()
    mixed = Samples([{"x": f} for f in files[1:]], {"x": shape}, prep, size=3, kept=samples.kept)
    mixed.screen()
    assert next(iter(mixed))["x"].tobytes() == expected[1:].tobytes()


def test_image_conversions_match_the_model_channels(tmp_path):
    Image.new("RGB", (5, 4), (200, 100, 50)).save(tmp_path / "c.png")
    x = read_input_file(tmp_path / "c.png", (1, 3, 4, 5), Preprocess(True, (50, 100, 200), (1, 1, 0.5)))
    assert x.shape == (1, 3, 4, 5) and x[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]  # BGR minus BGR means
    gray = read_input_file(tmp_path / "c.png", (1, 1, 8, 10), Preprocess())
    assert gray.shape == (1, 1, 8, 10)
    (tmp_path / "b.JPEG").write_bytes((tmp_path / "c.png").read_bytes())
    (tmp_path / "notes.md").write_text("x")
    assert [p.name for p in list_input_files(tmp_path)] == ["b.JPEG", "c.png"]


def test_unreadable_files_are_skipped_with_a_warning(tmp_path):
    folder = calibration_folder(tmp_path, count=3)
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "short.txt").write_text("1 2 3")
    (folder / "words.txt").write_text("a b c")
    result = run(quantize, MODEL + ["-i", str(folder)] + PREP, tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("broken.png", "short.txt", "words.txt"):
        assert f"warning: skipping {folder / name}" in result.output
    assert "3 samples from 3 files, 3 skipped" in result.output


def test_no_usable_file_is_an_error_and_writes_nothing(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"garbage")
    assert_clean_error(run(quantize, MODEL + ["-i", str(folder)], tmp_path), 1,
                       "none of the 1 files in", "could be used")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run(quantize, MODEL + ["-i", str(empty)], tmp_path), 1, "no calibration files")
    assert_clean_error(run(quantize, MODEL + ["-i", str(tmp_path / "nope")], tmp_path), 1, "does not exist")
    assert not list(tmp_path.glob("model_quantized*"))


@pytest.mark.parametrize("args, fragments", [
    (["-b", "1"], ["'-b' / '--blob_method'", "0 (MIN_MAX), 2 (KL_DIVERGENCE)"]),
    (["-w", "2"], ["'-w' / '--weight_method'", "1 (ADMM)"]),
    (["-t", "3"], ["'-t' / '--merge_type'", "2 (per-tensor)"]),
    (["-r", "2"], ["'-r' / '--reverse_channel'", "1 (BGR)"]),
    (["-n", "1,2"], ["'-n' / '--bias'", "2 values given; the model's input 'input' has 1 channels"]),
    (["-s", "one"], ["'-s' / '--scale'", "not a comma-separated list of numbers"]),
    (["-o", "missing/dir/q"], ["'-o' / '--output'", "does not exist"]),
    (["--check_samples", "0"], ["'--check_samples'", "0 is not in the range"]),
    (["--check_samples", "2", "--skip_fidelity"], ["--check_samples", "cannot go with --skip_fidelity"]),
])
def test_bad_flags_name_the_flag(tmp_path, args, fragments):
    folder = calibration_folder(tmp_path, count=1)
    assert_clean_error(run(quantize, MODEL + ["-i", str(folder)] + args, tmp_path), 2, *fragments)
    assert not list(tmp_path.glob("*quantized*"))


def test_missing_flag_and_model_errors(tmp_path):
    assert_clean_error(run(quantize, ["-p", "x.tnnproto"], tmp_path), 2, "Missing option")
    folder = calibration_folder(tmp_path, count=1)
    result = run(quantize, ["-p", str(tmp_path / "none.tnnproto"), "-m", "none.tnnmodel", "-i", str(folder)], tmp_path)
    assert_clean_error(result, 1, "none.tnnproto", "cannot read the proto")
    broken = tmp_path / "broken.tnnmodel"
    broken.write_bytes((DATA / "digits.tnnmodel").read_bytes()[:500])
    result = run(quantize, ["-p", str(DATA / "digits.tnnproto"), "-m", str(broken), "-i", str(folder)], tmp_path)
    assert_clean_error(result, 1, "broken.tnnmodel", "truncated")
    assert len(result.output.strip().splitlines()) == 1  # one line, nothing else


def test_inputs_are_never_modified(tmp_path):
    folder = calibration_folder(tmp_path, count=4)

    def digest():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in list(folder.iterdir()) + [DATA / "digits.tnnproto", DATA / "digits.tnnmodel"]}

    before = digest()
    assert run(quantize, MODEL + ["-i", str(folder), "-o", str(folder / "q")] + PREP, tmp_path).exit_code == 0
    after = digest()
    assert {k: after[k] for k in before} == before


def test_html_report_is_self_contained(tmp_path):
    folder = calibration_folder(tmp_path, count=4)
    result = run(quantize, MODEL + ["-i", str(folder), "-b", "2", "--report", "r.html"] + PREP, tmp_path)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg ") == 6 and "http" not in page.replace("http-equiv", "")
    for blob in ("relu1", "pool1", "relu2", "pool2", "relu3", "fc"):
        assert f"<td>{blob}</td>" in page


def test_eval_cmd_label_errors(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("digit_000.png 3\n")
    args = MODEL + ["-i", str(DATA / "heldout")] + PREP
    assert_clean_error(run(evaluate, args + ["-g", str(labels)], tmp_path), 1, "has no label for 399 image(s)")
    synsets = tmp_path / "synsets.txt"
    synsets.write_text("n01\nn02\n")
    assert_clean_error(run(evaluate, args + ["--synsets", str(synsets)], tmp_path), 1, "synset 'digit' is not in")
    assert_clean_error(run(evaluate, args, tmp_path), 2, "exactly one of -g/--ground_truth and --synsets")


def test_check_samples_limits_the_table_not_the_model(tmp_path):
    """--check_samples N compares the first N inputs (the table says so); the model is the
    one the whole check would have come with."""
    folder = calibration_folder(tmp_path)
    outputs = {}
    for name, extra in (("all", []), ("three", ["--check_samples", "3"])):
        result = run(quantize, MODEL + ["-i", str(folder), "-o", name] + PREP + extra, tmp_path)
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    assert "int8 against float on the first 3 of the calibration inputs" in outputs["three"]
    assert "int8 against float on the calibration inputs" in outputs["all"]
    for suffix in (".tnnproto", ".tnnmodel"):
        assert (tmp_path / f"all{suffix}").read_bytes() == (tmp_path / f"three{suffix}").read_bytes()
