"""How fast and lean is tnnformat.load on a 100 MB model?

Target (issue: read and write TNN models): under 2 s, peak memory under 2x the file size.
Builds a ~100 MB model of 3x3 convolutions in a temporary folder, then loads it in a fresh
process and reports wall time and the peak memory the load adds (tracemalloc, which numpy
reports to, and the process's peak RSS growth).

    python benchmarks/bench_load.py [--mb 100]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import tnnformat  # noqa: E402
from tnnformat import DataType, Layer, Net, RawBuffer  # noqa: E402

CHILD = r"""
import json, sys, time, tracemalloc
sys.path.insert(0, sys.argv[3])
import numpy, tnnformat

def high_water():  # peak RSS of this process in bytes (ru_maxrss is inherited across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

base = high_water()
tracemalloc.start()
start = time.perf_counter()
net = tnnformat.load(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
rss = high_water() - base
print(json.dumps({"seconds": seconds, "traced_peak": peak, "rss_growth": rss,
                  "resources": len(net.resources)}))
"""


def build(folder: str, megabytes: float) -> tuple:
    channels = 256
    layer_bytes = channels * channels * 9 * 4
    count = max(1, int(megabytes * 2**20 // layer_bytes))
    rng = np.random.default_rng(0)
    layers, resources, blob = [], {}, "input"
    for i in range(count):
        name = f"conv{i}"
        layers.append(Layer("Convolution", name, [blob], [name], {
            "group": 1, "input_channel": channels, "output_channel": channels,
            "kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1,
            "bias": 1, "pad_type": 0, "dilation_h": 1, "dilation_w": 1, "activation_type": 1}))
        resources[name] = {
            "filter": RawBuffer.from_array(rng.standard_normal((channels, channels, 3, 3), np.float32)),
            "bias": RawBuffer.from_array(np.zeros(channels, np.float32))}
        blob = name
    net = Net(inputs={"input": (1, channels, 56, 56)}, outputs=[blob], layers=layers,
              input_types={"input": DataType.FLOAT}, resources=resources)
    proto, model = os.path.join(folder, "big.tnnproto"), os.path.join(folder, "big.tnnmodel")
    tnnformat.save(net, proto, model)
    return proto, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="model size in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        proto, model = build(folder, args.mb)
        size = os.path.getsize(model)
        out = subprocess.run([sys.executable, "-c", CHILD, proto, model, os.path.dirname(HERE)],
                             check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    mb = size / 2**20
    print(f"model: {mb:.1f} MB, {result['resources']} resources")
    print(f"load time: {result['seconds']:.3f} s   (target 2 s: {result['seconds'] / 2:.2f}x of the budget)")
    for key, label in [("traced_peak", "peak allocated (tracemalloc)"), ("rss_growth", "peak RSS growth")]:
        ratio = result[key] / size
        print(f"{label}: {result[key] / 2**20:.1f} MB = {ratio:.2f}x the file   (target < 2x)")


if __name__ == "__main__":
    main()
