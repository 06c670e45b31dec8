"""Where data passes run: in this process, in N worker processes (`-j N`) or on a Dask cluster
(`--dask`), with the same result to the byte.

A data pass is cut into shards of whole batches, SHARD_SAMPLES samples each whatever the
number of workers; each shard's results are merged into the total in shard order. Statistics
whose merge is exact in any order (ranges, integer histogram counts: statistics.Summed) may
be accumulated in place, one copy shared by the threads when shards run here on every core
at once; the others (float
sums, per-sample lists) start afresh in every shard, locally too, so the sums are added in
the same order wherever the shards ran. Work reaches workers as two
module-level functions, `setup(shared) -> context` (run once per worker and pass, e.g. an
Interpreter) and `run(context, shard) -> result`; the shared payload (the model, the empty
statistics) travels once per worker and pass, not once per shard.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import re
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

R = TypeVar("R")

#: Samples per shard: small enough to spread 100 images evenly over a few workers, large
#: enough that a shard's merge costs little beside its forward passes.
SHARD_SAMPLES = 16
#: Shards handed out ahead of the one being merged, per worker (bounds memory).
AHEAD = 2


def shard_batches(batch: int) -> int:
    """Batches per shard for batches of `batch` samples."""
    return max(1, SHARD_SAMPLES // max(batch, 1))


@dataclass(frozen=True)
class Work:
    """A function over shards: `setup(shared)` once per worker and pass, `run(context, shard)`
    per shard; both module-level (workers import them by name)."""

    setup: Callable[[Any], Any]
    run: Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Shared:
    """The payload of a pass as workers find it: in a file (worker processes on this machine)
    or as the value itself (Dask ships it); `token` names it in the workers' cache."""

    token: str
    path: Optional[str] = None
    value: Any = None

    def load(self) -> Any:
        if self.path is None:
            return self.value
        with open(self.path, "rb") as f:
            return pickle.load(f)


_cache: dict = {}
_cache_lock = threading.Lock()


def _run_task(work: Work, shared: Shared, shard: Any) -> Any:
    """A shard in a worker: the pass's context is set up on the first shard it gets."""
    from kernels.threads import use_one_core

    use_one_core()
    with _cache_lock:
        key = (shared.token, work.setup)
        if key not in _cache:
            _cache.clear()  # one pass at a time: drop the previous pass's model
            _cache[key] = work.setup(shared.load())
        context = _cache[key]
    return work.run(context, shard)


class Runner:
    """Runs a pass's shards and gives their results in shard order. In-process by default,
    side by side (see `side_by_side`: BLAS on one thread, as in worker processes, so the
    results are theirs to the bit; `work.run` must then be safe to run in parallel).
    `eval_cmd` on SqueezeNet, 400 images, against one shard at a time on a threaded BLAS (and
    one image per forward): int8 5.9 -> 4.1 s, float 3.8 -> 3.0 s."""

    jobs = 1
    remote = False

    def map(self, work: Work, shared: Any, shards: Iterable[Any]) -> Iterator[Any]:
        context = work.setup(shared)
        return side_by_side(lambda shard: work.run(context, shard), shards)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOCAL = Runner()


def in_order(submit: Callable[[Any], Any], result: Callable[[Any], Any], shards: Iterable[Any],
              ahead: int) -> Iterator[Any]:
    """Results of `submit(shard)` handles, in order, with at most `ahead` outstanding."""
    pending: Deque[Any] = deque()
    for shard in shards:
        pending.append(submit(shard))
        if len(pending) >= ahead:
            yield result(pending.popleft())
    while pending:
        yield result(pending.popleft())


def side_by_side(run: Callable[[Any], R], items: Iterable[Any], parallel: bool = True) -> Iterator[R]:
    """`run(item)` for each item, in order: one item per core at once in threads with BLAS on
    one thread where the cores allow (and `parallel`), else one after the other. A thread's
    own batches are not split again (kernels.threads.as_lane)."""
    from kernels.threads import WORKERS, as_lane, parallel_batches_possible, single_threaded_blas

    if not (parallel and parallel_batches_possible()):
        yield from map(run, items)
        return
    with single_threaded_blas(), ThreadPoolExecutor(WORKERS, thread_name_prefix="shard") as pool:
        yield from in_order(lambda item: pool.submit(as_lane(run), item), lambda handle: handle.result(),
                            items, WORKERS)


#: What worker processes import before they are forked from the fork server (once, not once
#: per worker): the modules whose functions shards run.
WORKER_MODULES = ["quantization_cmd.pipeline", "quantization_cmd.fidelity", "quantization_cmd.eval_cmd"]


def _start_pool(jobs: int):
    """A pool of `jobs` processes forked from a fork server that imported WORKER_MODULES (no
    state of ours is forked: the server is a fresh interpreter); spawned where there is no
    fork server (Windows) and from the single-file binary (its workers are the binary itself,
    started through multiprocessing.freeze_support)."""
    import multiprocessing

    if getattr(sys, "frozen", False) or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn").Pool(jobs)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context.Pool(jobs)


class Processes(Runner):
    """`jobs` worker processes on this machine, each with one thread (N processes x 1 thread);
    started at once in the background (while the model is read), kept for the run."""

    remote = True

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool = self._start()
        self._passes = itertools.count()

    def _start(self) -> Future:
        starter = ThreadPoolExecutor(1, thread_name_prefix="pool-start")
        pool = starter.submit(_start_pool, self.jobs)
        starter.shutdown(wait=False)
        return pool

    def map(self, work: Work, shared: Any, shards: Iterable[Any]) -> Iterator[Any]:
        if self._pool is None:  # closed: start again
            self._pool = self._start()
        pool = self._pool.result()
        fd, path = tempfile.mkstemp(prefix="quantization_cmd-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(shared, f, protocol=pickle.HIGHEST_PROTOCOL)
            ref = Shared(f"{os.getpid()}-{next(self._passes)}", path=path)
            yield from in_order(lambda s: pool.apply_async(_run_task, (work, ref, s)),
                                 lambda handle: handle.get(), shards, AHEAD * self.jobs)
        finally:
            os.unlink(path)

    def close(self) -> None:
        """Ends the workers, also those started but never used (the command failed first)."""
        starting, self._pool = self._pool, None
        if starting is not None and starting.exception() is None:
            starting.result().terminate()
            starting.result().join()


class DaskCluster(Runner):
    """The shards as tasks on a Dask distributed cluster. Workers read calibration files at
    the paths this process sees (the same path on every machine); the model and statistics
    are sent."""

    remote = True

    def __init__(self, address: str, timeout: float = 5.0):
        if not re.fullmatch(r"((tcp|tls)://)?([\w.\-]+|\[[0-9a-fA-F:]+\]):\d+", address):
            raise ValueError("give the scheduler as tcp://host:port")
        import distributed  # the `dask` extra; imported only here

        self.client = distributed.Client(address, timeout=timeout, set_as_default=False)
        self.jobs = max(1, sum(self.client.nthreads().values()))
        self._passes = itertools.count()

    def map(self, work: Work, shared: Any, shards: Iterable[Any]) -> Iterator[Any]:
        token = f"{os.getpid()}-{id(self)}-{next(self._passes)}"
        [future] = self.client.scatter([Shared(token, value=shared)], broadcast=True, hash=False)
        try:
            yield from in_order(lambda s: self.client.submit(_run_task, work, future, s, pure=False),
                                 lambda handle: handle.result(), shards, AHEAD * self.jobs)
        finally:
            future.release()

    def close(self) -> None:
        self.client.close()


def runner(jobs: int = 1, dask: Optional[str] = None) -> Runner:
    """The runner for `-j jobs` or `--dask address` (close it when done, or use `with`)."""
    if dask is not None:
        return DaskCluster(dask)
    return Processes(jobs) if jobs > 1 else LOCAL


def as_runner(jobs: "int | Runner") -> Tuple[Runner, bool]:
    """A Runner for `jobs` (a count or a Runner), and whether the caller made it (and closes it)."""
    if isinstance(jobs, Runner):
        return jobs, False
    return runner(jobs), jobs > 1


@contextlib.contextmanager
def running(jobs: "int | Runner") -> Iterator[Runner]:
    """A Runner for `jobs`, closed after the block if it was made here."""
    found, made = as_runner(jobs)
    try:
        yield found
    finally:
        if made:
            found.close()


def chunks(items: Sequence[Any], size: int) -> List[Sequence[Any]]:
    """`items` cut into consecutive runs of `size`."""
    return [items[i:i + size] for i in range(0, len(items), size)]
