"""Threads: the counts of both parallel runtimes minicnn uses, Numba's (kernels) and
NumPy's BLAS (the GEMMs), and the batch-parallel mode the engine's convolutions run in.

Outside the convolutions the two runtimes run one after the other, never at once, so each
may use every core; what must be avoided is oversubscription by a third party (for
example an OpenMP runtime started by another library), hence explicit counts that we also
print. Inside a convolution, each thread runs both on one thread (below), so there are
never more busy threads than the count.

Batch-parallel mode (``map_concurrently``): a convolution splits its batch into one run of
images per thread, and each thread does im2col, the GEMMs and col2im for its own images,
with Numba and BLAS on one thread each. Each core then keeps its own columns in its own
cache from im2col to the GEMM, and the cores do not meet at a barrier after every kernel
and every GEMM (the speed-up is measured in benchmarks/README.md, "Performance chapter").

Warm buffers (``warm_blas``): before the engine's first product, each of those threads
runs one larger product, so that OpenBLAS's per-thread work buffers are warm.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


@functools.cache
def _openblas():
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs_dir, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", "_64_", ""):
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None


def set_num_threads(n: int) -> dict[str, int | None]:
    """Use ``n`` threads for Numba and (when it can be reached) OpenBLAS. Returns the counts
    actually in effect, e.g. {"numba": 2, "blas": 2}. The batch-parallel mode uses Numba's
    count."""
    n = max(1, int(n))
    result: dict[str, int | None] = {"numba": None, "blas": None}
    numba = _numba()
    if numba is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        result["numba"] = numba.get_num_threads()
    blas = _openblas()
    if blas is not None:
        setter, getter = blas
        setter(ctypes.c_int(n))
        result["blas"] = int(getter())
    _warm["checked"] = False  # more threads may need warm buffers (``warm_blas``)
    return result


def get_num_threads() -> dict[str, int | None]:
    result: dict[str, int | None] = {"numba": None, "blas": None}
    numba = _numba()
    if numba is not None:
        result["numba"] = numba.get_num_threads()
    blas = _openblas()
    if blas is not None:
        result["blas"] = int(blas[1]())
    return result


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with BLAS on ``n`` threads, then restore its count.

    For a small GEMM right before batch-parallel work: OpenBLAS's worker threads spin for
    a while after each multi-threaded call, and on a small machine that spinning thread
    then shares a core with one of the batch-parallel threads."""
    blas = _openblas()
    if blas is None:
        yield
        return
    before = int(blas[1]())
    blas[0](ctypes.c_int(n))
    try:
        yield
    finally:
        blas[0](ctypes.c_int(before))


# --- batch-parallel mode -----------------------------------------------------------------

_local = threading.local()  # .worker: True on a thread running a part
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _start_worker() -> None:
    _local.worker = True
    numba = _numba()
    if numba is not None:
        numba.set_num_threads(1)  # per thread in Numba: this worker's kernels run serially


@functools.cache
def _numba_threadsafe() -> bool:
    """Whether Numba's parallel kernels may be entered from several threads at once: true of
    its "omp" and "tbb" threading layers, not of "workqueue" (which aborts the process).
    The workers call only serial kernels (``dispatch.run`` picks the serial twins where
    Numba has one thread), so this is a precaution: under "workqueue" one stray parallel
    call from a worker would end the process, and batch-parallel mode is left off."""
    numba = _numba()
    if numba is None:
        return True  # no Numba: the NumPy kernels are safe in threads
    from minicnn.kernels.activation import relu_backward_numba

    one = np.zeros(1, dtype=np.float32)
    relu_backward_numba(one, one)  # the layer is chosen at the first parallel call
    return numba.threading_layer() in ("omp", "tbb")


def parallel_parts(n_items: int) -> int:
    """Into how many parts, one per thread, batch-parallel work on ``n_items`` images splits:
    Numba's thread count (``set_num_threads``), at most ``n_items``; 1 inside a worker, or
    where Numba's threading layer is not thread-safe."""
    if getattr(_local, "worker", False) or n_items <= 1:
        return 1
    numba, blas = _numba(), _openblas()
    if numba is not None:
        threads = numba.get_num_threads()
    else:
        threads = int(blas[1]()) if blas is not None else 1
    if threads <= 1 or not _numba_threadsafe():
        return 1
    return min(n_items, threads)


# OpenBLAS runs small products several times more slowly through a thread's work buffer
# until a larger product has gone through it (benchmarks/README.md, "A cold BLAS buffer");
# one such product on each batch-parallel thread, all at once, warms every buffer.
WARM_SIZE = 512
_warm = {"threads": 0,  # how many threads' buffers are warm
         "checked": False}  # whether that count was checked since the thread count last changed
_warm_lock = threading.Lock()


def _warm_product(_: int) -> None:
    a = np.ones((WARM_SIZE, WARM_SIZE), dtype=np.float32)
    a @ a


def warm_blas() -> None:
    """Once per process (again if ``set_num_threads`` raises the count): one WARM_SIZE x
    WARM_SIZE float32 product on each of the threads batch-parallel work uses, at once, on
    one-thread BLAS. After that a flag test, as it runs before every engine product; in a
    worker it returns at once (its caller warms the workers; waiting for the lock there
    could deadlock the pool)."""
    if _warm["checked"] or getattr(_local, "worker", False):
        return
    with _warm_lock:
        parts = max(1, parallel_parts(1 << 30))
        if parts > _warm["threads"]:
            with blas_threads(1):
                map_concurrently(_warm_product, range(parts))
            _warm["threads"] = parts
        _warm["checked"] = True


def map_concurrently(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, each item on a thread of its own, all at once: the
    first on the calling thread, the others on the pool's.

    Inside ``fn``, Numba kernels run on one thread, and BLAS is switched to one thread
    until every item is done, then restored: BLAS's count is process-wide. (Running one
    item here rather than on a pool thread saves a thread switch, and the buffer that
    OpenBLAS keeps for each thread that calls it.) One item, or a call from inside a
    worker, runs here, in order."""
    global _pool, _pool_size
    if len(items) <= 1 or getattr(_local, "worker", False):
        return [fn(item) for item in items]
    if _pool is None or _pool_size < len(items) - 1:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(len(items) - 1, thread_name_prefix="minicnn",
                                   initializer=_start_worker)
        _pool_size = len(items) - 1
    numba = _numba()
    numba_threads = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    _local.worker = True
    try:
        with blas_threads(1):
            futures = [_pool.submit(fn, item) for item in items[1:]]
            try:
                first = fn(items[0])
            finally:
                wait(futures)  # all of them, even when one fails, before the threads return
            return [first] + [f.result() for f in futures]
    finally:
        _local.worker = False
        if numba is not None:
            numba.set_num_threads(numba_threads)
