"""The PP-OCR text-direction classifier (depthwise, squeeze-excitation, HardSwish; from the
rapidocr-onnxruntime wheel) on rendered text lines: accuracy of fp32 and of int8 variants,
calibrated on 100 lines and judged on `--lines` others (labels: upright 0, turned 1).

    python benchmarks/ppocr_cls_accuracy.py [--lines 1000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def variants():
    from quantization_cmd import BlobConfig, LayerConfig, QuantConfig, from_tnn_flags
    from quantization_cmd.api import BEST

    per_tensor = QuantConfig(BlobConfig("MIN_MAX", "tensor"), LayerConfig("MIN_MAX", "tensor"))
    return [
        ("TNN -b 0 (per channel)", from_tnn_flags(0, 0, 0), {}),
        ("TNN -b 2 -w 1", from_tnn_flags(2, 1, 0), {}),
        ("TNN -t 2 (per tensor)", from_tnn_flags(0, 0, 2), {}),
        ("per tensor + equalization", per_tensor, {"equalization": True}),
        ("per tensor + equalization + bias correction", per_tensor, {"equalization": True, "bias_correction": True}),
        ("MSE", QuantConfig(BlobConfig("MSE")), {}),
        ("MSE + bias correction", QuantConfig(BlobConfig("MSE")), {"bias_correction": True}),
        ("TNN -b 0 + AdaRound + bias correction", from_tnn_flags(0, 0, 0), {"rounding": True, "bias_correction": True}),
        ("-b 3 + equalization + AdaRound + bias correction", from_tnn_flags(3, 0, 0), dict(equalization=True, **BEST)),
        ("-b 3 -t 2 + AdaRound + bias correction", from_tnn_flags(3, 0, 2), BEST),
        ("-b 3 -t 2 + equalization + AdaRound + bias correction", from_tnn_flags(3, 0, 2),
         dict(equalization=True, **BEST)),
        ("-b 3 -t 1 + AdaRound + bias correction", from_tnn_flags(3, 0, 1), BEST),
        ("-b 3 -t 0 + AdaRound + bias correction", from_tnn_flags(3, 0, 0), BEST),
        ("--best (-b 3, -t chosen on 32 calibration lines left out of its ranges, + AdaRound + bias correction)", None, "best"),
    ]


def main() -> None:
    import real_models
    import text_images
    from kernels import Interpreter
    from quantization_cmd import quantize
    from quantization_cmd.api import default_passes, quantize_best, spread_split
    from tnnformat.onnx2tnn import convert

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    args = parser.parse_args()
    model = real_models.models()["ppocr_cls"]
    net = convert(str(model.onnx()), {"x": model.shape})
    bias, scale = (np.asarray(v, np.float32) for v in model.prep)

    def prepared(pixels):
        return ((pixels.astype(np.float32) - bias) * scale).transpose(0, 3, 1, 2).copy()

    calib = prepared(text_images.lines(100, 48, 192, seed=100)[0])
    pixels, labels = text_images.lines(args.lines, 48, 192, seed=7)
    x = prepared(pixels)

    def predict(n):
        run = Interpreter(n)
        return np.concatenate([next(iter(run.forward({"x": x[i:i + 16]}).values())) for i in range(0, len(x), 16)])

    scores = predict(net)
    reference = scores.argmax(1)
    print(f"PP-OCR text-direction classifier, {len(x)} rendered lines (calibrated on 100 others):\n")
    print("| model | accuracy % | agreement with fp32 % | output SQNR dB |\n| --- | ---: | ---: | ---: |")
    print(f"| fp32 | {100 * np.mean(reference == labels):.2f} | 100.0 | |", flush=True)
    for name, config, options in variants():
        if options == "best":
            result, choice = quantize_best(net, {"x": calib}, *({"x": calib[i]} for i in spread_split(len(calib), 32)))
            name += f": -t {choice.chosen}"
        else:
            result = quantize(net, {"x": calib}, config, passes=default_passes(**options))
        out = predict(result.net)
        got = out.argmax(1)
        sqnr = 10 * np.log10(np.sum(scores.astype(np.float64) ** 2) / np.sum((out.astype(np.float64) - scores) ** 2))
        print(f"| {name} | {100 * np.mean(got == labels):.2f} | {100 * np.mean(got == reference):.1f} | {sqnr:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
