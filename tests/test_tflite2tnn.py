"""tflite2tnn: MediaPipe's models against TFLite's runtime (LiteRT) and TNN's, bad files
refused in one line, and mutated real files either refused cleanly or converted.

The MediaPipe models come from the mediapipe 0.10.14 wheel on PyPI
(benchmarks/mediapipe_models.py fetches it once into .cache/)."""
from __future__ import annotations

import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tnnformat
from kernels import Interpreter
from quantization_cmd.cli import main as quantize_main
from tnnformat.tflite2tnn import ConversionError, convert
from tnnformat.tflite2tnn.cli import main

from conftest import REPO, require, shared_path
from mutations import mutate, mutation
from tflite_builder import relu_model

sys.path.insert(0, str(REPO / "benchmarks"))
import mediapipe_models as mp  # noqa: E402

CONVERTED = ["face_detection_full_range_sparse", "face_detection_short_range", "face_landmark",
             "hand_landmark_full", "hand_landmark_lite", "hand_recrop", "iris_landmark",
             "palm_detection_full", "palm_detection_lite", "pose_detection", "pose_landmark_full"]
REFUSED = {"face_landmark_with_attention": "operator 192 (Landmarks2TransformMatrix",
           "selfie_segmentation": "(Convolution2DTransposeBias",
           "selfie_segmentation_landscape": "(Convolution2DTransposeBias"}


@pytest.fixture(scope="module")
def models():
    found = mp.mediapipe_models()
    assert sorted(found) == sorted(CONVERTED + list(REFUSED)), sorted(found)
    return found


@pytest.mark.parametrize("name", CONVERTED)
def test_mediapipe_model_matches_litert(models, name):
    require("ai_edge_litert")
    shared_path("data")
    net = convert(models[name])
    (shape,) = net.inputs.values()
    for index, signed in ((0, False), (7, True)):
        x = mp.photo_input((1, shape[2], shape[3], shape[1]), index, signed)
        ours, theirs = mp.ours(net, x), mp.litert_outputs(models[name], x)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert mp.cosine(a, b) >= 0.9999


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_mediapipe_model_with_custom_ops_is_refused_naming_the_operator(models, name):
    with pytest.raises(ConversionError, match=r"^operator \d+ \(.*not supported by tflite2tnn") as info:
        convert(models[name])
    assert REFUSED[name] in str(info.value)


def _run_cli(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_writes_the_model_and_says_what_it_did(tmp_path, models):
    result = _run_cli([models["hand_recrop"], "-o", tmp_path / "m"])
    assert result.exit_code == 0, result.output
    assert "TFLite operators -> 63 TNN layers" in result.output
    net = tnnformat.load(tmp_path / "m.tnnproto", tmp_path / "m.tnnmodel")
    assert list(net.inputs.values()) == [(1, 3, 256, 256)]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _root_outside(data: bytes) -> bytes:
    return struct.pack("<I", 0x7FFFFFF0) + data[4:]


def _vector_too_long(data: bytes) -> bytes:
    """The root table's first vector (operator codes) claims 2**30 entries."""
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    field = root + struct.unpack_from("<H", data, vtable + 4 + 2)[0]
    vector = field + struct.unpack_from("<I", data, field)[0]
    return data[:vector] + struct.pack("<I", 2 ** 30) + data[vector + 4:]


BAD = [
    (lambda d: b"\0\0\0\0TFL2" + d[8:], "no TFL3 file identifier"),
    (lambda d: b"", "no TFL3 file identifier"),
    (_truncated, "outside the file"),
    (_root_outside, "outside the file"),
    (_vector_too_long, "outside the file"),
    (lambda d: relu_model(subgraphs=2), "the model has 2 subgraphs"),
    (lambda d: relu_model(subgraphs=0), "the model has 0 subgraphs"),
    (lambda d: relu_model(signature=[-1, 4]), "input 'x' has a dynamic shape (-1,4); give its shape"),
    (lambda d: relu_model(custom="MyOp"), "operator 0 (MyOp, output 'y'): op MyOp from domain 'custom'"),
    (lambda d: relu_model(builtin=150), "operator 0 (builtin operator 150, output 'y')"),
    (lambda d: relu_model(op_code=5), "opcode index 5 of 1 codes"),
]


@pytest.mark.parametrize("mutate, fragment", BAD)
def test_bad_file_is_one_line_exit_1_and_nothing_written(tmp_path, models, mutate, fragment):
    source = tmp_path / "bad.tflite"
    source.write_bytes(mutate(models["hand_recrop"].read_bytes()))
    result = _run_cli([source, "-o", tmp_path / "out"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("out*"))


def test_a_static_shape_given_for_a_dynamic_input_converts_and_runs():
    net = convert(relu_model(signature=[-1, 4]), {"x": (1, 4)})
    out = Interpreter(net).forward({"x": np.array([[-1, 2, -3, 4]], np.float32)})["y"]
    np.testing.assert_array_equal(out, [[0, 2, 0, 4]])
    with pytest.raises(ConversionError, match="stored at"):
        convert(relu_model(signature=[-1, 4]), {"x": (2, 4)})


def _calibrate(tmp_path: Path, prefix: Path, out: Path) -> None:
    folder = tmp_path / "calibration"
    folder.mkdir(exist_ok=True)
    for photo in sorted(shared_path("data", "imagenet-calib-100").iterdir())[:8]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    result = CliRunner().invoke(quantize_main, [
        "-p", f"{prefix}.tnnproto", "-m", f"{prefix}.tnnmodel", "-i", str(folder), "-n", "0,0,0",
        "-s", ",".join([str(1 / 255)] * 3), "-o", str(out), "--skip_fidelity"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris_landmark", "face_detection_short_range", "hand_landmark_lite"])
def test_mediapipe_model_quantizes_and_tnn_runs_float_and_int8_as_we_do(tmp_path, models, name):
    from tnn_runtime import run_tnn

    net = convert(models[name])
    prefix = tmp_path / "float"
    tnnformat.save(net, f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
    _calibrate(tmp_path, prefix, tmp_path / "int8")
    (input_name, shape), = net.inputs.items()
    x = mp.photo_input((1, shape[2], shape[3], shape[1]), 3).transpose(0, 3, 1, 2)
    for stem in ("float", "int8"):
        model = tnnformat.load(tmp_path / f"{stem}.tnnproto", tmp_path / f"{stem}.tnnmodel")
        ours = Interpreter(model).forward({input_name: x})
        theirs = run_tnn(tmp_path / f"{stem}.tnnproto", {input_name: x})
        for blob, value in ours.items():
            assert mp.cosine(value, theirs[blob]) > 0.99999, (stem, blob)
            np.testing.assert_allclose(value.reshape(-1), theirs[blob].reshape(-1), atol=2e-3, rtol=1e-4)


@pytest.fixture(scope="module")
def fuzz_sources(models):
    return {name: models[name].read_bytes() for name in
            ("hand_recrop", "face_detection_short_range", "face_detection_full_range_sparse")}


def _fails_cleanly_or_converts(data: bytes) -> None:
    tracemalloc.start()
    try:
        net = convert(data)
    except ConversionError as exc:
        assert "\n" not in str(exc)
    else:
        assert net.layers and net.outputs
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 40 * len(data) + 2 ** 24  # no allocation sized by a corrupt count


def _mutated(data: bytes, mutations) -> bytes:
    for kind, where, value in mutations:
        data = mutate(data, kind, where, value)
    return data


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutation, min_size=1, max_size=3), st.booleans())
def test_mutated_tflite_files_fail_cleanly_or_convert(fuzz_sources, mutations, second):
    name = "face_detection_short_range" if second else "hand_recrop"
    _fails_cleanly_or_converts(_mutated(fuzz_sources[name], mutations))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_sparse_tflite_files_fail_cleanly_or_convert(fuzz_sources, mutations):
    """Sparse weights (DENSIFY): segments, indices and block maps from the file."""
    _fails_cleanly_or_converts(_mutated(fuzz_sources["face_detection_full_range_sparse"], mutations))


def test_converted_models_run_at_any_batch(models):
    """Reshapes keep the batch (written 0), so quantization_cmd can run batches of 8. The
    second image alone gives what it gives in the batch of 2, up to float32 rounding: BLAS may
    block a batch of 2 otherwise than one image (OpenBLAS's Haswell kernels do)."""
    net = convert(models["face_detection_short_range"])
    (name, shape), = net.inputs.items()
    x = np.concatenate([mp.photo_input((1, shape[2], shape[3], shape[1]), i).transpose(0, 3, 1, 2)
                        for i in range(2)])
    both, second = Interpreter(net).forward({name: x}), Interpreter(net).forward({name: x[1:]})
    for blob, value in second.items():
        np.testing.assert_allclose(both[blob][1:], value, rtol=1e-5, atol=1e-5 * np.abs(value).max())
