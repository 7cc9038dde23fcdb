"""The fast dense layer: ``functional.dense``'s function (which has the maths) with its
GEMMs split between the engine's threads (``engine.threads``), each on one-thread BLAS.

A multi-threaded OpenBLAS call waits for its helper threads by spinning and yielding, and
on a busy machine each yield can hand the core to another process for a time slice: a
100 x 4320 x 100 product measured 1 ms on one thread and up to 130 ms on two right after a
convolution. The engine's own threads meet at a condition variable instead. Products
under ``SPLIT_MACS`` are too small to be worth a thread and run on one thread here.
"""

from __future__ import annotations

import numpy as np

from minicnn.engine import threads

SPLIT_MACS = 2**21  # multiply-adds from which a product is split between the threads


def _ranges(n: int, macs: int) -> list[tuple[int, int]]:
    """[start, stop) runs of ``n`` rows, one per thread (one run for a small product)."""
    parts = threads.parallel_parts(n) if macs >= SPLIT_MACS else 1
    return [(n * p // parts, n * (p + 1) // parts) for p in range(parts)]


def _run(fn, ranges) -> None:
    if len(ranges) == 1:
        with threads.blas_threads(1):
            fn(ranges[0])
    else:
        threads.map_concurrently(fn, ranges)


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D), w (M, D), b (M,) -> (out (N, M), x as the cache), as
    ``functional.dense_forward``; the threads take the rows of x."""
    N, M = x.shape[0], w.shape[0]
    out = np.empty((N, M), dtype=np.result_type(x, w))

    def rows(r: tuple[int, int]) -> None:
        s, e = r
        np.matmul(x[s:e], w.T, out=out[s:e])
        out[s:e] += b

    _run(rows, _ranges(N, x.size * M))
    return out, x


def dense_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, M), x (N, D), w (M, D) -> (dx (N, D), dw (M, D), db (M,)), as
    ``functional.dense_backward``; the threads take the rows of dx, then those of dw."""
    (N, M), D = dout.shape, x.shape[1]
    dtype = np.result_type(dout, w)
    dx, dw = np.empty((N, D), dtype=dtype), np.empty((M, D), dtype=dtype)

    def dx_rows(r: tuple[int, int]) -> None:
        np.matmul(dout[r[0]:r[1]], w, out=dx[r[0]:r[1]])

    def dw_rows(r: tuple[int, int]) -> None:
        np.matmul(dout[:, r[0]:r[1]].T, x, out=dw[r[0]:r[1]])

    _run(dx_rows, _ranges(N, N * M * D))
    _run(dw_rows, _ranges(M, N * M * D))
    return dx, dw, dout.sum(axis=0)
