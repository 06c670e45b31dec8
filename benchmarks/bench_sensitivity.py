"""Per-layer sensitivity of SqueezeNet 1.1's 26 convolutions on the 100 calibration images
(`-r 1 -n 104,117,123 -s 1,1,1`, TNN's default `-b 0`), both ways, beside a plain calibration
of the same model on the same images; the issue's target is 2 minutes on this machine.

    python benchmarks/bench_sensitivity.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
TARGET_S = 120.0


def timed(work):
    """`work()`'s result and its wall time in seconds."""
    started = time.perf_counter()
    return work(), time.perf_counter() - started


def main() -> None:
    from quantization_cmd import from_tnn_flags, quantize
    from quantization_cmd.sensitivity import format_sensitivity, sensitivity
    from range_methods import squeezenet_calibration

    net, calib = squeezenet_calibration()
    result, calibration = timed(lambda: quantize(net, {"data_0": calib}, from_tnn_flags(0, 0, 0)))
    convolutions = [layer.name for layer in result.plan.net.layers if layer.type == "Convolution"]
    batches = [{"data_0": calib[i:i + 8]} for i in range(0, len(calib), 8)]
    table, seconds = timed(lambda: sensitivity(result, batches, layers=convolutions))
    print(format_sensitivity(table))
    print(f"plain calibration (-b 0): {calibration:.1f} s")
    print(f"sensitivity of {len(convolutions)} convolutions, both ways, {table.samples} images: {seconds:.1f} s "
          f"({seconds / calibration:.1f}x the calibration; {seconds / TARGET_S:.2f}x the {TARGET_S:.0f} s target)")


if __name__ == "__main__":
    main()
