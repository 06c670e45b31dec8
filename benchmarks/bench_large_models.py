"""Larger models within memory: ResNet50 and Inception v3 (the benchmark protos with seeded
random weights) calibrated by quantization_cmd and, on the same model exported to ONNX
(tnn_as_onnx.py, outputs checked against ours), by onnxruntime's quantize_static MinMax.

Both tools read the same `--images` ImageNet calibration images (resized to the input by
each tool; BGR minus 104, 117, 123), each run in a fresh process; wall time and the child's
peak RSS. Ours runs `-b 0` (MIN_MAX, TNN's default per-channel) with and without the
int8-vs-float table.

    python benchmarks/bench_large_models.py [--images 50] [--models resnet50,inception_v3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_quantize import IMAGES, timed  # noqa: E402
from machine import describe  # noqa: E402
from tnn_as_onnx import check, random_net, to_onnx  # noqa: E402

ORT_CHILD = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

source, target, folder, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

class Reader(CalibrationDataReader):
    def __init__(self):
        self.files = iter(sorted(Path(folder).iterdir()))

    def get_next(self):
        path = next(self.files, None)
        if path is None:
            return None
        image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        bgr = np.asarray(image, np.float32)[:, :, ::-1]
        return {"input": np.ascontiguousarray((bgr - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)[None])}

quantize_static(source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--models", default="resnet50,inception_v3")
    args = parser.parse_args()
    import onnxruntime
    import tnnformat

    print(describe())
    with tempfile.TemporaryDirectory() as folder:
        images = Path(folder) / "images"
        images.mkdir()
        for path in sorted(IMAGES.iterdir())[:args.images]:
            shutil.copy(path, images / path.name)
        for name in args.models.split(","):
            net = random_net(name)
            (input_name, shape), = net.inputs.items()
            assert input_name == "input", input_name
            prefix = Path(folder) / name
            tnnformat.save(net, f"{prefix}.tnnproto", f"{prefix}.tnnmodel")
            onnx_path = Path(folder) / f"{name}.onnx"
            onnx_path.write_bytes(to_onnx(net))
            session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            batch = {input_name: np.random.default_rng(0).standard_normal((1,) + tuple(shape[1:])).astype(np.float32)}
            difference = check(net, session, batch)
            ours = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                    "from quantization_cmd.cli import main; main()", str(ROOT),
                    "-p", f"{prefix}.tnnproto", "-m", f"{prefix}.tnnmodel", "-i", str(images), "-r", "1",
                    "-n", "104,117,123", "-s", "1,1,1", "-b", "0", "-o", str(Path(folder) / "q")]
            skip, skip_mb = timed(ours + ["--skip_fidelity"])
            table, table_mb = timed(ours)
            ort, ort_mb = timed([sys.executable, "-c", ORT_CHILD, str(onnx_path), str(Path(folder) / "o.onnx"),
                                 str(images), str(shape[2])])
            print(f"{name} ({args.images} images, {shape[2]}x{shape[3]}; outputs agree to {difference:.1e}): "
                  f"ours {skip:.1f} s {skip_mb:.0f} MB, with the table {table:.1f} s {table_mb:.0f} MB; "
                  f"onnxruntime MinMax {ort:.1f} s {ort_mb:.0f} MB; ratio {skip / ort:.2f}x, "
                  f"with the table {table / ort:.2f}x", flush=True)


if __name__ == "__main__":
    main()
