"""Forward speed: our interpreter beside onnxruntime, same machine, same run, as ratios.

Targets (speed issue): float within 1.3x of onnxruntime at batch 8 and 1.5x at batch 1, on
SqueezeNet 1.1 (real weights) and on MobileNet v2 (depthwise convolutions; the benchmark
proto with random weights, exported to ONNX by tnn_as_onnx.py); our int8 simulation within
2x of our float forward (TNN's own int8 SqueezeNet file; TNN's int8 MobileNet v2 proto with
random weights). TNN's own CPU reference device takes about 330 ms per SqueezeNet image.

    python benchmarks/bench_forward.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import kernels  # noqa: E402
import tnnformat  # noqa: E402
from machine import describe  # noqa: E402
from tnn_as_onnx import random_net, to_onnx  # noqa: E402

TNN_REFERENCE_MS = 330.0


def per_image_ms(runs, batch: np.ndarray, repeat: int, rounds: int = 2) -> list:
    """Best ms per image of each run. The runs take turns (`rounds` times, so a slow moment of
    the machine hits them alike); each turn starts with a pause, since OpenBLAS's threads spin
    for about 0.1 s after a product and would take cores from the next run (onnxruntime's
    pool at batch 1 lost up to 3x to them), then one untimed call, then `repeat` timed ones."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for k, run in enumerate(runs):
            time.sleep(0.3)
            run(batch)
            for _ in range(repeat):
                start = time.perf_counter()
                run(batch)
                best[k] = min(best[k], time.perf_counter() - start)
    return [1000 * b / batch.shape[0] for b in best]


def any_batch(path: Path) -> bytes:
    """The ONNX model with a free batch dimension (the file fixes it to 1)."""
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return model.SerializeToString()


def models():
    """(label, float net, its ONNX bytes, an int8 net of the same model)."""
    folder = SHARED / "tnn-reference" / "squeezenet1.1"
    squeezenet = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    int8 = tnnformat.load(folder / "b0_w0_t0.quantized.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
    yield "SqueezeNet 1.1", squeezenet, any_batch(SHARED / "models" / "squeezenet1.1.onnx"), int8
    mobilenet = random_net("mobilenet_v2")
    yield "MobileNet v2 (random weights)", mobilenet, to_onnx(mobilenet), random_net("quant_mobilenet_v2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime

    print(describe())
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    for label, net, onnx_bytes, int8_net in models():
        interpreter, int8 = kernels.Interpreter(net), kernels.Interpreter(int8_net)
        session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        name, shape = next(iter(net.inputs.items()))
        ort_input = session.get_inputs()[0].name
        for size in (1, 8):
            batch = np.random.default_rng(0).standard_normal((size,) + tuple(shape[1:])).astype(np.float32)
            ours, ort, ours_int8 = per_image_ms([lambda b: interpreter.forward({name: b}),
                                                 lambda b: session.run(None, {ort_input: b}),
                                                 lambda b: int8.forward({name: b})], batch, args.repeat)
            target = 1.5 if size == 1 else 1.3
            print(f"{label:30s} batch {size}: float {ours:6.2f} ms/image, onnxruntime {ort:6.2f}: "
                  f"{ours / ort:4.2f}x (target {target}x); int8 {ours_int8:6.2f} ms/image: "
                  f"{ours_int8 / ours:4.2f}x our float (target 2x)", flush=True)


if __name__ == "__main__":
    main()
