"""Range methods and refinements side by side on SqueezeNet 1.1: calibrated on ../shared/data/imagenet-calib-100,
judged on the 400 held-out images of ../shared/data/imagenet-heldout-400 (never seen in
calibration): top-1, top-5, top-1 agreement with fp32 and the SQNR of the softmax output
against fp32's (a continuous measure, steadier than agreement on 400 images), per method, weights MIN_MAX per
channel unless the row says otherwise; "+ ..." rows add the pipeline's passes (bias
correction, equalization, threshold tuning, AdaRound; --best as the CLI chains them), beside
the top-1 of TNN's own int8 file for the same flags where there is one.

    python benchmarks/range_methods.py [--heldout N] [--tnn_tool]

Statistics are collected once (every statistic any method needs) and every method's scales
come from them, so the rows differ only by the method.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "tnn-reference" / "squeezenet1.1"


def rows() -> List[tuple]:
    """(label, config, passes: the keyword flags of api.default_passes)."""
    from quantization_cmd import BlobConfig, LayerConfig, QuantConfig, from_tnn_flags
    from quantization_cmd.api import BEST

    def named(method, **kw):
        return QuantConfig(BlobConfig(method, **kw))

    bc, w4 = dict(bias_correction=True), QuantConfig(weights=LayerConfig(bits=4))
    return [
        ("TNN -b 0 (MIN_MAX)", from_tnn_flags(0, 0, 0), {}),
        ("TNN -b 2 (KL)", from_tnn_flags(2, 0, 0), {}),
        ("TNN -b 2 -w 1 (KL + ADMM)", from_tnn_flags(2, 1, 0), {}),
        ("TNN -b 3 (ASY_MIN_MAX)", from_tnn_flags(3, 0, 0), {}),
        ("TNN -b 4 (ACIQ_GAUS)", from_tnn_flags(4, 0, 0), {}),
        ("TNN -b 5 (ACIQ_LAPLACE)", from_tnn_flags(5, 0, 0), {}),
        ("TNN -t 1 (mix)", from_tnn_flags(0, 0, 1), {}),
        ("TNN -t 2 (per-tensor)", from_tnn_flags(0, 0, 2), {}),
        ("PERCENTILE 99.99", named("PERCENTILE"), {}),
        ("PERCENTILE 99.999", named("PERCENTILE", param=99.999), {}),
        ("MSE", named("MSE"), {}),
        ("QUANTILE_MEAN 1e-4", named("QUANTILE_MEAN"), {}),
        ("QUANTILE_MEDIAN 1e-4, asymmetric", named("QUANTILE_MEDIAN", symmetric=False), {}),
        ("MSE + ADMM weights", QuantConfig(BlobConfig("MSE"), LayerConfig("ADMM")), {}),
        ("-b 0 + bias correction", from_tnn_flags(0, 0, 0), bc),
        ("-b 2 + bias correction", from_tnn_flags(2, 0, 0), bc),
        ("PERCENTILE 99.99 + bias correction", named("PERCENTILE"), bc),
        ("MSE + bias correction", named("MSE"), bc),
        ("-b 0 + equalization", from_tnn_flags(0, 0, 0), dict(equalization=True)),
        ("-b 0 + threshold tuning", from_tnn_flags(0, 0, 0), dict(tuning=True)),
        ("-b 0 + threshold tuning + bias correction", from_tnn_flags(0, 0, 0), dict(tuning=True, **bc)),
        ("-b 0 + AdaRound", from_tnn_flags(0, 0, 0), dict(rounding=True)),
        ("-b 0 + AdaRound + bias correction", from_tnn_flags(0, 0, 0), dict(rounding=True, **bc)),
        ("-b 3 + bias correction", from_tnn_flags(3, 0, 0), bc),
        ("-b 3 + AdaRound + bias correction", from_tnn_flags(3, 0, 0), BEST),
        ("-b 3 + equalization + AdaRound + bias correction", from_tnn_flags(3, 0, 0), dict(equalization=True, **BEST)),
        ("-b 0 + equalization + AdaRound + bias correction", from_tnn_flags(0, 0, 0), dict(equalization=True, **BEST)),
        ("-b 3 -t 1 + bias correction", from_tnn_flags(3, 0, 1), bc),
        ("-b 3 -t 1 + equalization + AdaRound + bias correction", from_tnn_flags(3, 0, 1),
         dict(equalization=True, **BEST)),
        ("-b 3 -t 1 + AdaRound + bias correction", from_tnn_flags(3, 0, 1), BEST),
        ("--best (-b 3, -t chosen on 32 calibration images left out of its ranges, + AdaRound + bias correction)", None, "best"),
        ("-t 2 + equalization", from_tnn_flags(0, 0, 2), dict(equalization=True)),
        ("4-bit weights, round to nearest", w4, {}),
        ("4-bit weights, AdaRound", w4, dict(rounding=True)),
        ("4-bit weights, AdaRound + bias correction", w4, dict(rounding=True, **bc)),
    ]


#: The int8 files TNN's own quantization_cmd wrote for a row's flags on the same 100 images
#: (../shared/tnn-reference); their top-1 on the held-out images is measured in our interpreter,
#: which computes what TNN's runtime does (tests/test_quant_tnn_runtime.py). `--tnn_tool` also
#: runs TNN's tool from ../shared/tnn-runtime for the flag sets without a reference file.
TNN_FILES = {"TNN -b 0 (MIN_MAX)": "b0_w0_t0", "TNN -b 2 -w 1 (KL + ADMM)": "b2_w1_t0",
             "TNN -t 2 (per-tensor)": "b0_w0_t2"}
TNN_TOOL_FLAGS = {"TNN -b 5 (ACIQ_LAPLACE)": "-b 5 -w 0 -t 0", "TNN -b 4 (ACIQ_GAUS)": "-b 4 -w 0 -t 0"}


def tnn_files(run_tool: bool, folder: Path) -> Dict[str, Tuple[Path, Path]]:
    """Row label -> (proto, model) of TNN's own int8 file for that row."""
    import subprocess

    found = {label: (MODEL / f"{p}.quantized.tnnproto", MODEL / f"{p}.quantized.tnnmodel")
             for label, p in TNN_FILES.items()}
    tool = SHARED / "tnn-runtime" / "bin" / "quantization_cmd"
    for label, flags in TNN_TOOL_FLAGS.items() if run_tool else ():
        out = folder / flags.replace(" ", "").replace("-", "_")
        subprocess.run([str(tool), "-p", str(MODEL / "squeezenet1.1.tnnproto"), "-m", str(MODEL / "squeezenet1.1.tnnmodel"),
                        "-i", str(SHARED / "data" / "imagenet-calib-100"), *flags.split(), "-r", "1",
                        "-n", "104,117,123", "-s", "1,1,1", "-o", str(out)], check=True, capture_output=True)
        found[label] = (Path(f"{out}.quantized.tnnproto"), Path(f"{out}.quantized.tnnmodel"))
    return found


def images(folder: Path, count: int) -> Tuple[np.ndarray, np.ndarray]:
    from quantization_cmd.inputs import Preprocess, list_input_files, read_input_file

    prep = Preprocess(True, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))
    synsets = (SHARED / "data" / "imagenet-synsets.txt").read_text().split()
    files = list_input_files(folder)[:count]
    x = np.concatenate([read_input_file(f, (1, 3, 224, 224), prep) for f in files])
    return x, np.array([synsets.index(f.name.split("_")[0]) for f in files])


def squeezenet_calibration():
    """TNN's float SqueezeNet 1.1 and its 100 calibration images, preprocessed."""
    import tnnformat

    net = tnnformat.load(MODEL / "squeezenet1.1.tnnproto", MODEL / "squeezenet1.1.tnnmodel")
    return net, images(SHARED / "data" / "imagenet-calib-100", 100)[0]


def scores(net, x: np.ndarray) -> np.ndarray:
    from kernels import Interpreter

    run = Interpreter(net)
    return np.concatenate([next(iter(run.forward({"data_0": x[i:i + 8]}).values())).reshape(len(x[i:i + 8]), -1)
                           for i in range(0, len(x), 8)])


def metrics(s: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    top5 = np.argsort(-s, axis=1)[:, :5]
    error = np.sum((s.astype(np.float64) - reference) ** 2)
    return {"top1": 100 * np.mean(top5[:, 0] == labels), "top5": 100 * np.mean(np.any(top5 == labels[:, None], 1)),
            "agree": 100 * np.mean(top5[:, 0] == reference.argmax(1)),
            "sqnr": 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / error) if error else np.inf}


def main() -> None:
    import tnnformat
    from quantization_cmd import BlobConfig, QuantConfig, quantize
    from quantization_cmd.api import default_passes, quantize_best, spread_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=int, default=400)
    parser.add_argument("--tnn_tool", action="store_true",
                        help="also run TNN's own tool (minutes per flag set) for " + ", ".join(TNN_TOOL_FLAGS))
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    references = tnn_files(args.tnn_tool, Path(scratch.name))
    net = tnnformat.load(MODEL / "squeezenet1.1.tnnproto", MODEL / "squeezenet1.1.tnnmodel")
    calib, _ = images(SHARED / "data" / "imagenet-calib-100", 100)
    x, labels = images(SHARED / "data" / "imagenet-heldout-400", args.heldout)
    reference = scores(net, x)
    fp32 = metrics(reference, labels, reference)
    started = time.perf_counter()
    stats = quantize(net, {"data_0": calib}, QuantConfig(BlobConfig("ACIQ_LAPLACE")), histograms=True).statistics
    for method in ("QUANTILE_MEAN", "QUANTILE_MEDIAN"):
        stats.update(quantize(net, {"data_0": calib}, QuantConfig(BlobConfig(method))).statistics)
    print(f"statistics: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    lines = [f"| fp32 | {fp32['top1']:.2f} | {fp32['top5']:.2f} | 100.0 | | |"]
    for name, config, flags in rows():
        if flags == "best":
            result, choice = quantize_best(net, {"data_0": calib}, *({"data_0": calib[i]} for i in spread_split(len(calib), 32)))
            name += f": -t {choice.chosen}"
        else:
            result = quantize(net, {"data_0": calib}, config, statistics=None if flags.get("equalization") else stats,
                              passes=default_passes(**flags))
        m = metrics(scores(result.net, x), labels, reference)
        tnn = f"{metrics(scores(tnnformat.load(*references[name]), x), labels, reference)['top1']:.2f}" \
            if name in references else ""
        lines.append(f"| {name} | {m['top1']:.2f} | {m['top5']:.2f} | {m['agree']:.1f} | {m['sqnr']:.2f} | {tnn} |")
        print(lines[-1], file=sys.stderr, flush=True)
    print(f"SqueezeNet 1.1, {len(x)} held-out images, calibrated on 100 others:\n")
    print("| method | top-1 % | top-5 % | top-1 agreement with fp32 % | output SQNR dB | TNN's own file, top-1 % |"
          "\n| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
