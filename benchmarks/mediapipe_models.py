"""MediaPipe's 14 .tflite models through tflite2tnn, checked against TFLite's own runtime.

    python benchmarks/mediapipe_models.py            # every model: the README table
    python benchmarks/mediapipe_models.py iris_landmark face_landmark

The models ship inside the mediapipe 0.10.14 wheel (fetched from PyPI with `pip download`,
cached in .cache/). For each model: convert with tflite2tnn (or say why it is refused), run our
float interpreter and LiteRT (ai-edge-litert) on the same real-looking input (an ImageNet
photo from ../shared resized to the input, scaled to [0, 1] or [-1, 1]) and print the worst
output cosine.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheels import extract_from_wheel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "mediapipe"
WHEEL = "mediapipe==0.10.14"


def mediapipe_models() -> Dict[str, Path]:
    """name -> path of the wheel's .tflite files under mediapipe/modules, downloaded once."""
    if not CACHE.exists() or not any(CACHE.glob("*.tflite")):
        extract_from_wheel(WHEEL, CACHE, lambda member: member.startswith("mediapipe/modules/")
                           and member.endswith(".tflite"))
    return {path.stem: path for path in sorted(CACHE.glob("*.tflite"))}


def photo_input(shape: Tuple[int, ...], index: int = 0, signed: bool = False) -> np.ndarray:
    """An NHWC float input from an ImageNet photo: [0, 1], or [-1, 1] when `signed`."""
    from PIL import Image

    photos = sorted((SHARED / "data" / "imagenet-heldout-400").iterdir())
    _, h, w, c = shape
    image = Image.open(photos[index % len(photos)]).convert("RGB").resize((w, h), Image.BILINEAR)
    x = np.asarray(image, np.float32)[None, :, :, :c] / 255.0
    return x * 2 - 1 if signed else x


def litert_outputs(path: Path, x: np.ndarray) -> List[np.ndarray]:
    """TFLite's outputs in the file's output order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def ours(net, x: np.ndarray) -> List[np.ndarray]:
    """Our float interpreter's outputs, rank-4 ones back in NHWC."""
    from kernels import Interpreter

    (name,) = net.inputs
    outputs = Interpreter(net).forward({name: x.transpose(0, 3, 1, 2)})
    return [outputs[o].transpose(0, 2, 3, 1) if outputs[o].ndim == 4 else outputs[o] for o in net.outputs]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).reshape(-1), b.astype(np.float64).reshape(-1)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator else float(np.array_equal(a, b))


def check(path: Path) -> Tuple[str, str, str]:
    """(ops, result, worst output cosine) of one model."""
    from tnnformat.tflite2tnn import ConversionError, convert
    from tnnformat.tflite2tnn.graph import read_file

    model = read_file(path)
    ops = ", ".join(sorted({op.op for op in model.operators}))
    try:
        net = convert(path)
    except ConversionError as exc:
        return ops, f"refused: {str(exc).split(': ', 1)[-1]}", "-"
    x = photo_input(tuple(model.tensors[model.inputs[0]].shape))
    worst = min(cosine(a, b) for a, b in zip(ours(net, x), litert_outputs(path, x)))
    return ops, f"converted, {len(net.layers)} layers", f"{worst:.9f}"


def main(names: List[str]) -> None:
    sys.path.insert(0, str(ROOT))
    models = mediapipe_models()
    print("| model | ops | result | cosine |\n| --- | --- | --- | --- |")
    for name, path in models.items():
        if names and name not in names:
            continue
        ops, result, worst = check(path)
        print(f"| {name} | {ops} | {result} | {worst} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
