"""Fuzz the model readers: seeded mutations of real model files, each loaded (and run, when it
loads) in a worker process under an address-space limit; a table of outcomes by strategy.

    python benchmarks/fuzz_models.py --count 20000 [--seed 15] [--cli 200] [--real]

Seeds: the bundled demo (float), its int8 model, and a small ONNX model (converted with
onnx2tnn); with --real also SqueezeNet 1.1 as TNN's converter and TNN's quantization tool wrote
it (../shared). Each case is one strategy applied once. Allowed outcomes:
- `rejected`: load (or onnx2tnn) refused the file with its one error type;
- `intact` / `renamed`: it loaded and its structure (layers, params, blobs, resources' data
  types and sizes) is the original's, or the original's up to a consistent renaming: flipped
  weight or scale bytes, renames that keep a valid graph;
- `changed`: it loaded with another valid structure (a param changed to another legal value);
and after a load, the forward pass either ran or raised KernelError naming a layer. Anything
else fails the run: another exception (`uncaught ...`), a MemoryError under the limit, a hang
over the timeout, a crashed worker. `--cli N` also runs N mutated files through each command
and checks that every failure is one line naming the file, with no traceback, no output file
and no temporary file left.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
REFERENCE = REPO.parent / "shared" / "tnn-reference" / "squeezenet1.1"  # TNN's own files (--real)
HOSTILE_NUMBERS = ["0", "-1", "1", "2", "3", "1000000", "2147483647", "2147483648", "4294967295",
                   "-2147483649", "1e20", "1e39", "nan", "inf", "0.5", "99999999999999999999"]
HOSTILE_INTS = [0, -1, 1, 2, 7, 255, 1 << 16, 1 << 24, 1 << 30, 0x7FFFFFFF, -0x80000000, 0x0FABC0004]
ALLOWED_LOADS = ("rejected", "intact", "renamed", "changed")
ALLOWED_RUNS = ("ran", "KernelError")
LIMIT_BYTES = 2 << 30
FUZZ_BLOB_CAP = 64 << 20  # what the worker's load allows per blob, well inside the limit
TIMEOUT = 10.0


# ---- the worker: load, compare, run --------------------------------------------------------
def structure(net, canonical: bool) -> tuple:
    """What a mutation must not change for a file to count as intact: everything but buffer
    contents; `canonical` names blobs and layers by first appearance."""
    names: Dict[str, str] = {}

    def name(value: str) -> str:
        return names.setdefault(value, f"#{len(names)}") if canonical else value

    inputs = [(name(k), tuple(v)) for k, v in net.inputs.items()]
    layers = [(layer.type_str, name(layer.name), tuple(map(name, layer.inputs)), tuple(map(name, layer.outputs)),
               tuple(sorted((k, json.dumps(v)) for k, v in layer.params.items()))) for layer in net.layers]
    outputs = sorted(name(o) for o in net.outputs)
    suffix = "_scale_data_"

    def owner(key: str) -> str:
        return name(key[:-len(suffix)]) + suffix if key.endswith(suffix) and key[:-len(suffix)] in names else name(key)

    resources = sorted((owner(key), tuple(sorted((k, int(b.data_type), b.dims, b.data.size) for k, b in res.items())))
                       for key, res in net.resources.items())
    return sorted(inputs), layers, outputs, resources


def _run(net) -> str:
    import numpy as np

    from kernels import Interpreter, KernelError

    try:
        rng = np.random.default_rng(0)
        Interpreter(net).forward({k: rng.standard_normal((1,) + tuple(v[1:])).astype(np.float32)
                                  for k, v in net.inputs.items()})
        return "ran"
    except KernelError:
        return "KernelError"


def examine(case: dict, originals: Dict[str, tuple]) -> str:
    """One case's outcome, `load/run` or what went wrong."""
    import tnnformat
    from tnnformat import TnnFormatError

    try:
        if case["kind"] == "onnx":
            from tnnformat.onnx2tnn import ConversionError, convert

            try:
                net = convert(case["path"])
                tnnformat.validate(net, case["path"], case["path"], blob_cap=FUZZ_BLOB_CAP)
            except (ConversionError, TnnFormatError):
                return "rejected"
        else:
            try:
                net = tnnformat.load(case["proto"], case["model"], blob_cap=FUZZ_BLOB_CAP)
            except TnnFormatError:
                return "rejected"
        original = originals[case["seed"]]
        if structure(net, False) == original[0]:
            loaded = "intact"
        elif structure(net, True) == original[1]:
            loaded = "renamed"
        else:
            loaded = "changed"
        return f"{loaded}/{_run(net)}"
    except MemoryError:
        return "MemoryError"
    except Exception as exc:  # what the fuzzer is for: report it, keep going
        return f"uncaught {type(exc).__name__}: {str(exc)[:120]}"


def worker(seeds_json: str) -> None:
    """Read cases (JSON lines) on stdin, answer outcomes on stdout, under the memory limit."""
    import resource
    import warnings

    import numpy as np

    import tnnformat
    from tnnformat.onnx2tnn import convert

    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    seeds = json.loads(seeds_json)
    originals = {}
    for key, seed in seeds.items():
        net = convert(seed["path"]) if seed["kind"] == "onnx" else tnnformat.load(seed["proto"], seed["model"])
        originals[key] = (structure(net, False), structure(net, True))
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(examine(json.loads(line), originals)), flush=True)


class Worker:
    """A worker process; restarted after a hang or a crash."""

    def __init__(self, seeds: dict):
        self.seeds = seeds
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(self.seeds)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout.readline().strip() == "ready"

    def ask(self, case: dict) -> str:
        if self.process is None:
            self.start()
        self.process.stdin.write(json.dumps(case) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        answer = self.process.stdout.readline() if ready else ""
        if answer:
            return json.loads(answer)
        code = self.process.poll()
        self.stop()
        return f"hang over {TIMEOUT:g} s" if code is None else f"crashed (exit {code})"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# ---- mutation strategies -------------------------------------------------------------------
def _flip(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _lines(text: str) -> Tuple[List[str], List[int]]:
    lines = text.split("\n")
    return lines, [i for i, line in enumerate(lines) if i >= 5 and line.strip()]


def _swap_lines(data: bytes, rng: random.Random) -> bytes:
    lines, body = _lines(data.decode())
    a, b = rng.sample(body, 2)
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines).encode()


def _delete_line(data: bytes, rng: random.Random) -> bytes:
    lines, body = _lines(data.decode())
    del lines[rng.choice(body)]
    return "\n".join(lines).encode()


def _duplicate_name(data: bytes, rng: random.Random) -> bytes:
    lines, body = _lines(data.decode())
    a, b = rng.sample(body, 2)
    tokens = lines[b].split(" ")
    tokens[1] = lines[a].split(" ")[1]
    lines[b] = " ".join(tokens)
    return "\n".join(lines).encode()


def _blob_names(text: str) -> List[str]:
    return text.split("\n")[2].strip('" ,').split()


def _rename_blob(data: bytes, rng: random.Random) -> bytes:
    """One occurrence of a blob name replaced by another blob's or a new name."""
    text = data.decode()
    names = _blob_names(text)
    old = rng.choice(names)
    spots = [m.start() for m in re.finditer(rf"(?<= ){re.escape(old)}(?= )", text)]
    at = rng.choice(spots)
    new = rng.choice(names + ["fresh_blob"])
    return (text[:at] + new + text[at + len(old):]).encode()


def _rename_everywhere(data: bytes, rng: random.Random) -> bytes:
    """A blob renamed consistently: the structure stays valid."""
    text = data.decode()
    old = rng.choice(_blob_names(text))
    return re.sub(rf"(?<= ){re.escape(old)}(?= )", "renamed_blob", text).encode()


def _number(data: bytes, rng: random.Random) -> bytes:
    """A number of a layer line (counts, params) replaced by a hostile one."""
    text = data.decode()
    spots = [m for m in re.finditer(r"(?<= )-?[0-9][0-9.e+-]*(?= )", text) if text.count("\n", 0, m.start()) >= 5]
    spot = rng.choice(spots)
    return (text[:spot.start()] + rng.choice(HOSTILE_NUMBERS) + text[spot.end():]).encode()


def _int32(data: bytes, rng: random.Random) -> bytes:
    """An aligned 32-bit value (a count, length, dim or param) replaced by a hostile one."""
    at = rng.randrange(0, max(len(data) - 4, 1)) & ~3
    return data[:at] + (rng.choice(HOSTILE_INTS) & 0xFFFFFFFF).to_bytes(4, "little") + data[at + 4:]


def _weights(data: bytes, rng: random.Random) -> bytes:
    """A byte in the last 70% of the file (mostly weight data) flipped."""
    at = rng.randrange(int(len(data) * 0.3), len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]


Mutation = Callable[[bytes, random.Random], bytes]
#: strategy -> (seed kinds it applies to, the file it mutates, how)
STRATEGIES: Dict[str, Tuple[str, str, Mutation]] = {
    "proto: flip a byte": ("tnn", "proto", _flip),
    "proto: truncate": ("tnn", "proto", _truncate),
    "proto: swap two layer lines": ("tnn", "proto", _swap_lines),
    "proto: delete a layer line": ("tnn", "proto", _delete_line),
    "proto: duplicate a layer name": ("tnn", "proto", _duplicate_name),
    "proto: rename one blob use": ("tnn", "proto", _rename_blob),
    "proto: rename a blob everywhere": ("tnn", "proto", _rename_everywhere),
    "proto: hostile number": ("tnn", "proto", _number),
    "model: flip a byte": ("tnn", "model", _flip),
    "model: hostile int32": ("tnn", "model", _int32),
    "model: truncate": ("tnn", "model", _truncate),
    "model: flip a weight bit": ("tnn", "model", _weights),
    "onnx: flip a byte": ("onnx", "path", _flip),
    "onnx: hostile int32": ("onnx", "path", _int32),
    "onnx: truncate": ("onnx", "path", _truncate),
    "onnx: flip a weight bit": ("onnx", "path", _weights),
}


# ---- seeds ---------------------------------------------------------------------------------
def _tiny_onnx(path: Path) -> None:
    """Conv -> Relu -> MaxPool -> Gemm -> Softmax, fixed weights (seeded)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(15)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
               [("w", (4, 1, 3, 3)), ("b", (4,)), ("fw", (10, 64)), ("fb", (10,))]]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1, name="fc"),
             helper.make_node("Softmax", ["g"], ["y"], name="prob")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(model.SerializeToString())


def make_seeds(folder: Path, real: bool = False) -> Dict[str, dict]:
    """The files mutations start from: the demo, its int8 model, a tiny ONNX model; with
    `real`, also SqueezeNet 1.1 as TNN's converter and TNN's quantization tool wrote it."""
    subprocess.run([sys.executable, "-m", "quantization_cmd.cli", "-p", DATA / "digits.tnnproto",
                    "-m", DATA / "digits.tnnmodel", "-i", DATA / "calibration", "-n", "0", "-s", "0.00392156862745098",
                    "-o", folder / "digits_int8", "--skip_fidelity"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    _tiny_onnx(folder / "tiny.onnx")
    seeds = {"demo": {"kind": "tnn", "proto": str(DATA / "digits.tnnproto"), "model": str(DATA / "digits.tnnmodel")},
             "demo int8": {"kind": "tnn", "proto": str(folder / "digits_int8.tnnproto"),
                           "model": str(folder / "digits_int8.tnnmodel")},
             "onnx": {"kind": "onnx", "path": str(folder / "tiny.onnx")}}
    if real:
        for name, prefix in (("squeezenet", "squeezenet1.1"), ("squeezenet int8", "b2_w1_t0.quantized")):
            seeds[name] = {"kind": "tnn", "proto": str(REFERENCE / f"{prefix}.tnnproto"),
                           "model": str(REFERENCE / f"{prefix}.tnnmodel")}
    return seeds


def mutated_case(seeds: Dict[str, dict], strategy: str, rng: random.Random, folder: Path, index: int) -> dict:
    """Apply `strategy` to a seed of its kind; the case's files are written in `folder`."""
    kind, part, mutate = STRATEGIES[strategy]
    seed_name = rng.choice([name for name, seed in seeds.items() if seed["kind"] == kind])
    case = dict(seeds[seed_name], seed=seed_name)
    target = folder / f"case{index % 2}{Path(case[part]).suffix}"
    target.write_bytes(mutate(Path(case[part]).read_bytes(), rng))
    case[part] = str(target)
    return case


def allowed(outcome: str) -> bool:
    load, _, run = outcome.partition("/")
    return load == "rejected" and not run or load in ALLOWED_LOADS and run in ALLOWED_RUNS


def fuzz(count: int, seed: int, folder: Path, report: Callable[[str], None] = lambda line: None,
         failures: Optional[Path] = None, real: bool = False) -> Dict[str, collections.Counter]:
    """`count` cases, strategies in turn; outcomes counted by strategy. Bad outcomes are
    reported, their mutated files kept in `failures` (default `folder`/failures)."""
    seeds = make_seeds(folder, real)
    rng = random.Random(seed)
    tally: Dict[str, collections.Counter] = {name: collections.Counter() for name in STRATEGIES}
    work = Worker(seeds)
    failures = failures or folder / "failures"
    try:
        for index in range(count):
            strategy = list(STRATEGIES)[index % len(STRATEGIES)]
            case = mutated_case(seeds, strategy, rng, folder, index)
            outcome = work.ask(case)
            tally[strategy][outcome if allowed(outcome) else outcome.split(":")[0]] += 1
            if not allowed(outcome):
                failures.mkdir(parents=True, exist_ok=True)
                kept = [shutil.copy(case[k], failures / f"{index}-{Path(case[k]).name}")
                        for k in ("proto", "model", "path") if k in case]
                report(f"case {index} ({strategy}, seed {case['seed']}): {outcome}; files {kept}")
    finally:
        work.stop()
    return tally


def format_table(tally: Dict[str, collections.Counter]) -> str:
    columns = sorted({o for counts in tally.values() for o in counts}, key=lambda o: (not allowed(o), o))
    rows = [["strategy", "cases"] + columns]
    for strategy, counts in tally.items():
        rows.append([strategy, str(sum(counts.values()))] + [str(counts.get(c, 0)) for c in columns])
    totals = collections.Counter()
    for counts in tally.values():
        totals.update(counts)
    rows.append(["all", str(sum(totals.values()))] + [str(totals.get(c, 0)) for c in columns])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows)


# ---- the commands on mutated files -----------------------------------------------------------
def cli_check(count: int, seed: int, folder: Path) -> collections.Counter:
    """`count` mutated demo files through quantization_cmd and eval_cmd each."""
    seeds = {"demo": make_seeds(folder)["demo"]}
    rng = random.Random(seed)
    labels = folder / "labels.txt"
    images = sorted((DATA / "heldout").glob("*.png"))[:8]
    calibration = folder / "cal"
    calibration.mkdir(exist_ok=True)
    for image in images:
        shutil.copy(image, calibration)
    labels.write_text("".join(f"{p.name} 0\n" for p in images))
    tnn = [name for name, (kind, _, _) in STRATEGIES.items() if kind == "tnn"]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="default")
    tally: collections.Counter = collections.Counter()
    run_dir = folder / "run"
    for index in range(count):
        case = mutated_case(seeds, tnn[index % len(tnn)], rng, folder, index)
        files = ["-p", case["proto"], "-m", case["model"], "-n", "0", "-s", "0.00392156862745098"]
        for command, extra in (("quantization_cmd.cli", ["-i", calibration, "-o", "out"]),
                               ("quantization_cmd.eval_cmd", ["-i", calibration, "-g", labels])):
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            result = subprocess.run([sys.executable, "-m", command, *map(str, files + extra)], cwd=run_dir, env=env,
                                    capture_output=True, text=True, timeout=60)
            tally[f"{command.split('.')[-1]}: {_judge(result, case, run_dir)}"] += 1
    return tally


def _judge(result: subprocess.CompletedProcess, case: dict, run_dir: Path) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    left = sorted(p.name for p in run_dir.iterdir())
    if "Traceback" in result.stderr or "Warning:" in result.stderr:
        return "BAD: traceback or warning"
    if result.returncode == 0:
        return "exit 0" if left == ["out.tnnmodel", "out.tnnproto"] or not left else f"BAD: exit 0, files {left}"
    if left:
        return f"BAD: files left {left}"
    if len(errors) != 1:
        return "BAD: not one error line"
    named = any(case[k] in errors[0] for k in ("proto", "model")) or "layer '" in errors[0]
    return "one line naming the file or layer" if named else f"BAD: {errors[0][:100]}"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--cli", type=int, default=0, help="also run this many mutated files through each command")
    parser.add_argument("--keep", default="fuzz-failures", help="folder for the files of bad outcomes (made if any)")
    parser.add_argument("--real", action="store_true",
                        help="also mutate SqueezeNet 1.1 as TNN's tools wrote it (float and int8; needs ../shared)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tally = fuzz(args.count, args.seed, Path(tmp), print, Path(args.keep).resolve(), args.real)
        print(f"{args.count} mutations (seed {args.seed}{', with SqueezeNet' if args.real else ''}) in "
              f"{time.perf_counter() - start:.0f} s, "
              f"each under a {LIMIT_BYTES >> 30} GB address-space limit and a {TIMEOUT:g} s timeout:")
        print(format_table(tally))
        bad = sum(n for counts in tally.values() for o, n in counts.items() if not allowed(o))
        if args.cli:
            start = time.perf_counter()
            cli = cli_check(args.cli, args.seed, Path(tmp))
            print(f"\n{args.cli} mutated files through each command in {time.perf_counter() - start:.0f} s:")
            for outcome, n in sorted(cli.items()):
                print(f"  {outcome}: {n}")
            bad += sum(n for o, n in cli.items() if "BAD" in o)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
