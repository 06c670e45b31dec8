"""The fuzzer on every CI run: a few thousand seeded mutations of the demo, its int8 model and
a small ONNX model, each loaded and run in a worker under a 2 GB address-space limit. Any
outcome other than a clean rejection, an intact or consistently renamed load, or another
valid model (then run, or refused by KernelError) fails, naming the case."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import require

require("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_models  # noqa: E402

BROKEN_STRUCTURE = ("proto: truncate", "proto: swap two layer lines", "proto: delete a layer line",
                    "proto: duplicate a layer name", "model: truncate", "onnx: truncate")


def test_mutated_models_have_only_allowed_outcomes(tmp_path):
    problems = []
    tally = fuzz_models.fuzz(3000, 2026, tmp_path, problems.append)
    assert not problems, "\n".join(problems[:20])
    assert all(sum(counts.values()) >= 150 for counts in tally.values())
    for strategy in BROKEN_STRUCTURE:  # the seeds are chains: these never leave another valid graph
        loaded = {o.split("/")[0] for o in tally[strategy]} - {"rejected"}
        assert loaded <= {"intact"}, (strategy, tally[strategy])  # (a truncated trailing quote is harmless)
        assert tally[strategy]["rejected"] > 0.9 * sum(tally[strategy].values()), (strategy, tally[strategy])
    weights = tally["model: flip a weight bit"]
    assert weights["intact/ran"] + weights["intact/KernelError"] > 0.8 * sum(weights.values()), weights
