"""Pre-quantized models made by the source runtimes' own tools, for tests and the README.

- `squeezenet_qdq(per_channel)`: onnxruntime's quantize_static (QDQ format, uint8
  activations, int8 weights, MinMax) of ../shared/models/squeezenet1.1.onnx (upgraded to
  opset 13 first, which per-axis DequantizeLinear needs), calibrated on
  the first 32 of the 100 ImageNet calibration images (BGR minus 104, 117, 123).
- `tflite_int8(path, samples)`: LiteRT's post-training int8 quantization (the calibrator
  wrapper ai-edge-litert ships) of a float .tflite, float input and output.
Both are cached in .cache/qdq.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "qdq"
#: SqueezeNet 1.1's preprocessing as the accuracy benchmarks give it: BGR, minus the means.
SQUEEZENET_PREP = dict(reverse=True, bias=(104.0, 117.0, 123.0), scale=(1.0, 1.0, 1.0))


def squeezenet_inputs(folder: str, count: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT))
    from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

    prep = Preprocess(SQUEEZENET_PREP["reverse"], SQUEEZENET_PREP["bias"], SQUEEZENET_PREP["scale"])
    files = list_input_files(SHARED / "data" / folder)[:count]
    return np.concatenate([read_input_file(p, (1, 3, 224, 224), prep) for p in files])


def squeezenet_qdq(per_channel: bool) -> Path:
    """onnxruntime's QDQ SqueezeNet 1.1, per-channel or per-tensor weights."""
    target = CACHE / f"squeezenet1.1_qdq_{'channel' if per_channel else 'tensor'}.onnx"
    if target.exists():
        return target
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter([{"data_0": x[None]} for x in squeezenet_inputs("imagenet-calib-100", 32)])

        def get_next(self):
            return next(self.samples, None)

    CACHE.mkdir(parents=True, exist_ok=True)
    source = CACHE / "squeezenet1.1_opset13.onnx"  # per-axis DequantizeLinear needs opset 13
    upgraded = version_converter.convert_version(onnx.load(str(SHARED / "models" / "squeezenet1.1.onnx")), 13)
    upgraded.ir_version = 7
    onnx.save(upgraded, str(source))
    quantize_static(str(source), str(target), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return target


def tflite_int8(path: Path, samples: Iterable[np.ndarray]) -> bytes:
    """LiteRT's full-int8 quantization of a float .tflite (float input and output)."""
    from ai_edge_litert._pywrap_tensorflow_lite_calibration_wrapper import CalibrationWrapper

    content = Path(path).read_bytes()  # the wrapper reads this buffer: keep it alive
    calibrator = CalibrationWrapper(content, [], [])
    calibrator.Prepare()
    for sample in samples:
        calibrator.FeedTensor([sample])
    return bytes(calibrator.QuantizeModel(np.dtype(np.float32).num, np.dtype(np.float32).num, False,
                                          np.dtype(np.int8).num, np.dtype(np.int32).num, False, False))


def labels(folder: str) -> np.ndarray:
    """Class index of each image (its name starts with its synset; line k of the synsets is k)."""
    sys.path.insert(0, str(ROOT))
    from quantization_cmd.inputs import list_input_files

    synsets = [line.split()[0] for line in (SHARED / "data" / "imagenet-synsets.txt").read_text().splitlines()]
    index = {s: i for i, s in enumerate(synsets)}
    return np.array([index[p.name.split("_")[0]] for p in list_input_files(SHARED / "data" / folder)])


def squeezenet_top1(per_channel: bool, count: int = 400) -> dict:
    """Top-1 on the held-out images: onnxruntime's QDQ model, our import of it in int8 (TNN's
    arithmetic, our interpreter), the dequantized float model, their top-1 agreement (and, since
    onnxruntime's scores tie, its top-1 with each tie's credit shared among the tied classes,
    and how often our top class is one of its top classes), and
    quantization_cmd's own int8 model of the float SqueezeNet on the same calibration images
    (MIN_MAX, per-tensor blobs like onnxruntime's, weights as the QDQ model's)."""
    import onnxruntime

    from kernels import Interpreter
    from quantization_cmd.prequantized import quantize_with_file_scales
    from tnnformat.onnx2tnn import convert_with_summary

    path = squeezenet_qdq(per_channel)
    x, truth = squeezenet_inputs("imagenet-heldout-400", count), labels("imagenet-heldout-400")[:count]
    session = onnxruntime.InferenceSession(str(path))
    theirs = np.concatenate([session.run(None, {"data_0": xi[None]})[0].reshape(1, -1) for xi in x])
    net, summary = convert_with_summary(str(path))
    int8 = quantize_with_file_scales(net, summary.prequantized.scales, summary.prequantized.weights_per_channel).net
    ours = Interpreter(int8).forward({"data_0": x})[int8.outputs[0]].reshape(count, -1)
    dequantized = Interpreter(net).forward({"data_0": x})[net.outputs[0]].reshape(count, -1)
    from quantization_cmd import QuantConfig, quantize
    from quantization_cmd.config import BlobConfig, LayerConfig
    from tnnformat.onnx2tnn import convert

    original = convert(str(SHARED / "models" / "squeezenet1.1.onnx"))
    weights = LayerConfig(granularity="channel" if per_channel else "tensor")
    calibrated = quantize(original, [{"data_0": squeezenet_inputs("imagenet-calib-100", 32)}],
                          QuantConfig(BlobConfig("MIN_MAX", "tensor"), weights)).net
    own = Interpreter(calibrated).forward({"data_0": x})[calibrated.outputs[0]].reshape(count, -1)
    top1 = lambda scores: float((scores.argmax(1) == truth).mean() * 100)  # noqa: E731
    tops = top_classes(theirs)
    return {"onnxruntime QDQ": top1(theirs), "ours int8": top1(ours), "dequantized float": top1(dequantized),
            "agreement": float((ours.argmax(1) == theirs.argmax(1)).mean() * 100),
            "onnxruntime's ties at the top": int((tops.sum(1) > 1).sum()),
            "onnxruntime QDQ, ties shared": float((tops[np.arange(count), truth] / tops.sum(1)).mean() * 100),
            "ours among onnxruntime's top": float(tops[np.arange(count), ours.argmax(1)].mean() * 100),
            "quantization_cmd on the same 32 images": top1(own)}


def top_classes(scores: np.ndarray) -> np.ndarray:
    """(images, classes) True where a class has the image's highest score. onnxruntime's QDQ
    SqueezeNet ends in uint8 codes (the average pool and the softmax are quantized), so several
    classes often share the top code, and argmax then picks the lowest class index."""
    return scores == scores.max(1, keepdims=True)


if __name__ == "__main__":
    for per_channel in (True, False):
        print("per-channel" if per_channel else "per-tensor", squeezenet_top1(per_channel), flush=True)
