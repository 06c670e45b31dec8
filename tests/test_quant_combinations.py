"""Every blob method x weight method x merge type TNN accepts, on the ImageNet SqueezeNet 1.1
converted by onnx2tnn and calibrated on the 100 images with `-r 1 -n 104,117,123 -s 1,1,1`:
each writes a model that loads back, with a BlobScale for every input and output of every
quantized layer. The two forward passes are shared by all methods of one blob granularity
(the statistics do not depend on the method); the scales, weights and files are each their own."""
from __future__ import annotations

import numpy as np
import pytest

import tnnformat
from kernels.shapes import infer_shapes
from quantization_cmd.blob_methods import ACIQ_LAPLACE, BLOB_METHODS
from quantization_cmd.calibrate import collect_statistics, compute_scales
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file
from quantization_cmd.plan import make_plan
from quantization_cmd.quantize import quantize_net
from quantization_cmd.weight_methods import WEIGHT_METHODS

from conftest import require, shared_path

PREP = Preprocess(True, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def model():
    require("onnx")
    from tnnformat.onnx2tnn import convert

    return convert(str(shared_path("models", "squeezenet1.1.onnx")))


@pytest.fixture(scope="module")
def batches(model):
    name, shape = next(iter(model.inputs.items()))
    samples = [read_input_file(p, shape, PREP) for p in list_input_files(shared_path("data", "imagenet-calib-100"))]
    assert len(samples) == 100
    return [{name: np.concatenate(samples[i:i + 8])} for i in range(0, 100, 8)]


@pytest.mark.parametrize("per_tensor_blobs, merge_types", [(False, [0]), (True, [1, 2])])
def test_every_method_combination_writes_a_loadable_model(model, batches, per_tensor_blobs, merge_types, tmp_path):
    name, shape = next(iter(model.inputs.items()))
    shapes = infer_shapes(model, {name: (8,) + tuple(shape[1:])})
    observing = make_plan(model, ACIQ_LAPLACE, per_tensor_blobs, shapes)  # tracks every statistic
    stats = collect_statistics(observing, shapes, lambda label: batches, all_histograms=True)
    written = 0
    for blob_method in BLOB_METHODS:
        plan = make_plan(model, blob_method, per_tensor_blobs, shapes)
        assert plan.scale_source == observing.scale_source
        for blob, s in stats.items():
            s.method = plan.methods[blob]
        scales = compute_scales(stats)
        for weight_method in WEIGHT_METHODS:
            for merge in merge_types:
                net, count = quantize_net(model, plan, scales, weight_method, merge == 2)
                prefix = tmp_path / f"b{blob_method}_w{weight_method}_t{merge}"
                tnnformat.save(net, f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
                loaded = tnnformat.load(f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
                quantized = [layer for layer in loaded.layers if layer.quantized]
                assert len(quantized) == count == 37
                for layer in quantized:
                    for blob in layer.inputs + layer.outputs:
                        scale = loaded.blob_scale(blob)["scale"].numpy()
                        assert np.all(np.isfinite(scale)) and np.all(scale > 0), (prefix.name, blob)
                written += 1
    assert written == len(BLOB_METHODS) * len(WEIGHT_METHODS) * len(merge_types)
