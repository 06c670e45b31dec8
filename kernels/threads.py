"""Use both cores for a batch: images split across threads, each with single-threaded BLAS.

numpy's element-wise work (im2col copies, pooling, bias, activations) runs on one core; BLAS
runs on all. Splitting a batch across threads uses every core for both, but only with BLAS
held to one thread per call (two multi-threaded GEMMs at once fight over the cores). numpy
offers no call for that, so we find its OpenBLAS and call OpenBLAS's own setter; where that is
not possible (another BLAS, another platform) batches simply run in one thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import numpy as np

SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
           "openblas_set_num_threads")
WORKERS = os.cpu_count() or 1
_lock = threading.RLock()  # re-entrant: a data pass holds it around forwards that may split


def _openblas() -> Optional[Tuple[ctypes.CDLL, str]]:
    """numpy's OpenBLAS, loaded in this process, and the name of its thread-count setter."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in SETTERS:
            if hasattr(lib, name) and hasattr(lib, name.replace("set_", "get_")):
                return lib, name
    return None


def _find_openblas() -> Optional[Tuple[Callable[[int], None], Callable[[], int]]]:
    found = _openblas()
    if found is None:
        return None
    lib, name = found
    getter = getattr(lib, name.replace("set_", "get_"))
    getter.restype = ctypes.c_int
    return getattr(lib, name), getter


def openblas_kernels() -> Optional[str]:
    """The kernels numpy's OpenBLAS runs, as OpenBLAS names them (e.g. 'SkylakeX', 'Haswell'),
    for the benchmarks' headers; None without an OpenBLAS we can reach."""
    found = _openblas()
    corename = None if found is None else getattr(found[0], found[1].replace("set_num_threads", "get_corename"), None)
    if corename is None:
        return None
    corename.restype = ctypes.c_char_p
    return corename().decode()


_OPENBLAS = None if WORKERS < 2 else _find_openblas()
Result = TypeVar("Result")


_one_core = False
_lane = threading.local()  # .active: this thread is already one of a pool's one-per-core threads


def parallel_batches_possible() -> bool:
    return _OPENBLAS is not None and not _one_core and not getattr(_lane, "active", False)


def as_lane(work: Callable[..., Result]) -> Callable[..., Result]:
    """`work` for a thread of a one-per-core pool (run under single_threaded_blas by the
    thread that started the pool): inside it, batches are not split again (that would take
    single_threaded_blas's lock, which the starting thread holds, and oversubscribe the cores)."""
    def run(*args, **kwargs) -> Result:
        _lane.active = True
        try:
            return work(*args, **kwargs)
        finally:
            _lane.active = False
    return run


def use_one_core() -> None:
    """For a worker process of `-j N`: N processes already share the cores, so batches are not
    split and BLAS runs one thread (for good: each worker is one of N)."""
    global _one_core
    _one_core = True
    if _OPENBLAS is not None:
        _OPENBLAS[0](1)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread inside the block (restored after); without an OpenBLAS we
    can reach, nothing changes."""
    if _OPENBLAS is None:
        yield
        return
    setter, getter = _OPENBLAS
    with _lock:
        before = getter()
        setter(1)
        try:
            yield
        finally:
            setter(before)


def split_batch(batch: Dict[str, np.ndarray], parts: int) -> List[Dict[str, np.ndarray]]:
    """The batch cut along the samples into up to `parts` contiguous pieces, in order."""
    size = min(v.shape[0] for v in batch.values()) if batch else 0
    bounds = np.linspace(0, size, max(min(parts, size), 1) + 1).astype(int)
    return [{k: v[a:b] for k, v in batch.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def map_batch_parts(work: Callable[[Dict[str, np.ndarray]], Result], batch: Dict[str, np.ndarray],
                    pieces: Optional[int] = None) -> List[Result]:
    """`work` on pieces of the batch, results in sample order: one thread per core with
    single-threaded BLAS where that is possible, else one after the other here. `pieces` fixes
    how the batch is cut whatever the machine (for sums that must not depend on it); by
    default one piece per core. `work` must treat samples independently."""
    parts = split_batch(batch, WORKERS if pieces is None else pieces)
    if len(parts) < 2 or not parallel_batches_possible():
        return [work(part) for part in parts] if pieces is not None else [work(batch)]
    with single_threaded_blas(), ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(work, parts))
