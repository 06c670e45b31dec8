"""Real models from the wild through the whole tool, as a new user would run it.

For each model and flag set: convert with onnx2tnn, quantize (calibration inputs below), run
the int8 model in TNN's own runtime (../shared/tnn-runtime) and in our interpreter on a few
inputs, and measure int8 against float with the measures its outputs call for (output
cosine; top-1 agreement for class scores, mask IoU for score maps, top-k anchors for box
heads). Models: the three PP-OCR models inside the rapidocr-onnxruntime 1.4.4 wheel (fetched
from PyPI with `pip download`, cached in .cache/), a YOLOv8-style detector with random
weights (benchmarks/yolo_style.py) and the model zoo onnx ships (light_*.onnx, random weights).

    python benchmarks/real_models.py               # every model, both flag sets: the README table
    python benchmarks/real_models.py cls yolo      # some of them

Calibration inputs are ImageNet photos from ../shared resized to each input (the zoo and PP-OCR
models) or uniform noise (the random-weight detector): enough to test the plumbing and the
int8 arithmetic, not a statement of task accuracy (the accuracy benchmarks do that).
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheels import extract_from_wheel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "models"
WHEEL = "rapidocr-onnxruntime==1.4.4"
FLAG_SETS = {"default": (0, 0, 0), "-b 2 -w 1": (2, 1, 0)}
#: PP-OCR's preprocessing: (x / 255 - 0.5) / 0.5, i.e. -n 127.5 -s 1/127.5
PPOCR_PREP = ((127.5,) * 3, (1 / 127.5,) * 3)
IMAGENET_PREP = ((123.675, 116.28, 103.53), (0.01712, 0.01751, 0.01743))


def ppocr(name: str) -> Path:
    """One of the wheel's .onnx files, downloaded once into .cache/models."""
    target = CACHE / f"{name}.onnx"
    if target.exists():
        return target
    extract_from_wheel(WHEEL, CACHE, lambda member: member.endswith(".onnx"))
    return target


@dataclass
class Model:
    name: str
    onnx: Callable[[], object]  # path or ModelProto
    shape: Tuple[int, ...]
    inputs: str  # "photos" (ImageNet), "pages" or "lines" (rendered text), "noise" (uniform [0, 1])
    prep: Tuple[tuple, tuple] = IMAGENET_PREP


def _light(name: str):
    def load():
        import onnx

        sys.path.insert(0, str(ROOT / "tests"))
        from test_onnx2tnn_light import with_random_weights

        return with_random_weights(onnx.load(str(Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
                                                 / f"light_{name}.onnx")))
    return load


def models() -> Dict[str, Model]:
    from yolo_style import build

    found = {
        "ppocr_cls": Model("ppocr_cls", lambda: ppocr("ch_ppocr_mobile_v2.0_cls_infer"), (1, 3, 48, 192), "lines",
                           PPOCR_PREP),
        "ppocr_det": Model("ppocr_det", lambda: ppocr("ch_PP-OCRv4_det_infer"), (1, 3, 320, 320), "pages"),
        "ppocr_rec": Model("ppocr_rec", lambda: ppocr("ch_PP-OCRv4_rec_infer"), (1, 3, 48, 320), "lines", PPOCR_PREP),
        "yolo_style": Model("yolo_style", build, (1, 3, 96, 96), "noise"),
    }
    for name in ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                 "squeezenet", "vgg19", "zfnet512"):
        found[f"zoo_{name}"] = Model(f"zoo_{name}", _light(name), (1, 3, 224, 224), "photos")
    return found


def calibration(model: Model, count: int, seed: int = 0) -> np.ndarray:
    """(count, C, H, W) float32 inputs, preprocessed as the model expects."""
    import text_images

    _, _, height, width = model.shape
    if model.inputs == "noise":
        return np.random.default_rng(seed).uniform(0, 1, (count,) + model.shape[1:]).astype(np.float32)
    if model.inputs == "photos":
        sys.path.insert(0, str(ROOT))
        from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

        files = list_input_files(SHARED / "data" / "imagenet-calib-100")[seed:seed + count]
        return np.concatenate([read_input_file(f, model.shape, Preprocess(False, *model.prep)) for f in files])
    pixels = (text_images.pages(count, height, width, seed) if model.inputs == "pages"
              else text_images.lines(count, height, width, seed)[0])
    bias, scale = (np.asarray(v, np.float32) for v in model.prep)
    return ((pixels.astype(np.float32) - bias) * scale).transpose(0, 3, 1, 2).copy()


@dataclass
class Row:
    model: str
    flags: str
    layers: int = 0
    quantized: int = 0
    seconds: float = 0.0
    tnn_max_diff: Optional[float] = None
    tnn_cosine: Optional[float] = None
    cosine: Optional[float] = None
    measure: str = ""
    error: str = ""


def evaluate(model: Model, flags: str, calibrate: int = 16, check: int = 2, folder: Optional[Path] = None) -> Row:
    """Convert, quantize, run in TNN's runtime and in ours; what a user would see."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    import tnnformat
    from kernels import Interpreter
    from quantization_cmd import from_tnn_flags, quantize
    from quantization_cmd.fidelity import BlobError
    from tnnformat.onnx2tnn import convert
    from tnn_runtime import run_tnn

    row = Row(model.name, flags)
    started = time.perf_counter()
    source = model.onnx()
    net = convert(str(source) if isinstance(source, Path) else source,
                  input_shapes=None if not isinstance(source, Path) else {_input_name(source): model.shape})
    name = next(iter(net.inputs))
    x = calibration(model, calibrate)
    result = quantize(net, {name: x}, from_tnn_flags(*FLAG_SETS[flags]), fidelity_samples={name: x})
    row.seconds = time.perf_counter() - started
    row.layers, row.quantized = len(result.plan.net.layers), len(result.plan.quantized)
    fidelity = result.fidelity
    row.cosine = min(o.cosine for o in fidelity.outputs)
    named = len(fidelity.measures) > 1
    row.measure = "; ".join(f"{k}: {m.summary()}" if named else m.summary() for k, m in fidelity.measures.items())
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(folder or tmp) / f"{model.name}_int8"
        result.save(str(prefix))
        ours = Interpreter(tnnformat.load(f"{prefix}.tnnproto", f"{prefix}.tnnmodel"))
        diffs, cosines = [], []
        for i in range(check):
            sample = {name: x[i:i + 1]}
            theirs = run_tnn(Path(f"{prefix}.tnnproto"), sample)
            mine = ours.forward(sample)
            for k in mine:
                same = BlobError(k, "")
                same.add(mine[k].reshape(-1), theirs[k].reshape(-1))
                diffs.append(same.max_abs)
                cosines.append(same.cosine)
        row.tnn_max_diff, row.tnn_cosine = max(diffs), min(cosines)
    return row


def _input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def table(rows: Sequence[Row]) -> str:
    lines = ["| model | flags | layers (int8) | time s | int8 in TNN's runtime vs ours: max abs diff, cosine "
             "| int8 vs float: min output cosine | int8 vs float: outputs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.model} | {r.flags} | failed: {r.error} | | | | |")
            continue
        lines.append(f"| {r.model} | {r.flags} | {r.layers} ({r.quantized}) | {r.seconds:.1f} | {r.tnn_max_diff:.2e}, "
                     f"{r.tnn_cosine:.6f} | {r.cosine:.5f} | {r.measure or '-'} |")
    return "\n".join(lines)


def main(names: List[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    known = models()
    rows = []
    for name in names or list(known):
        for flags in FLAG_SETS:
            try:
                rows.append(evaluate(known[name], flags))
            except Exception as exc:  # a benchmark reports every failure and goes on
                rows.append(Row(name, flags, error=f"{type(exc).__name__}: {str(exc)[:120]}"))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
