"""Pieces both commands share: option types, the preprocessing flags, input checks, the
calibration/evaluation sample stream, and the rendering of the core's events."""
from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import click
import numpy as np
from click.core import ParameterSource

from kernels import KernelError
from tnnformat import Net, TnnFormatError

from .api import spread_split
from .config import ConfigError
from .events import Event, Notice, Progress, TaskDone
from .inputs import InputFileError, Preprocess, as_model_input, read_decoded, read_npz
from .pipeline import BATCH


def one_line_errors(command: Callable) -> Callable:
    """A command body whose failures reach the user as one line: bad files, models we cannot
    run, configs and I/O errors become a ClickException (exit 1), and so does a bug of ours,
    marked as one; numpy stays quiet (results are checked for NaN and infinity where they are
    made)."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                return command(*args, **kwargs)
            except (TnnFormatError, KernelError, ConfigError, InputFileError) as exc:
                raise click.ClickException(str(exc)) from None
            except OSError as exc:
                raise click.ClickException(f"{exc.filename or 'a file'}: {exc.strerror or exc}") from None
            except MemoryError:
                raise click.ClickException("out of memory (a smaller model or fewer inputs per file?)") from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as exc:  # a bug of ours: still one line, as onnx2tnn says it
                raise click.ClickException(f"unexpected {type(exc).__name__}: {exc}; please report it") from None
    return run


class NumberChoice(click.ParamType):
    """An integer from a fixed set, named in errors with what each value means."""

    name = "number"

    def __init__(self, meanings: Dict[int, str]):
        self.meanings = meanings

    def convert(self, value, param, ctx):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if number not in self.meanings:
            allowed = ", ".join(f"{k} ({v})" for k, v in self.meanings.items())
            self.fail(f"{value!r} is not one of {allowed}", param, ctx)
        return number


class FloatList(click.ParamType):
    """Comma-separated numbers, each finite as a float32 (and non-zero if `nonzero`)."""

    name = "list"

    def __init__(self, nonzero: bool = False):
        self.nonzero = nonzero

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if str(value).strip() == "":
            return ()
        try:
            values = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers, e.g. 104,117,123", param, ctx)
        with np.errstate(over="ignore"):
            if not all(np.isfinite(np.float32(v)) for v in values):
                self.fail(f"{value!r}: every value must be a finite float32", param, ctx)
        if self.nonzero and 0.0 in values:
            self.fail(f"{value!r}: a scale of 0 would erase the channel", param, ctx)
        return values


OUTPUT_FLAG = "'-o' / '--output'"
OUTPUT_SUFFIXES = (".tnnproto", ".tnnmodel")


def output_prefix(value: str) -> str:
    """`-o` as the prefix of the two files: `x.tnnproto` and `x.tnnmodel` mean `x`; an empty
    name or one ending in a separator names no file."""
    for suffix in OUTPUT_SUFFIXES:
        if value.endswith(suffix):
            value = value[:-len(suffix)]
    if not value.strip() or value.endswith(("/", os.sep)) or Path(value).name in ("", ".", ".."):
        raise click.BadParameter(f"'{value}' names no file: give a name such as out/model_int8",
                                 param_hint=OUTPUT_FLAG)
    return value


def check_writable(prefix: str, inputs: Sequence[Optional[str]] = ()) -> Tuple[Path, Path]:
    """The two output paths, writable and not any of the `inputs`."""
    prefix = output_prefix(prefix)
    proto, model = Path(prefix + ".tnnproto"), Path(prefix + ".tnnmodel")
    for path in (proto, model):
        check_file_writable(str(path), OUTPUT_FLAG, inputs)
    return proto, model


def check_file_writable(path: str, flag: str, inputs: Sequence[Optional[str]] = ()) -> None:
    """An output file can be created in its folder: the folder exists and takes a file, and
    the path is not a folder, a special file (outputs are written and renamed into place) or
    one of the `inputs`."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise click.BadParameter(f"folder '{folder}' does not exist", param_hint=flag)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise click.BadParameter(f"'{path}' is {'a folder' if os.path.isdir(path) else 'not a regular file'}",
                                 param_hint=flag)
    for given in inputs:
        if given is not None and _same_file(Path(path), Path(given)):
            raise click.BadParameter(f"'{path}' is the input file '{given}': writing it would destroy "
                                     "the input; give another name", param_hint=flag)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write in '{folder}': {exc.strerror}", param_hint=flag)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def single_input(net: Net) -> Tuple[str, Tuple[int, ...]]:
    if len(net.inputs) != 1:
        raise click.ClickException(f"the model has {len(net.inputs)} inputs ({', '.join(net.inputs)}); "
                                   "this command takes models with one input")
    name, shape = next(iter(net.inputs.items()))
    return name, tuple(shape)


def check_channels(values: Tuple[float, ...], channels: int, flag: str, input_name: str) -> None:
    if values and len(values) != channels:
        raise click.BadParameter(f"{len(values)} values given; the model's input '{input_name}' has "
                                 f"{channels} channels", param_hint=flag)


def warn_skipped(path: Path, reason: str) -> None:
    """The one line a skipped input file gets."""
    click.echo(f"warning: skipping {path}: {reason}", err=True)


#: One sample source item: the file of each input (a .npz file gives every input at once).
Item = Dict[str, Path]
ALL_INPUTS = "*"
#: Threads decoding input files beside the compute, and how many items they may read ahead:
#: one batch, enough to hide decoding behind a batch's forward. Each shard of a pass decodes
#: its own inputs and two shards run at once, so with two batches ahead 32 decoded inputs
#: waited beside the kept ones (SqueezeNet, 2000 inputs: peak 250-251 MB; 242-248 with one
#: batch ahead, in the same time).
DECODERS = 2
LOOKAHEAD = BATCH
#: Bytes of decoded calibration inputs kept for the later data passes: images as their uint8
#: pixels (SqueezeNet: about 110 images of 224 x 224, as 64 MB of float inputs held before),
#: tensors as float32. A fixed cap, so memory stays flat however many inputs there are.
KEPT_BYTES = 16 << 20


class KeptArrays:
    """Decoded items kept for the next data passes: the first that fit in `budget` bytes,
    never evicted (every pass reads the items in the same order, so a least-recently-used
    cache smaller than the set would hit nothing). Kept arrays are read-only: the batches
    are concatenated copies of them."""

    def __init__(self, budget: int = 0, arrays: Optional[Dict[Tuple, Dict[str, np.ndarray]]] = None):
        self.budget, self._arrays = budget, dict(arrays or {})
        self.used = sum(a.nbytes for item in self._arrays.values() for a in item.values())
        for item in self._arrays.values():
            for array in item.values():
                array.flags.writeable = False
        self._lock = threading.Lock()  # shards of one pass offer items from several threads

    def __reduce__(self):
        """Pickled (a shard sent to a worker process) with its arrays but closed to new ones."""
        return KeptArrays, (0, self._arrays)

    @staticmethod
    def _key(item: Item) -> Tuple:
        return tuple(sorted((name, str(path)) for name, path in item.items()))

    def get(self, item: Item) -> Optional[Dict[str, np.ndarray]]:
        return self._arrays.get(self._key(item)) if self._arrays else None

    def only(self, items: Iterable[Item]) -> "KeptArrays":
        """The kept arrays of `items` alone, closed to new ones: what a shard carries."""
        keys = (self._key(item) for item in items)
        return KeptArrays(0, {key: self._arrays[key] for key in keys if key in self._arrays})

    def offer(self, item: Item, arrays: Dict[str, np.ndarray]) -> None:
        size = sum(a.nbytes for a in arrays.values())
        key = self._key(item)
        with self._lock:
            if key in self._arrays or self.used + size > self.budget:
                return
            for array in arrays.values():
                array.flags.writeable = False
            self._arrays[key], self.used = arrays, self.used + size


class Samples:
    """The usable calibration items, read again for each pass (but those in `kept`) and
    grouped into batches of about `size` samples. Iterating yields model inputs; `batches`
    says how many."""

    def __init__(self, items: List[Item], inputs: Dict[str, Tuple[int, ...]], prep: Preprocess,
                 size: int = BATCH, warn: bool = True, kept: Optional[KeptArrays] = None):
        self.items, self.inputs, self.prep, self.size, self.warn = items, inputs, prep, size, warn
        self.kept = kept if kept is not None else KeptArrays()
        self.skipped: List[Tuple[Path, str]] = []
        self.sizes: List[int] = []
        self.count = 0
        self.batches: Optional[int] = None

    def __getstate__(self) -> dict:
        """A shard travels to a worker process with the kept arrays of its own items (the
        others the worker decodes)."""
        return {**self.__dict__, "kept": self.kept.only(self.items)}

    @property
    def files(self) -> List[Path]:
        return [path for item in self.items for path in item.values()]

    def _load(self, item: Item) -> Union[Dict[str, np.ndarray], InputFileError]:
        """The item's arrays, or why it cannot be used (run in the decoding threads)."""
        try:
            if ALL_INPUTS in item:
                return read_npz(item[ALL_INPUTS], self.inputs)
            arrays = {name: read_decoded(path, self.inputs[name], self.prep) for name, path in item.items()}
            counts = {len(a) for a in arrays.values()}
            if len(counts) > 1:
                raise InputFileError(f"the inputs' files hold different numbers of samples ({sorted(counts)})")
            return arrays
        except InputFileError as exc:
            return exc

    def _loaded(self, items: Iterable[Item]) -> Iterator[Tuple[Item, Optional[Dict[str, np.ndarray]]]]:
        """Each item with its arrays (None, warned and recorded, if it cannot be used), in
        order; files are decoded by DECODERS threads up to LOOKAHEAD items ahead of the
        consumer (PIL and numpy release the GIL while decoding), so memory stays bounded."""
        with ThreadPoolExecutor(DECODERS) as pool:
            pending: Deque = deque()
            for item in items:
                kept = self.kept.get(item)
                pending.append((item, kept if kept is not None else pool.submit(self._load, item)))
                if len(pending) > LOOKAHEAD:
                    yield self._checked(*pending.popleft())
            while pending:
                yield self._checked(*pending.popleft())

    def _checked(self, item: Item, loading: Union[Future, Dict[str, np.ndarray]]
                 ) -> Tuple[Item, Optional[Dict[str, np.ndarray]]]:
        if isinstance(loading, dict):
            return item, loading
        arrays = loading.result()
        if isinstance(arrays, InputFileError):
            path = next(iter(item.values()))
            self.skipped.append((path, str(arrays)))
            if self.warn:
                warn_skipped(path, str(arrays))
            return item, None
        self.kept.offer(item, arrays)
        return item, arrays

    def screen(self, label: str = "reading inputs") -> None:
        """Read every item once, dropping (with a warning) those that cannot be used."""
        usable, sizes = [], []
        with click.progressbar(length=len(self.items), label=label, file=sys.stderr) as bar:
            for item, arrays in self._loaded(self.items):
                bar.update(1)
                if arrays is not None:
                    usable.append(item)
                    sizes.append(len(next(iter(arrays.values()))))
        self.items, self.sizes, self.count = usable, sizes, sum(sizes)
        self.batches = len(self._groups(sizes))

    def rebatched(self, size: int) -> "Samples":
        """The same screened items in batches of about `size` samples."""
        return self._part(0, len(self.items), size)

    def first(self, count: int, size: int) -> "Samples":
        """The first screened items holding at least `count` samples (all if fewer), in
        batches of about `size`."""
        stop, total = 0, 0
        while stop < len(self.items) and total < count:
            total, stop = total + self.sizes[stop], stop + 1
        return self._part(0, stop, size)

    def split(self, count: int, size: int) -> Tuple["Samples", "Samples"]:
        """About `count` items spread evenly over the list (files sorted by name are often
        sorted by class) and the others, each in batches of about `size`."""
        chosen, others = spread_split(len(self.items), count)
        return self._subset(chosen, size), self._subset(others, size)

    def _part(self, start: int, stop: int, size: int) -> "Samples":
        """Screened items start to stop, in batches of about `size` samples."""
        return self._subset(list(range(start, stop)), size)

    def _subset(self, indices: List[int], size: int) -> "Samples":
        """The screened items at `indices`, in batches of about `size` samples."""
        other = Samples([self.items[i] for i in indices], self.inputs, self.prep, size, kept=self.kept)
        other.sizes = [self.sizes[i] for i in indices]
        other.count = sum(other.sizes)
        other.batches = len(other._groups(other.sizes))
        return other

    def shards(self, per: int) -> Optional[List[Tuple[int, "Samples", int]]]:
        """Runs of `per` batches as (samples before, the run's items, batches), cut where the
        batches are cut; None before the items are screened (their sizes unknown)."""
        if self.batches is None:
            return None
        groups, out, start, first = self._groups(self.sizes), [], 0, 0
        for k in range(0, len(groups), per):
            stop = start + sum(groups[k:k + per])
            part = self._part(start, stop, self.size)
            out.append((first, part, part.batches))
            start, first = stop, first + part.count
        return out

    def _groups(self, sizes: List[int]) -> List[int]:
        """How many items each batch takes, given each item's sample count."""
        groups, pending, taken = [], 0, 0
        for size in sizes:
            pending, taken = pending + size, taken + 1
            if pending >= self.size:
                groups.append(taken)
                pending, taken = 0, 0
        return groups + ([taken] if taken else [])

    def each_item(self) -> Iterator[Tuple[Item, Dict[str, np.ndarray]]]:
        """Each usable item with its model inputs."""
        for item, arrays in self._loaded(self.items):
            if arrays is not None:
                yield item, self._model_inputs([arrays])

    def _model_inputs(self, decoded: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The model inputs of some items' decoded arrays, concatenated: images' pixels
        preprocessed once for the batch where the batch is all images, else item by item."""
        inputs = {}
        for name in self.inputs:
            parts = [a[name] for a in decoded]
            if len({p.dtype for p in parts}) == 1:
                inputs[name] = as_model_input(np.concatenate(parts), self.prep)
            else:
                inputs[name] = np.concatenate([as_model_input(p, self.prep) for p in parts])
        return inputs

    def __iter__(self) -> Iterator[Dict[str, np.ndarray]]:
        pending: List[Dict[str, np.ndarray]] = []
        for _, arrays in self._loaded(self.items):
            if arrays is None:
                continue
            pending.append(arrays)
            if sum(len(next(iter(a.values()))) for a in pending) >= self.size:
                yield self._model_inputs(pending)
                pending = []
        if pending:
            yield self._model_inputs(pending)


class ProgressRenderer:
    """Renders the core's events: a progress bar per task on stderr, warnings as lines."""

    def __init__(self):
        self.bars: Dict[str, object] = {}
        self.done: Dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            click.echo(f"warning: {event.message}", err=True)
        elif isinstance(event, Progress):
            bar = self.bars.get(event.task)
            if bar is None:
                bar = click.progressbar(length=max(event.total or 1, 1), label=event.task, file=sys.stderr)
                bar.__enter__()
                self.bars[event.task], self.done[event.task] = bar, 0
            bar.update(event.done - self.done[event.task])
            self.done[event.task] = event.done
        elif isinstance(event, TaskDone) and event.task in self.bars:
            self.bars.pop(event.task).__exit__(None, None, None)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.__exit__(None, None, None)
        self.bars.clear()


JOBS_FLAG, DASK_FLAG = "'-j' / '--jobs'", "'--dask'"


def parallel_options(command: Callable) -> Callable:
    """-j N and --dask ADDRESS: where the data passes run (the result is the same)."""
    command = click.option("--dask", metavar="tcp://HOST:PORT",
                           help="Run the shards on this Dask scheduler's workers (pip install "
                                "\"tnn-quantization[dask]\"); they read the inputs at the same paths.")(command)
    command = click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                           help="Worker processes for the data passes (same result as 1).")(command)
    return command


def open_runner(jobs: int, dask: Optional[str]):
    """The shards' runner for -j / --dask, closed when the command ends; flag errors name the
    flag (exit 2), before any input is read or output written."""
    from .shards import DaskCluster, runner

    if dask is None:
        return _closed_at_exit(runner(jobs))
    if click.get_current_context().get_parameter_source("jobs") != ParameterSource.DEFAULT:
        raise click.UsageError("give either -j (processes here) or --dask (a cluster's workers), not both")
    try:
        return _closed_at_exit(DaskCluster(dask))
    except ImportError:
        raise click.BadParameter("needs dask: pip install \"tnn-quantization[dask]\"", param_hint=DASK_FLAG) from None
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.BadParameter(f"cannot reach a Dask scheduler at '{dask}': {reason}", param_hint=DASK_FLAG) from None


def _closed_at_exit(runner):
    click.get_current_context().call_on_close(runner.close)
    return runner


def preprocessing_options(command: Callable) -> Callable:
    """-r, -n and -s, as TNN's quantization_cmd spells them."""
    command = click.option("-s", "--scale", type=FloatList(nonzero=True), default="",
                           help="Per-channel scale, e.g. 1,1,1.")(command)
    command = click.option("-n", "--bias", type=FloatList(), default="",
                           help="Per-channel bias, e.g. 104,117,123: y = (x - bias) * scale.")(command)
    command = click.option("-r", "--reverse_channel", default=0, show_default=True,
                           type=NumberChoice({0: "RGB", 1: "BGR"}),
                           help="1: the network takes BGR images.")(command)
    return command


def model_input(net: Net, reverse_channel: int, bias: Tuple[float, ...],
                scale: Tuple[float, ...]) -> Tuple[str, Tuple[int, ...], Preprocess]:
    """The model's single input, its shape and the checked preprocessing."""
    single_input(net)
    inputs, prep = model_inputs(net, reverse_channel, bias, scale)
    name, shape = next(iter(inputs.items()))
    return name, shape, prep


def model_inputs(net: Net, reverse_channel: int, bias: Tuple[float, ...],
                 scale: Tuple[float, ...]) -> Tuple[Dict[str, Tuple[int, ...]], Preprocess]:
    """Every input's shape and the preprocessing, checked against each image-shaped input."""
    inputs = {name: tuple(shape) for name, shape in net.inputs.items()}
    for name, shape in inputs.items():
        if len(shape) == 4:
            check_channels(bias, shape[1], "'-n' / '--bias'", name)
            check_channels(scale, shape[1], "'-s' / '--scale'", name)
    return inputs, Preprocess(bool(reverse_channel), bias, scale)


