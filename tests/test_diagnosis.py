"""The diagnosis on models broken on purpose: each names the right layer and cause first."""
from __future__ import annotations

import numpy as np

from quantization_cmd import from_tnn_flags, quantize
from quantization_cmd.diagnosis import diagnose, format_findings
from tnnformat import Layer, Net, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import default_params



def conv(name, src, dst, cin, cout, k=1):
    params = default_params(spec("Convolution").params, group=1, input_channel=cin, output_channel=cout,
                            kernel_h=k, kernel_w=k, stride_h=1, stride_w=1, pad_h=k // 2, pad_w=k // 2, bias=1,
                            pad_type=-1, activation_type=1)
    return Layer("Convolution", name, [src], [dst], params)


def model(outlier: bool = False, branch_gain: float = 1.0) -> Net:
    """x -> a (3x3) -> b -> (c, d) -> concat -> e; `outlier`: one of b's output channels has 100x
    weights; `branch_gain`: d's weights (and so its output) scaled."""
    rng = np.random.default_rng(0)
    shapes = {"a": (8, 3, 3), "b": (8, 8, 1), "c": (4, 8, 1), "d": (4, 8, 1), "e": (4, 8, 1)}
    resources = {}
    for name, (cout, cin, k) in shapes.items():
        w = rng.normal(0, 0.4, (cout, cin, k, k)).astype(np.float32)
        if name == "b" and outlier:
            w[3] *= 100
        if name == "d":
            w *= branch_gain
        resources[name] = {"filter": RawBuffer.from_array(w),
                           "bias": RawBuffer.from_array(np.full(cout, 0.05, np.float32))}
    layers = [conv("a", "x", "ya", 3, 8, 3), conv("b", "ya", "yb", 8, 8), conv("c", "yb", "yc", 8, 4),
              conv("d", "yb", "yd", 8, 4),
              Layer("Concat", "cat", ["yc", "yd"], ["ycat"], default_params(spec("Concat").params, axis=1)),
              conv("e", "ycat", "z", 8, 4)]
    return Net(inputs={"x": (1, 3, 16, 16)}, outputs=["z"], layers=layers, resources=resources)


def samples(channel_gain=(1.0, 1.0, 1.0)):
    x = np.random.default_rng(1).uniform(0, 1, (32, 3, 16, 16)).astype(np.float32)
    x *= np.asarray(channel_gain, np.float32)[None, :, None, None]
    return [{"x": x[i:i + 8]} for i in range(0, 32, 8)]


def first(net, batches, merge_type):
    result = quantize(net, batches, from_tnn_flags(0, 0, merge_type))
    findings = diagnose(result, batches)
    assert findings, "nothing found"
    return findings[0], format_findings(findings)


def test_a_wrong_scale_on_one_input_channel_is_preprocessing_at_the_first_layer():
    finding, text = first(model(), samples((1.0, 1.0, 100.0)), merge_type=1)
    assert (finding.cause, finding.layer, finding.blob) == ("preprocessing", "a", "x"), text
    assert "-s" in finding.fix


def test_an_outlier_weight_channel_is_named_at_its_layer():
    finding, text = first(model(outlier=True), samples(), merge_type=2)
    assert (finding.cause, finding.layer) == ("outlier weight channel", "b"), text
    assert "output channel 3" in finding.detail


def test_a_concat_of_ranges_100x_apart_is_a_scale_conflict_with_a_measured_fix():
    finding, text = first(model(branch_gain=100.0), samples(), merge_type=1)
    assert (finding.cause, finding.layer) == ("scale conflict", "cat"), text
    before, after = finding.gain
    assert after > before, text


def test_a_healthy_model_has_no_accuracy_finding_above_the_broken_ones():
    result = quantize(model(), samples(), from_tnn_flags(0, 0, 0))
    findings = diagnose(result, samples())
    assert all(f.cost_db < 20 for f in findings), format_findings(findings)
