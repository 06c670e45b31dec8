"""Every blob method x weight method x merge type TNN accepts, on the ImageNet SqueezeNet 1.1
converted by onnx2tnn and calibrated on the 100 images with `-r 1 -n 104,117,123 -s 1,1,1`:
each writes a model that loads back, with a BlobScale for every input and output of every
quantized layer. The two forward passes are shared by all methods of one blob granularity
(statistics do not depend on the method: `quantize(statistics=...)` reads no data again);
the scales, weights and files are each their own."""
from __future__ import annotations

import numpy as np
import pytest

import tnnformat
from quantization_cmd import from_tnn_flags, quantize
from quantization_cmd.config import TNN_BLOB_METHODS, TNN_WEIGHT_METHODS
from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

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


@pytest.mark.parametrize("merge_types", [[0], [1, 2]])
def test_every_method_combination_writes_a_loadable_model(model, batches, merge_types, tmp_path):
    everything = quantize(model, batches, from_tnn_flags(5, 0, merge_types[0]), histograms=True).statistics
    written = 0
    for blob_method in TNN_BLOB_METHODS:
        for weight_method in TNN_WEIGHT_METHODS:
            for merge in merge_types:
                result = quantize(model, None, from_tnn_flags(blob_method, weight_method, merge),
                                  statistics=everything)
                prefix = tmp_path / f"b{blob_method}_w{weight_method}_t{merge}"
                result.save(str(prefix))
                loaded = tnnformat.load(f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
                quantized = [layer for layer in loaded.layers if layer.quantized]
                assert len(quantized) == len(result.plan.quantized) == 37
                for layer in quantized:
                    for blob in layer.inputs + layer.outputs:
                        scale = loaded.blob_scale(blob)["scale"].numpy()
                        assert np.all(np.isfinite(scale)) and np.all(scale > 0), (prefix.name, blob)
                written += 1
    assert written == len(TNN_BLOB_METHODS) * len(TNN_WEIGHT_METHODS) * len(merge_types)
