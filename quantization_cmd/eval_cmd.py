"""eval_cmd: top-1 / top-5 accuracy of a TNN model (float or int8) on a labeled image folder.

TNN ships a C++ tool of this name (tools/evaluation) taking `-p -m -i -g`; ours takes the
same, plus quantization_cmd's preprocessing flags and labels from synset-prefixed file names.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Tuple

import click
import numpy as np

import tnnformat
from tnnformat.files import read_regular_text

from .cli_support import (Item, Samples, model_input, one_line_errors, open_runner, parallel_options,
                          preprocessing_options, warn_skipped)
from .inputs import IMAGE_SUFFIXES, list_input_files
from .shards import SHARD_SAMPLES, Work, chunks


class LabelError(click.ClickException):
    pass


def labels_from_file(path: Path, files: List[Path]) -> Dict[str, int]:
    """`<file name> <class index>` per line; every image in the folder must have one."""
    labels: Dict[str, int] = {}
    try:
        lines = read_regular_text(path).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read label file '{path}': {exc}") from None
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise LabelError(f"{path}, line {number}: expected '<file name> <class index>', got '{line}'")
        labels[Path(parts[0]).name] = int(parts[1])
    missing = [f.name for f in files if f.name not in labels]
    if missing:
        raise LabelError(f"label file '{path}' has no label for {len(missing)} image(s), "
                         f"e.g. '{missing[0]}'")
    return {f.name: labels[f.name] for f in files}


def labels_from_synsets(path: Path, files: List[Path]) -> Dict[str, int]:
    """Line k of the synset file is class k; each image name starts with its synset and '_'."""
    try:
        synsets = [line.split()[0] for line in read_regular_text(path).splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read synset file '{path}': {exc}") from None
    index = {synset: k for k, synset in enumerate(synsets)}
    labels = {}
    for f in files:
        synset = f.name.split("_")[0]
        if synset not in index:
            raise LabelError(f"image '{f.name}': synset '{synset}' is not in '{path}'")
        labels[f.name] = index[synset]
    return labels


def class_count(net) -> int:
    """How many class scores the model's first output gives per sample."""
    from kernels import infer_shapes

    return int(np.prod(infer_shapes(net)[net.outputs[0]][1:]))


def check_classes(labels: Dict[str, int], classes: int, source: str) -> None:
    """Every label is one of the model's classes (0 to classes - 1)."""
    for name, label in labels.items():
        if not 0 <= label < classes:
            raise LabelError(f"{source}: image '{name}' has label {label}; the model's output has {classes} "
                             f"classes (0 to {classes - 1})")


def accuracy(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Top-1 and top-5 rates of class scores (n, classes) against labels (n,)."""
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    return {"top1": float(np.mean(top5[:, 0] == labels)),
            "top5": float(np.mean(np.any(top5 == labels[:, None], axis=1))),
            "n": int(labels.size)}


Scored = Tuple[List[np.ndarray], List[Item], List[Tuple[Path, str]], int]


def _interpreter(nets):
    """The model's interpreter and, with --compare, the float model's."""
    from kernels import Interpreter

    net, reference = nets
    return Interpreter(net), Interpreter(reference) if reference is not None else None


def _batches(loaded: Iterable[Tuple[Item, Dict[str, np.ndarray]]], size: int
             ) -> Iterator[Tuple[List[Item], Dict[str, np.ndarray]]]:
    """The items in runs of `size` samples, with their arrays joined into one batch (one
    item may hold several samples: each of its rows is its)."""
    rows: List[Item] = []
    pending: List[Dict[str, np.ndarray]] = []
    for item, arrays in loaded:
        pending.append(arrays)
        rows.extend([item] * len(next(iter(arrays.values()))))
        if len(rows) >= size:
            yield rows, {name: np.concatenate([a[name] for a in pending]) for name in arrays}
            rows, pending = [], []
    if pending:
        yield rows, {name: np.concatenate([a[name] for a in pending]) for name in pending[0]}


def _score(interpreters, samples: Samples) -> Scored:
    """The class scores of a shard's images (one row per sample), the item of each row, the
    files skipped and, with a reference model, how many rows agree with its top-1. Images go
    through in batches where the models treat samples apart (fewer, larger steps: 1.5x faster
    on SqueezeNet), else one by one."""
    interpreter, reference = interpreters
    together = interpreter.batch_independent() and (reference is None or reference.batch_independent())
    scores, rows, agree = [], [], 0
    for items, arrays in _batches(samples.each_item(), samples.size if together else 1):
        output = next(iter(interpreter.forward(arrays).values()))
        scores.append(output.reshape(output.shape[0], -1))
        rows.extend(items)
        if reference is not None:
            expected = next(iter(reference.forward(arrays).values()))
            agree += int(np.sum(expected.reshape(len(expected), -1).argmax(1) == scores[-1].argmax(1)))
    return scores, rows, samples.skipped, agree


SCORE = Work(_interpreter, _score)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--proto", required=True, type=click.Path(dir_okay=False), help="TNN proto file.")
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="TNN model file.")
@click.option("-i", "--input_path", required=True, type=click.Path(file_okay=False),
              help=f"Folder of labeled images ({' '.join(IMAGE_SUFFIXES)}).")
@click.option("-g", "--ground_truth", type=click.Path(dir_okay=False),
              help="Label file: lines '<file name> <class index>'.")
@click.option("--synsets", type=click.Path(dir_okay=False),
              help="Synset list (line k = class k); labels come from file names '<synset>_...'.")
@preprocessing_options
@click.option("--compare", nargs=2, type=click.Path(dir_okay=False), metavar="FLOAT_PROTO FLOAT_MODEL",
              help="Also run this float model and print the top-1 agreement with it.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as a JSON object (top1, top5, n; agreement with --compare).")
@parallel_options
@one_line_errors
def main(proto, model, input_path, ground_truth, synsets, reverse_channel, bias, scale, compare, as_json, jobs,
         dask):
    """Top-1 and top-5 accuracy of a float or int8 TNN model on labeled images."""
    if (ground_truth is None) == (synsets is None):
        raise click.UsageError("give the labels with exactly one of -g/--ground_truth and --synsets")
    started = time.perf_counter()
    runner = open_runner(jobs, dask)
    net = tnnformat.load(proto, model)
    reference = tnnformat.load(*compare) if compare else None
    input_name, shape, prep = model_input(net, reverse_channel, bias, scale)
    folder = Path(input_path)
    if not folder.is_dir():
        raise click.ClickException(f"input folder '{input_path}' does not exist")
    files = [f for f in list_input_files(folder, warn_skipped) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise click.ClickException(f"no images ({' '.join(IMAGE_SUFFIXES)}) in '{input_path}'")
    labels = labels_from_file(Path(ground_truth), files) if ground_truth else labels_from_synsets(Path(synsets), files)
    check_classes(labels, class_count(net), ground_truth or synsets)

    shards = [Samples([{input_name: f} for f in part], {input_name: shape}, prep, warn=not runner.remote)
              for part in chunks(files, SHARD_SAMPLES)]
    scores, truth, skipped, agree = [], [], [], 0
    with click.progressbar(length=len(files), label="evaluating", file=sys.stderr) as bar:
        for shard, (part, rows, dropped, agreeing) in zip(shards, runner.map(SCORE, (net, reference), shards)):
            scores.extend(part)
            agree += agreeing
            truth.extend(labels[item[input_name].name] for item in rows)
            skipped.extend(dropped)
            if runner.remote:  # read in a worker: its warnings are said here
                for path, reason in dropped:
                    warn_skipped(path, reason)
            bar.update(len(shard.items))
    if not scores:
        raise click.ClickException(f"none of the {len(files)} images in '{input_path}' could be read")
    result = accuracy(np.concatenate(scores), np.array(truth))
    if reference is not None:
        result["agreement"] = agree / result["n"]
    if as_json:
        click.echo(json.dumps(result))
    else:
        agreement = f"  top-1 agreement with {Path(compare[0]).name}: {100 * result['agreement']:.2f}%" \
            if reference is not None else ""
        click.echo(f"top-1: {100 * result['top1']:.2f}%  top-5: {100 * result['top5']:.2f}%{agreement}  "
                   f"on {result['n']} images ({len(skipped)} skipped) "
                   f"in {time.perf_counter() - started:.1f} s")
    sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    main()
