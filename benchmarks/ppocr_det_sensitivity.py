"""PP-OCRv4's text detector (rapidocr-onnxruntime 1.4.4, 320x320, rendered pages): the
sensitivity table and `--max_drop` on output cosine, as the command runs them, with the
output cosine and the mask IoU (> 0.5) of the int8 and the mixed model against float.

    python benchmarks/ppocr_det_sensitivity.py [--max_drop 0.2] [--count 16]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_drop", type=float, default=0.2)
    parser.add_argument("--count", type=int, default=16)
    args = parser.parse_args()
    from kernels import Interpreter
    from quantization_cmd import from_tnn_flags, quantize
    from quantization_cmd.accuracy_control import Evaluator, accuracy_control
    from quantization_cmd.output_measures import MaskIoU
    from quantization_cmd.sensitivity import format_sensitivity, sensitivity
    from real_models import _input_name, calibration, models
    from tnnformat.onnx2tnn import convert

    model = models()["ppocr_det"]
    source = model.onnx()
    net = convert(str(source), input_shapes={_input_name(source): model.shape})
    name = next(iter(net.inputs))
    calib, held = calibration(model, args.count), calibration(model, args.count, seed=1000)
    batches = [{name: held[i:i + 4]} for i in range(0, len(held), 4)]
    started = time.perf_counter()
    result = quantize(net, {name: calib}, from_tnn_flags(0, 0, 0))
    print(f"calibration on {args.count} pages: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    table = sensitivity(result, batches)
    print(format_sensitivity(table))
    print(f"sensitivity of {len(table.rows)} layers on {table.samples} held-out pages: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    evaluator = Evaluator(result.float_net, batches, "cosine")
    done = accuracy_control(result, evaluator, batches, args.max_drop, ranking=table.ranking,
                            on_step=lambda s: print(f"  {s.action} {s.layer}: cosine {s.score:.3f}% "
                                                    f"(drop {s.drop:.3f}), {'kept' if s.accepted else 'undone'}"))
    print(f"--max_drop {args.max_drop} on cosine: {time.perf_counter() - started:.1f} s, float layers "
          f"{len(done.float_layers)} ({', '.join(done.float_layers)}), met: {done.met}")
    expected = [Interpreter(result.float_net).forward(b) for b in batches]
    for label, candidate in (("int8", result.net), ("mixed", done.net)):
        iou = MaskIoU()
        outputs = [Interpreter(candidate).forward(b) for b in batches]
        for e, o in zip(expected, outputs):
            iou.add(e[result.float_net.outputs[0]], o[result.float_net.outputs[0]])
        print(f"{label}: output cosine {evaluator.score_outputs(outputs) / 100:.5f}, {iou.summary()}")


if __name__ == "__main__":
    main()
