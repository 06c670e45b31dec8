"""Run a model through TNN's own runtime (../shared/tnn-runtime/bin/TNNTest) on one sample.

    outputs = run_tnn(Path("m.tnnproto"), {"input": x})   # {"prob": array of shape (1, 10)}

What TNNTest does, from TNN's test/test.cc (commit f0cb081, the build in ../shared):

- `-ip FILE` holds whitespace-separated numbers, and the same file is opened afresh for every
  input blob (InitInputMatMap), so every input reads the file from its first value: TNNTest
  cannot give two inputs different values. For a model with several inputs, run_tnn therefore
  runs a rewritten copy of the proto whose single input is the inputs' values packed end to
  end ([1, total, 1, 1], sorted by input name), split back by a SplitV layer and reshaped by
  one Reshape per input whose output blob keeps the original input name. Every original
  layer, blob name (so blob scales still apply) and the .tnnmodel are left unchanged.
- `-is name[n,c,h,w]` sets the shape of one input only; it is not needed (and not used) when
  the proto gives each input's full shape, which is where TNN takes the shapes from otherwise.
- `-op FILE`: a line with the output count, one header line per output
  (`name mat_type: T dims: D d1 .. dD`), then every output's values one per line, in the
  headers' order (sorted by name). Floats are printed with 6 decimals (`std::fixed`), so the
  values are exact to about 5e-7 absolute, whatever their size.
- TNNTest returns TNN's status code as its exit code, and the codes of whole error classes
  are multiples of 256 (TNNERR_PARAM_ERR is 0x1000), so a model TNN rejects can exit 0. It
  writes the output file only after a successful run, so a missing output file is a failure
  here too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from conftest import shared_path

#: TNN's DataType numbers for the inputs TNNTest reads as integers (others are read as float).
_INT32 = 3
#: TNN's proto magic numbers: v2 input entries carry a dims count and a data type.
_MAGIC_V1, _MAGIC_V2 = 0x0FABC0002, 0x0FABC0004
#: TNN's MatType NC_INT32: outputs printed as integers.
_MAT_NC_INT32 = 0x21
#: Name prefix of the blobs and layers run_tnn adds to models with several inputs.
_PACKED = "tnn_runtime_packed"


def tnn_test_binary() -> Path:
    """TNNTest from ../shared; missing ../shared fails under CI=true and skips elsewhere."""
    return shared_path("tnn-runtime", "bin", "TNNTest")


class _Proto:
    """The lines of a .tnnproto as TNN splits them, and its inputs: name -> (dims, data type)."""

    def __init__(self, text: str, path: Path):
        # TNN drops every '"' and newline, then splits the rest at ','.
        self.lines = [line.strip() for line in text.replace('"', "").replace("\n", "").split(",")]
        if len(self.lines) <= 5:
            raise ValueError(f"{path}: not a TNN proto (fewer than 6 lines)")
        head = self.lines[0].split()
        self.magic = int(head[3]) if len(head) >= 4 else 0
        self.inputs: Dict[str, Tuple[Tuple[int, ...], int]] = {}
        for entry in self.lines[1].split(":"):
            tokens = entry.split()
            if not tokens:
                continue
            if self.magic == _MAGIC_V2:
                count = int(tokens[1])
                dims, data_type = tuple(int(t) for t in tokens[2:2 + count]), int(tokens[-1])
            elif self.magic == _MAGIC_V1:
                dims, data_type = tuple(int(t) for t in tokens[1:]), 0
            else:
                raise ValueError(f"{path}: unknown TNN proto magic number {head[3:4]}")
            self.inputs[tokens[0]] = dims, data_type

    def packed(self, order: Sequence[str], total: int) -> str:
        """The proto text with `order`'s inputs replaced by one packed input split back."""
        layer_lines = [line for line in self.lines[5:] if line]
        names = set(" ".join(self.lines).split())
        packed = _PACKED
        while any(name.startswith(packed) for name in names):
            packed += "_"
        flats = [f"{packed}_{i}" for i in range(len(order))]
        sizes = [int(np.prod(self.inputs[name][0])) for name in order]
        added = [f"SplitV {packed}_split 1 {len(order)} {packed} {' '.join(flats)} 1 {len(order)} "
                 + " ".join(str(s) for s in sizes)]
        for i, (name, flat) in enumerate(zip(order, flats)):
            dims = self.inputs[name][0]
            added.append(f"Reshape {packed}_reshape_{i} 1 1 {flat} {name} 0 {len(dims)} {len(dims)} "
                         + " ".join(str(d) for d in dims) + " 0")
        if self.magic == _MAGIC_V2:
            input_line = f"{packed} 4 1 {total} 1 1 0"
        else:
            input_line = f"{packed} 1 {total} 1 1"
        blobs = sorted(set(self.lines[2].split()) | {packed, *flats})
        lines = [self.lines[0], input_line, " " + " ".join(blobs), self.lines[3],
                 f" {len(added) + len(layer_lines)}", *added, *layer_lines]
        return "".join(f'"{line} ,"\n' for line in lines)


def _check_inputs(proto: _Proto, inputs: Mapping[str, np.ndarray], path: Path) -> Dict[str, np.ndarray]:
    """The inputs as flat arrays of the type TNNTest reads for each, after checking them."""
    if set(inputs) != set(proto.inputs):
        raise ValueError(f"{path} has inputs {sorted(proto.inputs)}, got {sorted(inputs)}")
    flat = {}
    for name, (dims, data_type) in proto.inputs.items():
        if any(d <= 0 for d in dims):
            raise ValueError(f"{path}: input {name} has no fixed shape {list(dims)} (run_tnn passes no -is)")
        value = np.asarray(inputs[name])
        if value.size != int(np.prod(dims)):
            raise ValueError(f"input {name}: {value.size} values given, the proto's shape {list(dims)} "
                             f"holds {int(np.prod(dims))}")
        value = value.reshape(-1).astype(np.int32 if data_type == _INT32 else np.float32)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"input {name} has NaN or infinite values, which TNNTest cannot read")
        flat[name] = value
    return flat


def _write_values(path: Path, values: np.ndarray) -> None:
    # %.9g round-trips float32 exactly; C++'s `>>` reads it back.
    np.savetxt(path, values, fmt="%d" if values.dtype.kind == "i" else "%.9g")


def read_tnn_output(path: Path) -> Dict[str, np.ndarray]:
    """TNNTest's -op file: output name -> values, shaped by the header's dims (flat without)."""
    lines = Path(path).read_text().split("\n")
    count = int(lines[0])
    headers: List[Tuple[str, object, bool]] = []  # name, dims or None, integer values
    for line in lines[1:1 + count]:
        tokens = line.split()
        dims = None
        if "dims:" in tokens:
            at = tokens.index("dims:")
            dims = tuple(int(t) for t in tokens[at + 2:at + 2 + int(tokens[at + 1])])
        integer = "mat_type:" in tokens and int(tokens[tokens.index("mat_type:") + 1]) == _MAT_NC_INT32
        headers.append((tokens[0], dims, integer))
    values = [v for v in (line.strip() for line in lines[1 + count:]) if v]
    if any(dims is None for _, dims, _ in headers) and count != 1:
        raise AssertionError(f"{path}: outputs without dims cannot be told apart: {lines[1:1 + count]}")
    outputs, pos = {}, 0
    for name, dims, integer in headers:
        size = len(values) - pos if dims is None else int(np.prod(dims))
        chunk = values[pos:pos + size]
        if len(chunk) != size:
            raise AssertionError(f"{path}: output {name} needs {size} values, the file has {len(chunk)}")
        if integer:
            array = np.array([int(v) for v in chunk], np.int32)
        else:  # float() reads C++'s "-nan" and "inf" too
            array = np.array([float(v) for v in chunk], np.float32)
        outputs[name] = array if dims is None else array.reshape(dims)
        pos += size
    if pos != len(values):
        raise AssertionError(f"{path}: {len(values) - pos} values after the last output")
    return outputs


def run_tnn(proto: Path, inputs: Dict[str, np.ndarray], *, timeout: float = 600) -> Dict[str, np.ndarray]:
    """Run `proto` (its .tnnmodel beside it, same stem) on one sample with TNNTest's NAIVE device.

    `inputs` maps every input blob name to its values (any shape with the proto's element
    count, batch 1). Returns each output blob by name, shaped as TNN prints it (float32, or
    int32 for int32 outputs). Raises AssertionError with TNN's stdout and stderr when TNNTest
    exits non-zero or writes no output (TNN's load errors can exit 0, see the module doc).
    """
    proto = Path(proto)
    parsed = _Proto(proto.read_text(encoding="utf-8"), proto)
    flat = _check_inputs(parsed, inputs, proto)
    binary = tnn_test_binary()
    with tempfile.TemporaryDirectory(prefix="tnn-runtime-") as tmp:
        work = Path(tmp)
        run_proto = proto
        if len(flat) == 1:
            values = next(iter(flat.values()))
        else:
            order = sorted(flat)
            if any(parsed.inputs[name][1] == _INT32 for name in order):
                raise ValueError("run_tnn packs several inputs into one float input; int32 inputs "
                                 "are not supported there")
            values = np.concatenate([flat[name] for name in order])
            run_proto = work / "packed.tnnproto"
            run_proto.write_text(parsed.packed(order, values.size), encoding="utf-8")
            model = proto.with_suffix(".tnnmodel")
            if model.exists():
                try:
                    os.symlink(model.resolve(), work / "packed.tnnmodel")
                except OSError:
                    shutil.copyfile(model, work / "packed.tnnmodel")
        input_file, output_file = work / "input.txt", work / "output.txt"
        _write_values(input_file, values)
        command = [str(binary), "-mt", "TNN", "-mp", str(run_proto), "-dt", "NAIVE",
                   "-ip", str(input_file), "-op", str(output_file)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 or not output_file.exists():
            why = f"exited with {result.returncode}" if result.returncode else "wrote no output"
            raise AssertionError(f"TNNTest {why} on {proto}\n$ {' '.join(command)}\n"
                                 f"--- stderr\n{result.stderr}--- stdout\n{result.stdout}")
        return read_tnn_output(output_file)
