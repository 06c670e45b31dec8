"""Per-layer sensitivity, mixed models and accuracy control (`--sensitivity`, `--max_drop`), on
the demo: a layer given 3-bit weights on purpose must come out first and be the one reverted."""
from __future__ import annotations

import numpy as np
import pytest

import tnnformat
from kernels import Interpreter
from quantization_cmd import Override, QuantConfig, quantize
from quantization_cmd.accuracy_control import Evaluator, accuracy_control
from quantization_cmd.mixed import mixed_net, mixed_plan, revertible_layers
from quantization_cmd.sensitivity import OutputError, partial_run, sensitivity
from tnnformat.validate import validate

from test_quant_library import DATA, DIGITS, PREP, digit_batches, digits, run
from test_robust_cli import assert_no_output, assert_one_line_error, calibration, quantize as quantize_cmd

BROKEN = "conv2"


@pytest.fixture(scope="module")
def broken():
    """The demo with conv2's weights at 3 bits: the culprit every ranking must find."""
    config = QuantConfig(overrides=(Override(layers=(BROKEN,), weights={"bits": 3}),))
    return quantize(digits(), digit_batches(32), config)


def full_error(result, float_layers, batches) -> OutputError:
    """The output error of a mixed model run whole, as a check on the partial runs."""
    expected, got = Interpreter(result.float_net), Interpreter(mixed_net(result, float_layers))
    error = OutputError()
    for batch in batches:
        error.add(expected.forward(batch), got.forward(batch), "prob")
    return error


def test_partial_runs_give_the_full_runs_results(broken):
    batches = digit_batches(16)
    table = sensitivity(broken, batches)
    every = revertible_layers(broken)
    assert sorted(row.layer for row in table.rows) == sorted(every) and table.samples == 16
    for row in table.rows:
        reverted = full_error(broken, [row.layer], batches)
        alone = full_error(broken, [name for name in every if name != row.layer], batches)
        assert row.float_alone.error.ee == pytest.approx(reverted.error.ee, rel=1e-9, abs=1e-12)
        assert row.int8_alone.error.ee == pytest.approx(alone.error.ee, rel=1e-9, abs=1e-12)
        assert row.float_alone.agreement.agree == reverted.agreement.agree


def test_only_the_layers_after_the_change_run(broken):
    reference = Interpreter(broken.net).net
    variant = Interpreter(mixed_net(broken, ["conv3"])).net
    made = set(reference.inputs) | {b for layer in reference.layers for b in layer.outputs}
    run_layers, needed = partial_run(variant, reference, made)
    names = [variant.layers[i].name for i in run_layers]
    assert "conv1" not in names and "conv2" not in names and names[0] == "conv3", names
    assert needed and "input" not in needed


def test_the_broken_layer_ranks_first_both_ways(broken):
    table = sensitivity(broken, digit_batches(16))
    assert table.ranking[0] == BROKEN
    worst_alone = min(table.rows, key=lambda row: row.int8_alone.sqnr_db)
    assert worst_alone.layer == BROKEN
    assert table.rows[0].float_alone.sqnr_db > table.base.sqnr_db + 3


def test_a_mixed_model_is_a_valid_tnn_model_with_its_followers_float(broken, tmp_path):
    net = mixed_net(broken, ["conv1"])
    validate(net)
    tnnformat.save(net, tmp_path / "m.tnnproto", tmp_path / "m.tnnmodel")
    loaded = tnnformat.load(tmp_path / "m.tnnproto", tmp_path / "m.tnnmodel")
    quantized = {layer.name for layer in loaded.layers if layer.quantized}
    assert "conv1" not in quantized and "conv2" in quantized
    assert not any(layer.quantized for layer in loaded.layers if loaded.layers.index(layer) < 2
                   and layer.type == "Pooling")
    assert mixed_plan(broken, ["conv1"]).float_layers == ["conv1"]
    x = digit_batches(8)[0]
    np.testing.assert_array_equal(Interpreter(loaded).forward(x)["prob"], Interpreter(net).forward(x)["prob"])


def test_accuracy_control_reverts_the_broken_layer_only(broken):
    evaluator = Evaluator(broken.float_net, digit_batches(40), "cosine")
    start = evaluator.score(broken.net)
    target = (100 - start) / 4  # a quarter of the int8 model's drop
    done = accuracy_control(broken, evaluator, digit_batches(16), target)
    assert done.met and done.float_layers == [BROKEN], done.steps
    assert done.steps[0].action == "int8 model" and done.steps[1].layer == BROKEN


def test_an_unreachable_target_returns_the_best_model_within_the_cap(broken):
    evaluator = Evaluator(broken.float_net, digit_batches(16), "cosine")
    done = accuracy_control(broken, evaluator, digit_batches(16), 0.0, max_float_layers=1)
    assert not done.met and done.float_layers == [BROKEN] and done.score > done.int8_score


def test_the_command_prints_the_table_and_the_steps_and_writes_the_mixed_model(tmp_path):
    args = DIGITS + ["-i", str(DATA / "calibration"), "--eval_path", str(DATA / "heldout"), *PREP,
                     "--weight_bits", "4", "--sensitivity", "--max_drop", "0.05", "--metric", "cosine", "-o", "mixed"]
    result = run(args, tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "SQNR in dB over all outputs" in out and "only this float" in out
    assert "accuracy control on held-out inputs" in out and "revert " in out and "target met" in out
    mixed = tnnformat.load(tmp_path / "mixed.tnnproto", tmp_path / "mixed.tnnmodel")
    floats = [layer.name for layer in mixed.layers if layer.type in ("Convolution", "InnerProduct")
              and not layer.quantized]
    assert floats and f"kept float: {', '.join(sorted(floats, key=[l.name for l in mixed.layers].index))}" in out


def test_top1_on_the_calibration_inputs_says_so(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.name} {k % 10}\n" for k, p in enumerate(sorted((DATA / "calibration").glob("*.png")))))
    result = run(DIGITS + ["-i", str(DATA / "calibration"), *PREP, "--max_drop", "100", "--metric", "top1",
                           "-g", str(labels)], tmp_path)
    assert result.exit_code == 0, result.output
    assert "accuracy control on the calibration inputs" in result.output and "target met" in result.output


def test_strict_fails_when_the_target_is_not_met_and_still_writes(tmp_path):
    args = DIGITS + ["-i", calibration(tmp_path, 8), *PREP, "--weight_bits", "2", "--max_drop", "0",
                     "--metric", "cosine", "--max_float_layers", "0", "--strict", "-o", "best"]
    result = quantize_cmd(args, tmp_path)
    assert_one_line_error(result, "--strict", "--max_drop")
    assert "target NOT met" in result.stdout
    assert (tmp_path / "best.tnnproto").exists()


@pytest.mark.parametrize("extra, flag", [
    (["--max_drop", "101"], "--max_drop"),
    (["--max_drop", "-1"], "--max_drop"),
    (["--max_drop", "1", "--metric", "top5"], "--metric"),
    (["--max_drop", "1", "--max_float_layers", "-2"], "--max_float_layers"),
    (["--max_drop", "1", "--metric", "top1"], "--metric top1"),
    (["--strict"], "--strict"),
])
def test_bad_accuracy_flags_are_one_line_errors_naming_the_flag(tmp_path, extra, flag):
    result = quantize_cmd(DIGITS + ["-i", calibration(tmp_path), *PREP, *extra], tmp_path)
    assert_one_line_error(result, flag, code=2)
    assert_no_output(tmp_path)


def test_labels_that_miss_an_image_name_the_flag(tmp_path):
    folder = calibration(tmp_path, 4)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.name} 1\n" for p in sorted(folder.iterdir())[:3]))
    result = quantize_cmd(DIGITS + ["-i", folder, *PREP, "--max_drop", "1", "--metric", "top1", "-g", labels],
                          tmp_path)
    assert_one_line_error(result, "--ground_truth", "no label for 1 image", code=2)
    assert_no_output(tmp_path)


def test_eval_compare_prints_the_agreement_with_the_float_model(tmp_path):
    from click.testing import CliRunner
    from quantization_cmd.eval_cmd import main as eval_main

    made = run(DIGITS + ["-i", str(DATA / "calibration"), *PREP, "--weight_bits", "3", "--skip_fidelity",
                         "-o", "w3"], tmp_path)
    assert made.exit_code == 0, made.output
    args = ["-p", str(tmp_path / "w3.tnnproto"), "-m", str(tmp_path / "w3.tnnmodel"), "-i", str(DATA / "heldout"),
            "-g", str(DATA / "heldout_labels.txt"), *PREP, "--json", "--compare", *DIGITS[1::2]]
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 0, result.output
    import json
    numbers = json.loads(result.output.strip().splitlines()[-1])
    quantized, reference = Interpreter(tnnformat.load(tmp_path / "w3.tnnproto", tmp_path / "w3.tnnmodel")), \
        Interpreter(digits())
    from quantization_cmd.inputs import Preprocess, read_input_file
    files = sorted((DATA / "heldout").glob("*.png"))
    x = np.concatenate([read_input_file(f, (1, 1, 16, 16), Preprocess(False, (0.0,), (1 / 255,))) for f in files])
    expected = np.mean(quantized.forward({"input": x})["prob"].argmax(1) == reference.forward({"input": x})["prob"].argmax(1))
    assert numbers["n"] == 400 and numbers["agreement"] == pytest.approx(expected) and numbers["agreement"] < 1


def test_the_command_diagnoses(tmp_path):
    result = run(DIGITS + ["-i", str(DATA / "calibration"), *PREP, "-t", "2", "--diagnose", "--skip_fidelity"],
                 tmp_path)
    assert result.exit_code == 0, result.output
    assert "diagnosis, worst first:" in result.output and "float between int8: layer 'global_pool'" in result.output


def test_bitwidth_whatif_at_8_bits_is_the_layer_alone_and_fewer_bits_cost_more():
    from quantization_cmd import from_tnn_flags
    from quantization_cmd.bitwidth import bitwidth_whatif, format_whatif

    result = quantize(digits(), digit_batches(32), from_tnn_flags(0, 0, 0))
    batches = digit_batches(16)
    whatif = bitwidth_whatif(result, batches)
    table = sensitivity(result, batches)
    alone = {row.layer: row.int8_alone for row in table.rows}
    assert set(whatif.errors) == {"conv1", "conv2", "conv3", "fc"}
    for layer, cases in whatif.errors.items():
        for kind in ("weights", "activations"):
            assert cases[(kind, 8)].error.ee == pytest.approx(alone[layer].error.ee, rel=1e-9), (layer, kind)
            four = cases[(kind, 4)].sqnr_db
            assert four < cases[(kind, 6)].sqnr_db and four < cases[(kind, 8)].sqnr_db - 3, (layer, kind)
    assert "weights 4-bit" in format_whatif(whatif)


def test_the_report_holds_the_sensitivity_table_and_the_bitwidth_whatif(tmp_path):
    result = run(DIGITS + ["-i", str(DATA / "calibration"), *PREP, "--sensitivity", "--report", "r.html"], tmp_path)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Per-layer sensitivity (40 samples of the calibration inputs)</h2>" in page
    assert "<h2>Bit-width what-if (40 samples)</h2>" in page and "<th>activations 4-bit</th>" in page
    assert page.count("<tr><td>conv2</td>") == 2


def test_readme_sensitivity_example_runs(tmp_path, monkeypatch):
    from test_quant_library import run_readme_block

    scope = run_readme_block("runnable on the demo, with conv2's weights at 3 bits", tmp_path, monkeypatch)
    assert scope["table"].ranking[0] == "conv2" and scope["done"].float_layers == ["conv2"] and scope["done"].met
    assert (tmp_path / "digits_mixed.tnnmodel").exists()


def test_partially_run_trials_score_as_full_runs(broken):
    evaluator = Evaluator(broken.float_net, digit_batches(24), "cosine")
    done = accuracy_control(broken, evaluator, digit_batches(16), 0.0)
    current = []
    reverts = [s for s in done.steps if s.action == "revert"]
    assert len(reverts) >= 3
    for step in reverts:
        trial = current + [step.layer]
        assert step.score == pytest.approx(evaluator.score(mixed_net(broken, trial)), abs=1e-9), step
        if step.accepted:
            current = trial
