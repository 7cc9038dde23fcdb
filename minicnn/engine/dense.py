"""The fast dense layer: ``functional.dense``'s function (which has the maths) with its
GEMMs split between the engine's threads (``engine.threads``), each on one-thread BLAS.

A multi-threaded OpenBLAS call waits for its helper threads by spinning and yielding, and
on a busy machine each yield can hand the core to another process for a whole time slice
(benchmarks/README.md has the measurement). The engine's own threads meet at a condition
variable instead. Products
under ``SPLIT_MACS`` are too small to be worth a thread and run on one thread here.
"""

from __future__ import annotations

import numpy as np

from minicnn.engine import threads

SPLIT_MACS = 2**21  # multiply-adds from which a product is split between the threads


def _parts(macs: int, *sizes: int) -> int:
    """Into how many parts, one per thread, a product of ``macs`` multiply-adds splits
    rows of each of ``sizes`` (1 for a small product)."""
    return min(threads.parallel_parts(n) for n in sizes) if macs >= SPLIT_MACS else 1


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive [start, stop) runs of ``n`` rows."""
    return [(n * p // parts, n * (p + 1) // parts) for p in range(parts)]


def _run(fn, parts: int) -> None:
    """fn(0), ..., fn(parts - 1), on the engine's threads (one map: one meeting of the
    threads), or on one-thread BLAS here for a single part."""
    if parts == 1:
        with threads.blas_threads(1):
            fn(0)
    else:
        threads.map_concurrently(fn, range(parts))


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D), w (M, D), b (M,) -> (out (N, M), x as the cache), as
    ``functional.dense_forward``; the threads take the rows of x."""
    N, M = x.shape[0], w.shape[0]
    threads.warm_blas()
    out = np.empty((N, M), dtype=np.result_type(x, w))

    parts = _parts(x.size * M, N)
    runs = _ranges(N, parts)

    def rows(part: int) -> None:
        s, e = runs[part]
        np.matmul(x[s:e], w.T, out=out[s:e])
        out[s:e] += b

    _run(rows, parts)
    return out, x


def dense_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, M), x (N, D), w (M, D) -> (dx (N, D), dw (M, D), db (M,)), as
    ``functional.dense_backward``; each thread takes rows of dx and rows of dw."""
    (N, M), D = dout.shape, x.shape[1]
    dtype = np.result_type(dout, w)
    dx, dw = np.empty((N, D), dtype=dtype), np.empty((M, D), dtype=dtype)

    parts = _parts(N * M * D, N, M)
    dx_runs, dw_runs = _ranges(N, parts), _ranges(M, parts)

    def rows(part: int) -> None:  # a part's rows of dx, then of dw
        (s, e), (a, z) = dx_runs[part], dw_runs[part]
        np.matmul(dout[s:e], w, out=dx[s:e])
        np.matmul(dout[:, a:z].T, x, out=dw[a:z])

    _run(rows, parts)
    return dx, dw, dout.sum(axis=0)
