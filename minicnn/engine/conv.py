"""The fast 2-D convolution: the same function as ``functional.conv`` (which has the
maths), computed in chunks of images, by several threads at once, in reused memory, and,
where the cost model of ``engine.algorithm`` says so, as Winograd's F(m x m, 3x3).

Chunks: the column matrix of a whole batch is large (batch 64, 32 channels at 48x48 is
170 MB in float32). A few images at a time keep ``cols`` small enough to stay in cache
between im2col and the GEMM; a chunk is sized so its GEMM still has about
``TARGET_COLUMNS`` columns, which keeps BLAS efficient on small late-stage maps too, and
proportionally more when a column is short (fewer than ``SHORT_COLUMN`` values: a
stride-2 first layer's are 27), so the kernel calls' fixed costs stay small next to
their work.

Threads: the batch is cut into one run of images per thread (``engine.threads``), and
each thread does im2col, the GEMMs and col2im for its own chunks, with BLAS on one thread.
Backward sums dw and db per thread and adds the partial sums at the end.

Direct: a stride-1 convolution with few channels runs as direct loops over each image
(``kernels/direct.py``), with no columns; its input gradient is the direct convolution of
dout with the flipped filters, and its weight gradient direct sums, image by image.

Pointwise: a 1x1 convolution with stride 1 and no padding is, image by image, one GEMM
on the input as it lies: x[n] viewed as (C, H*W) already is im2col's column matrix.
Forward writes w (F, C) @ x[n] straight into out[n]; backward needs dx[n] = w^T @ dout[n]
and dw = the sum of dout[n] @ x[n]^T, with no columns, transposes or col2im.

Winograd: a 3x3 convolution with stride 1 and padding 0 or 1 runs as (m + 2)^2 GEMMs on
transformed tiles (``kernels/winograd.py``). Backward is the same formula in reverse, in
the Winograd domain too, with the same chunks and threads: dout's tiles are transformed
once and serve both the weight gradient and the input gradient.

Kept columns: forward keeps a layer's im2col columns (or Winograd's transformed input
tiles) for backward when they fit in ``CACHE_COLUMNS_BYTES`` (in storage reused across
steps: ``engine.workspace``); larger ones are recomputed in backward, chunk by chunk,
which costs less than the memory.

Eval mode (``training=False``): nothing is kept for backward, and a Winograd layer reuses
its transform of the weights between calls while they keep their values
(``workspace.kept_transform``).

The constants' measurements are in benchmarks/README.md ("Performance chapter").
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np

from minicnn import kernels
from minicnn.engine import algorithm, threads
from minicnn.engine.algorithm import Choice, choose
from minicnn.engine.workspace import kept_columns, kept_transform, scratch, still_kept
from minicnn.kernels import output_hw
from minicnn.kernels.winograd import tile_count

TARGET_COLUMNS = 1024  # columns per GEMM chunk, per thread
SHORT_COLUMN = 288  # im2col columns of fewer values (C*KH*KW) get proportionally more
CACHE_COLUMNS_BYTES = 16 * 2**20  # keep a layer's columns for backward up to this size
# Fewer images than this run as one part with BLAS on all threads rather than split
# between threads: faster for 2 or 3 images (a face and its mirror, the webcam's every
# frame; measured in benchmarks/README.md, under MIN_SPLIT_IMAGES).
MIN_SPLIT_IMAGES = 4

Chunk = tuple[int, int]  # images [start, stop) of the batch


def chunk_size(n_images: int, pixels_per_image: int, column: int = SHORT_COLUMN) -> int:
    """How many images share one im2col/GEMM so each GEMM has ~TARGET_COLUMNS columns,
    or for columns of ``column`` < SHORT_COLUMN values, as many more as they are shorter."""
    columns = TARGET_COLUMNS * max(SHORT_COLUMN, column) // max(column, 1)
    return max(1, min(n_images, -(-columns // pixels_per_image)))


def plan_chunks(N: int, pixels_per_image: int, parts: int = 1,
                column: int = SHORT_COLUMN) -> tuple[tuple[Chunk, ...], ...]:
    """The batch's images in ``parts`` consecutive runs of near-equal size (one per thread),
    each cut into as few GEMM chunks of at most ``chunk_size`` images as will do, of
    near-equal size (32 images at 6x6 are two chunks of 16, not one of 29 and one of 3)."""
    plan = []
    for p in range(parts):
        start, stop = N * p // parts, N * (p + 1) // parts
        count = -(-(stop - start) // chunk_size(stop - start, pixels_per_image, column))
        cuts = [start + (stop - start) * k // max(count, 1) for k in range(count + 1)]
        plan.append(tuple(zip(cuts[:-1], cuts[1:])))
    return tuple(plan)


class ConvCache(NamedTuple):
    x: np.ndarray  # (N, C, H, W) the input
    w: np.ndarray  # (F, C, KH, KW)
    stride: int
    padding: int
    plan: tuple[tuple[Chunk, ...], ...]  # forward's chunks, by thread (``plan_chunks``)
    choice: Choice  # the algorithm forward ran
    # im2col's columns (K, n*P), or Winograd's input tiles (A2, n*T, C), by chunk start;
    # None: recompute them
    cols: dict[int, np.ndarray] | None = None
    owner: int = 0  # the kept columns' token (``workspace.still_kept``)
    U: np.ndarray | None = None  # Winograd's transform of w, (A2, C, F), for backward


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1,
                   padding: int = 0, relu: bool = False,
                   training: bool = True) -> tuple[np.ndarray, ConvCache]:
    """``functional.conv2d_forward``, fast: x (N, C, H, W), w (F, C, KH, KW), b (F,) or
    None -> (out (N, F, OH, OW), cache); ``relu``: max(out, 0) in the pass that adds the
    bias. ``training=False`` (eval mode, where a backward pass is rare: Grad-CAM's) keeps
    no columns for it (backward then recomputes them), and Winograd reuses its transform
    of w while w keeps its values."""
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if C != Cw:
        raise ValueError(f"input has {C} channels but the weights expect {Cw}")
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    threads.warm_blas()
    if N == 0:  # nothing to compute; backward's loops see no images either
        choice = Choice("im2col", 0)
    elif algorithm.get_algorithm()[0] == "measure":
        choice = measured_choice(x, w, b, stride, padding, training)
    else:
        choice = choose(N, C, F, KH, KW, stride, padding, OH, OW, training)
    return _forward(x, w, b, stride, padding, relu, training, choice)


def _forward(x, w, b, stride, padding, relu, training,
             choice: Choice) -> tuple[np.ndarray, ConvCache]:
    """``conv2d_forward`` by the given algorithm (``choice``)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    P, K = OH * OW, C * KH * KW
    x = np.ascontiguousarray(x)
    out = np.empty((N, F, OH, OW), dtype=x.dtype)
    plan = plan_chunks(N, P, threads.parallel_parts(N) if N >= MIN_SPLIT_IMAGES else 1,
                       K if choice.name == "im2col" else SHORT_COLUMN)
    if choice.name == "winograd":
        kept, owner, U = _winograd_forward(x, w, b, padding, choice.tile, relu, out, plan,
                                           training)
        return out, ConvCache(x, w, stride, padding, plan, choice, kept, owner, U)
    if choice.name == "direct":
        _direct(x, w, b, padding, relu, out, plan)
        return out, ConvCache(x, w, stride, padding, plan, choice)
    if choice.name == "pointwise":
        _pointwise(x, w, b, relu, out, plan)
        return out, ConvCache(x, w, stride, padding, plan, choice)
    keep = training and K * N * P * x.itemsize <= CACHE_COLUMNS_BYTES
    columns, owner = kept_columns(w, K * N * P, x.dtype) if keep else (None, 0)
    w2 = w.reshape(F, K)

    def run(chunks: tuple[Chunk, ...]) -> dict[int, np.ndarray]:
        kept = {}
        for s, e in chunks:
            if keep:  # consecutive stretches of ``columns``, each a contiguous (K, n*P) matrix
                cols = kept[s] = columns[K * s * P:K * e * P].reshape(K, (e - s) * P)
            else:
                cols = scratch(K * (e - s) * P, x.dtype).reshape(K, (e - s) * P)
            kernels.im2col_into(x[s:e], KH, KW, stride, padding, out=cols)
            if e - s == 1:  # one image: the product is already in (F, P) order, write it in place
                dst = out[s].reshape(F, P)
                np.matmul(w2, cols, out=dst)
                if b is not None or relu:  # the bias (and ReLU) in one pass, in place
                    kernels.regroup_add_bias(dst, b, dst.reshape(1, F, P), relu=relu)
                continue
            y = scratch(F * (e - s) * P, out.dtype, "gemm").reshape(F, (e - s) * P)
            np.matmul(w2, cols, out=y)
            # (F, n*P) -> (n, F, P), adding the bias (and the ReLU) in the same pass
            kernels.regroup_add_bias(y, b, out[s:e].reshape(e - s, F, P), relu=relu)
        return kept

    kept = threads.map_concurrently(run, plan)
    cols = {s: c for part in kept for s, c in part.items()} if keep else None
    return out, ConvCache(x, w, stride, padding, plan, choice, cols, owner)


def _seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


_measuring = threading.Lock()  # one measurement at a time: they would time each other


def measured_choice(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                    padding: int, training: bool = True) -> Choice:
    """The fastest algorithm for this convolution here, by measurement: on the first call
    for its shape, each candidate's forward and, in training, backward pass (with a random
    upstream gradient) timed, twice in training and three times in eval mode, the best
    time kept; remembered per shape, dtypes, kernel tier, thread split and mode after
    that. A layer of 1 to 3 input channels is taken for a network's first, on an image,
    whose backward computes no input gradient."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    key = (N, C, H, W, F, KH, KW, stride, padding, x.dtype.str, w.dtype.str,
           kernels.dispatch.resolve(None), threads.parallel_parts(N), training)
    with _measuring:
        if key in algorithm.measured:
            return algorithm.measured[key]
        OH, OW = output_hw(H, W, KH, KW, stride, padding)
        dout = np.random.default_rng(0).standard_normal((N, F, OH, OW)).astype(x.dtype)
        seconds = {}
        for candidate in algorithm.candidates(C, F, KH, KW, stride, padding):
            def step(candidate=candidate) -> None:
                cache = _forward(x, w, b, stride, padding, False, training, candidate)[1]
                if training:
                    conv2d_backward(dout, cache, need_dx=C > 3)

            seconds[candidate] = min(_seconds(step) for _ in range(2 if training else 3))
        algorithm.measured[key] = min(seconds, key=seconds.get)
        return algorithm.measured[key]


def _direct(x, w, b, padding, relu, out, plan) -> None:
    """out = the direct convolution of x with w (+ b, ReLU), each thread on its own images."""
    if kernels.dispatch.resolve(None) != "numba":  # forced without Numba: the NumPy tier
        kernels.direct.direct_conv(x, w, b, padding, relu=relu, out=out)
        return
    C, H, W = x.shape[1:]
    plane = (H + 2 * padding) * (W + 2 * padding)
    bias = np.zeros(w.shape[0], dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)

    def run(chunks: tuple[Chunk, ...]) -> None:
        s, e = chunks[0][0], chunks[-1][1]
        kernels.direct.direct_conv_numba(
            x[s:e], w, bias, padding, relu, out[s:e],
            scratch(C * plane, x.dtype).reshape(C, plane), scratch(plane, x.dtype, "gemm"))

    threads.map_concurrently(run, plan)


def _pointwise(x, w, b, relu, out, plan) -> None:
    """out[n] = w (F, C) @ x[n] (C, H*W) (+ b, ReLU) for a 1x1 convolution, each thread on
    its own images."""
    N, C, H, W = x.shape
    F, P = w.shape[0], H * W
    w2 = w.reshape(F, C)

    def run(chunks: tuple[Chunk, ...]) -> None:
        for n in range(chunks[0][0], chunks[-1][1]):
            dst = out[n].reshape(F, P)
            np.matmul(w2, x[n].reshape(C, P), out=dst)
            if b is not None or relu:
                kernels.regroup_add_bias(dst, b, dst.reshape(1, F, P), relu=relu)

    threads.map_concurrently(run, plan)


def _pointwise_backward(dout, cache, need_dx, need_db):
    """Backward of a 1x1 convolution, image by image: dx[n] = w^T @ dout[n], and per
    thread dw = the sum of dout[n] @ x[n]^T, db the sum of dout."""
    x, w = cache.x, cache.w
    N, C, H, W = x.shape
    F, P = w.shape[0], H * W
    w2 = w.reshape(F, C)
    dout = np.ascontiguousarray(dout)
    dx = np.empty_like(x) if need_dx else None
    parts = len(cache.plan)
    dw_parts = np.zeros((parts, F, C), dtype=x.dtype)
    db_parts = np.zeros((parts, F), dtype=dout.dtype)

    def run(part: int) -> None:
        s, e = cache.plan[part][0][0], cache.plan[part][-1][1]
        product = scratch(F * C, x.dtype, "dw").reshape(F, C)
        for n in range(s, e):
            d = dout[n].reshape(F, P)
            dw_parts[part] += np.matmul(d, x[n].reshape(C, P).T, out=product)
            if need_dx:
                np.matmul(w2.T, d, out=dx[n].reshape(C, P))
        if need_db:
            db_parts[part] = dout[s:e].sum(axis=(0, 2, 3))

    threads.map_concurrently(run, range(parts))
    db = db_parts.sum(axis=0) if need_db else None
    return dx, dw_parts.sum(axis=0).reshape(w.shape), db


def winograd_weights(w: np.ndarray, m: int, reuse: bool = False) -> np.ndarray:
    """Winograd's transform U (A2, C, F) of the filters w; ``reuse``: the transform made
    for this array before, while it holds the same values (``workspace.kept_transform``)."""
    def make(filters: np.ndarray) -> np.ndarray:
        # the NumPy tier's transform is a GEMM: BLAS on one thread, so that no BLAS worker
        # spins into the map (the Numba tier uses no BLAS)
        with threads.blas_threads(1):
            return kernels.winograd_weights(filters, m)

    return kept_transform(w, m, make) if reuse else make(w)


def _winograd_forward(x, w, b, padding, m, relu, out, plan, training):
    """out = the convolution as Winograd F(m x m, 3x3): per chunk, the tiles transformed,
    (m + 2)^2 GEMMs with the transformed weights, the tiles back (+ bias, ReLU) into NCHW.
    In training the transformed input tiles are kept for backward as im2col's columns are
    (returns them by chunk start, or None, and their owner token); in eval mode the
    weights' transform is reused between calls."""
    N, C, F = x.shape[0], x.shape[1], w.shape[0]
    A2, T = (m + 2) ** 2, tile_count(*out.shape[2:], m)  # tile positions; tiles per image
    U = winograd_weights(w, m, reuse=not training)  # (A2, C, F)
    keep = training and A2 * N * T * C * x.itemsize <= CACHE_COLUMNS_BYTES
    storage, owner = kept_columns(w, A2 * N * T * C, x.dtype) if keep else (None, 0)

    def run(chunks: tuple[Chunk, ...]) -> dict[int, np.ndarray]:
        kept = {}
        for s, e in chunks:
            size = A2 * (e - s) * T * C
            if keep:
                V = kept[s] = storage[A2 * s * T * C:A2 * e * T * C].reshape(A2, (e - s) * T, C)
            else:
                V = scratch(size, x.dtype).reshape(A2, (e - s) * T, C)
            kernels.winograd_input(x[s:e], V, padding, m)
            M = scratch(A2 * (e - s) * T * F, out.dtype, "gemm").reshape(A2, (e - s) * T, F)
            np.matmul(V, U, out=M)
            kernels.winograd_output(M, b, out[s:e], relu=relu, m=m)
        return kept

    kept = threads.map_concurrently(run, plan)
    return ({s: v for part in kept for s, v in part.items()} if keep else None), owner, U


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, need_dx: bool = True, need_db: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``functional.conv2d_backward``, fast: dout (N, F, OH, OW) -> (dx, dw, db), dx None
    without ``need_dx``, db None without ``need_db``. The threads split the batch as
    forward did; each sums dw and db over its own images, and the parts are added."""
    x, w, stride, padding = cache.x, cache.w, cache.stride, cache.padding
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    if cache.choice.name == "winograd":
        return _winograd_backward(dout, cache, need_dx, need_db)
    if cache.choice.name == "direct":
        return _direct_backward(dout, cache, need_dx, need_db)
    if cache.choice.name == "pointwise":
        return _pointwise_backward(dout, cache, need_dx, need_db)
    P, K = dout.shape[2] * dout.shape[3], C * KH * KW
    w2 = w.reshape(F, K)
    dx = np.empty_like(x) if need_dx else None
    kept = cache.cols if cache.cols is not None and still_kept(w, cache.owner) else None
    # dw is accumulated transposed, (K, F): OpenBLAS runs cols @ d2.T faster than
    # d2 @ cols.T on these shapes, and one small transpose at the end costs nothing
    parts = len(cache.plan)
    dw_parts = np.zeros((parts, K, F), dtype=x.dtype)
    db_parts = np.zeros((parts, F), dtype=dout.dtype)

    def run(part: int) -> None:
        product = scratch(K * F, x.dtype, "dw").reshape(K, F)
        for s, e in cache.plan[part]:
            if need_db:
                db_parts[part] += dout[s:e].sum(axis=(0, 2, 3))
            if kept is not None:
                cols = kept[s]
            else:
                cols = scratch(K * (e - s) * P, x.dtype).reshape(K, (e - s) * P)
                kernels.im2col_into(x[s:e], KH, KW, stride, padding, out=cols)
            # (n, F, P) -> (F, n*P): the layout the GEMMs want (for one image the two are
            # the same: a view, no copy)
            if e - s == 1 and dout.flags.c_contiguous:
                d2 = dout[s].reshape(F, P)
            else:
                d2 = scratch(F * (e - s) * P, dout.dtype, "gemm").reshape(F, e - s, P)
                np.copyto(d2, dout[s:e].reshape(e - s, F, P).transpose(1, 0, 2))
                d2 = d2.reshape(F, (e - s) * P)
            dw_parts[part] += np.matmul(cols, d2.T, out=product)
            if need_dx:  # the "cols" scratch slot is free again: recomputed columns are used up
                dcols = np.matmul(w2.T, d2, out=scratch(K * (e - s) * P, x.dtype)
                                  .reshape(K, (e - s) * P))
                kernels.col2im(dcols, (e - s, C, H, W), KH, KW, stride, padding, out=dx[s:e])

    threads.map_concurrently(run, range(parts))
    db = db_parts.sum(axis=0) if need_db else None
    return dx, np.ascontiguousarray(dw_parts.sum(axis=0).T).reshape(w.shape), db


def _direct_backward(dout, cache, need_dx, need_db):
    """Backward of a direct convolution: per thread, dw's sums over its images, and dx as
    the direct convolution of dout (padding KH - 1 - padding) with the flipped filters."""
    x, w, padding = cache.x, cache.w, cache.padding
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    dout = np.ascontiguousarray(dout)
    q = KH - 1 - padding  # dx's padding
    if kernels.dispatch.resolve(None) != "numba":  # forced without Numba: the NumPy tier
        dx = kernels.direct.direct_conv(dout, kernels.direct.flip_filters(w), None, q) \
            if need_dx else None
        db = dout.sum(axis=(0, 2, 3)) if need_db else None
        return dx, kernels.direct.direct_weight_grad(x, dout, KH, KW, padding), db
    plane = (H + 2 * padding) * (W + 2 * padding)
    plane_dx = (dout.shape[2] + 2 * q) * (dout.shape[3] + 2 * q)
    dx = np.empty_like(x) if need_dx else None
    wt = kernels.direct.flip_filters(w) if need_dx else None
    zeros = np.zeros(C, dtype=x.dtype)
    parts = len(cache.plan)
    dw_parts = np.zeros((parts, F, C, KH * KW), dtype=x.dtype)
    db_parts = np.zeros((parts, F), dtype=dout.dtype)

    def run(part: int) -> None:
        s, e = cache.plan[part][0][0], cache.plan[part][-1][1]
        kernels.direct.direct_weight_grad_numba(
            x[s:e], dout[s:e], padding, dw_parts[part], db_parts[part],
            scratch(C * plane, x.dtype).reshape(C, plane),
            scratch(F * plane, x.dtype, "gemm").reshape(F, plane))
        if need_dx:
            kernels.direct.direct_conv_numba(
                dout[s:e], wt, zeros, q, False, dx[s:e],
                scratch(F * plane_dx, x.dtype).reshape(F, plane_dx),
                scratch(plane_dx, x.dtype, "gemm"))

    threads.map_concurrently(run, range(parts))
    db = db_parts.sum(axis=0) if need_db else None
    return dx, dw_parts.sum(axis=0).reshape(w.shape), db


def _winograd_backward(dout, cache, need_dx, need_db):
    """Backward of a Winograd convolution with m x m tiles, through the forward formula in
    reverse: per chunk, dout's tiles transformed once, dM = A dY A^T; the weight
    gradient's transform dU (A2, F, C) = sum over tiles of dM^T V; and the input
    gradient's, dV = dM U^T, taken back to dx by the transpose of the input transform."""
    x, w, padding, m = cache.x, cache.w, cache.padding, cache.choice.tile
    N, C, H, W = x.shape
    F, OH, OW = dout.shape[1:]
    dx = np.empty_like(x) if need_dx else None
    if need_dx:  # forward's U transposed at each position, (A2, F, C)
        Ut = cache.U.transpose(0, 2, 1)
    kept = cache.cols if cache.cols is not None and still_kept(w, cache.owner) else None
    parts = len(cache.plan)
    A2 = (m + 2) ** 2
    dU_parts = np.empty((parts, A2, F, C), dtype=x.dtype)  # each written by its first chunk
    db_parts = np.zeros((parts, F), dtype=dout.dtype)

    def run(part: int) -> None:
        dU = scratch(A2 * F * C, x.dtype, "dw").reshape(A2, F, C)
        for k, (s, e) in enumerate(cache.plan[part]):
            if need_db:
                db_parts[part] += dout[s:e].sum(axis=(0, 2, 3))
            nT = (e - s) * tile_count(OH, OW, m)
            if kept is not None:
                V = kept[s]
            else:
                V = scratch(A2 * nT * C, x.dtype).reshape(A2, nT, C)
                kernels.winograd_input(x[s:e], V, padding, m)
            dM = scratch(A2 * nT * F, x.dtype, "gemm").reshape(A2, nT, F)
            kernels.winograd_grad_output(dout[s:e], dM, m)
            if k == 0:
                np.matmul(dM.transpose(0, 2, 1), V, out=dU_parts[part])
            else:
                dU_parts[part] += np.matmul(dM.transpose(0, 2, 1), V, out=dU)
            if need_dx:  # the "cols" scratch slot is free (V kept) or used up: it takes dV
                dV = np.matmul(dM, Ut, out=scratch(A2 * nT * C, x.dtype).reshape(A2, nT, C))
                kernels.winograd_input_grad(dV, dx[s:e], padding, m)

    threads.map_concurrently(run, range(parts))
    db = db_parts.sum(axis=0) if need_db else None
    with threads.blas_threads(1):  # as for winograd_weights in forward
        return dx, kernels.winograd_weight_grad(dU_parts, m), db
