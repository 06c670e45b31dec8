"""SqueezeNet 1.1 forward: our interpreter beside onnxruntime, same machine, same run.

Target (kernels issue): within 2x of onnxruntime at batch 8. TNN's own CPU reference
device takes about 330 ms per image here.

    python benchmarks/bench_forward.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402
import tnnformat  # noqa: E402

TNN_REFERENCE_MS = 330.0


def per_image_ms(run, batch: np.ndarray, repeat: int) -> float:
    run(batch)  # warm up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / batch.shape[0]


def any_batch(path: Path) -> bytes:
    """The ONNX model with a free batch dimension (the file fixes it to 1)."""
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime

    folder = SHARED / "tnn-reference" / "squeezenet1.1"
    net = tnnformat.load(folder / "squeezenet1.1.tnnproto", folder / "squeezenet1.1.tnnmodel")
    interpreter = kernels.Interpreter(net)
    session = onnxruntime.InferenceSession(any_batch(SHARED / "models" / "squeezenet1.1.onnx"),
                                           providers=["CPUExecutionProvider"])
    ort_input = session.get_inputs()[0].name
    print(f"cores: {os.cpu_count()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    for size in (1, 8):
        batch = np.random.default_rng(0).standard_normal((size, 3, 224, 224)).astype(np.float32)
        ours = per_image_ms(lambda b: interpreter.forward({"data_0": b}), batch, args.repeat)
        ort = per_image_ms(lambda b: session.run(None, {ort_input: b}), batch, args.repeat)
        print(f"batch {size}: ours {ours:7.2f} ms/image   onnxruntime {ort:6.2f} ms/image   "
              f"ratio {ours / ort:5.2f}x   (TNN CPU reference ~{TNN_REFERENCE_MS:.0f} ms: "
              f"{TNN_REFERENCE_MS / ours:.1f}x faster)")


if __name__ == "__main__":
    main()
