"""`--best`'s steps on SqueezeNet 1.1 with the 100 calibration images: wall time per step and
in all, against the issue's target of 60 s on this machine and the plain `-b 0` calibration,
at the merge type given (default 1, the one --best chooses for SqueezeNet), then the whole of
`quantize_best` (its choice between -t 1 and -t 0 calibrates both on 68 images and checks
them on the other 32).

    python benchmarks/bench_best.py [merge type]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
TARGET_S = 60.0


def main() -> None:
    from quantization_cmd import from_tnn_flags, quantize
    from quantization_cmd.api import BEST, BEST_FLAGS, default_passes, quantize_best, spread_split
    from quantization_cmd.events import Progress, TaskDone
    from range_methods import squeezenet_calibration

    net, calib = squeezenet_calibration()
    base = from_tnn_flags(0, 0, 0)
    best = from_tnn_flags(**BEST_FLAGS, merge_type=int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    for label, config, flags in (("-b 0", base, {}), ("--best", best, BEST)):
        starts, steps = {}, []

        def on_event(event):
            if isinstance(event, Progress) and event.task not in starts:
                starts[event.task] = time.perf_counter()
            elif isinstance(event, TaskDone) and event.task in starts:
                steps.append((event.task, time.perf_counter() - starts[event.task]))

        started = time.perf_counter()
        quantize(net, {"data_0": calib}, config, passes=default_passes(**flags), on_event=on_event)
        total = time.perf_counter() - started
        print(f"{label}: {total:.1f} s ({total / TARGET_S:.2f}x the {TARGET_S:.0f} s target)")
        for task, seconds in steps:
            print(f"  {task}: {seconds:.1f} s")
    started = time.perf_counter()
    _, choice = quantize_best(net, {"data_0": calib}, *({"data_0": calib[i]} for i in spread_split(len(calib), 32)))
    total = time.perf_counter() - started
    print(f"quantize_best, choice included (-t {choice.chosen}): {total:.1f} s ({total / TARGET_S:.2f}x the target)")


if __name__ == "__main__":
    main()
