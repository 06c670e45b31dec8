"""PP-OCRv4's text detector (rapidocr-onnxruntime 1.4.4, 320x320): the accuracy ablation's rows
on a real detection model, where no labels are needed: each method's int8 model against float
on held-out rendered pages, by output cosine and by the IoU of the text masks (score > 0.5).

Calibrated on `--count` pages (seed 0), judged on `--count` others (seed 1000).

    python benchmarks/ppocr_det_methods.py [--count 32]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

#: (row label, TNN flags -b -w -t, passes beyond TNN's)
ROWS = [
    ("TNN default: MIN_MAX, MIN_MAX, per-channel", (0, 0, 0), {}),
    ("KL, ADMM, per-channel", (2, 1, 0), {}),
    ("ASY_MIN_MAX blobs, mix (-b 3 -t 1)", (3, 0, 1), {}),
    ("-b 3 -t 1 + bias correction", (3, 0, 1), {"bias_correction": True}),
    ("-b 3 -t 0 (ASY_MIN_MAX blobs per channel)", (3, 0, 0), {}),
    ("-b 3 -t 0 + bias correction", (3, 0, 0), {"bias_correction": True}),
    ("--best (-t chosen on a third of the calibration pages, left out of its ranges)", None, "best"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32)
    args = parser.parse_args()
    from kernels import Interpreter
    from quantization_cmd import default_passes, from_tnn_flags, quantize
    from quantization_cmd.api import quantize_best, spread_split
    from quantization_cmd.output_measures import MaskIoU
    from real_models import _input_name, calibration, models
    from tnnformat.onnx2tnn import convert

    model = models()["ppocr_det"]
    source = model.onnx()
    net = convert(str(source), input_shapes={_input_name(source): model.shape})
    name, output = next(iter(net.inputs)), net.outputs[0]
    calib, held = calibration(model, args.count), calibration(model, args.count, seed=1000)
    expected = Interpreter(net).forward({name: held})[output]
    print(f"{'method':50s} {'output cosine':>14s} {'mask IoU':>9s} {'time':>7s}")
    for label, flags, extra in ROWS:
        started = time.perf_counter()
        if extra == "best":
            result, choice = quantize_best(net, {name: calib}, *({name: calib[i]} for i in spread_split(len(calib), len(calib) // 3)))
            label += f": -t {choice.chosen}"
        else:
            result = quantize(net, {name: calib}, from_tnn_flags(*flags), passes=default_passes(**extra))
        seconds = time.perf_counter() - started
        got = Interpreter(result.net).forward({name: held})[output]
        cosine = float(np.dot(expected.ravel(), got.ravel()) /
                       (np.linalg.norm(expected) * np.linalg.norm(got)))
        iou = MaskIoU()
        iou.add(expected, got)
        print(f"{label:50s} {cosine:14.6f} {iou.iou:9.4f} {seconds:6.1f}s", flush=True)


if __name__ == "__main__":
    main()
