"""2-D convolution as im2col + one matrix product (GEMM), forward and backward; 3x3
convolutions with stride 1 and padding 1 or 0 as Winograd's F(m x m, 3x3) instead, with
2x2, 3x3 or 4x4 output tiles (below).

Shapes: x (N, C, H, W), w (F, C, KH, KW), b (F,) -> out (N, F, OH, OW), with
OH, OW from ``minicnn.kernels.output_hw`` (``(H + 2*padding - KH) // stride + 1``).

For a chunk of n images, ``cols = im2col(x_chunk)`` has shape (C*KH*KW, n*OH*OW) and

    forward :  out  = W2 @ cols + b            W2 = w.reshape(F, C*KH*KW)
    backward:  dW2 += dout2 @ cols.T           dout2: (F, n*OH*OW)
                      (computed as its transpose, cols @ dout2.T: see conv2d_backward)
               dcols = W2.T @ dout2,  dx = col2im(dcols)
               db   = sum of dout over N, OH, OW

Why chunks: the column matrix of a whole batch is large (batch 64, 32 channels at 48x48
is 170 MB in float32), which costs memory bandwidth and RAM. Working on a few images at a
time keeps ``cols`` small enough to stay in cache and lets us reuse one buffer across
chunks and steps. The chunk is sized so each GEMM still has about ``TARGET_COLUMNS``
columns, which keeps BLAS efficient for small late-stage feature maps too.

Why threads split the batch: with several threads (``minicnn.threads``), the batch is
cut into one run of images per thread, and each thread does im2col, the GEMMs and col2im
for its own chunks, with BLAS on one thread. A chunk's columns then stay with one core
from im2col to the GEMM, and the cores never wait for each other inside a layer. Backward
sums dW and db per thread and adds the partial sums at the end.

Why Winograd for most layers: a 3x3 convolution with stride 1 and padding 1 or 0 (every
conv of the ``default`` and ``seed`` models but the first) runs as Winograd's
F(m x m, 3x3) instead (``kernels/winograd.py``): (m + 2)^2 GEMMs, 16, 25 or 36 for 2x2,
3x3 or 4x4 output tiles, with 2.25x, 3.24x or up to 4x fewer multiply-adds in all than
the one im2col GEMM, plus cheap transforms of the tiles; ``winograd_tile`` picks m from
the output's size. Its input gradient is the same
kind of convolution (of dout with padding 2 - padding, with each filter turned by 180
degrees and the channel axes swapped), and its weight gradient the transposed algorithm,
so backward runs in the Winograd domain too, with the same chunks and threads. See
``use_winograd``.

Why ``cols`` is only sometimes kept for backward: it is the same memory argument. Small
column matrices (deep, low-resolution layers) are kept in the cache, which saves the
second im2col; the large ones of the first layers are recomputed, chunk by chunk, in
backward (see ``CACHE_COLUMNS_BYTES``).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from minicnn import kernels, threads
from minicnn.kernels import output_hw

# Columns per GEMM chunk, per thread. Measured on a 2-core EPYC (512 kB L2 per core, 32 MB
# L3): when both cores shared each chunk, 2048 gave ~10% faster training steps than 4096
# or 8192, and 1024 was slower again. With a chunk per core (batch-parallel mode), 1024
# makes the `default` model's convolutions, forward + backward at batch 64, 5% faster
# than 2048 (0.98-1.14x by layer, min of 15 runs each, alternating), and halves the
# scratch memory. Smaller chunks keep a chunk's columns (K * 1024 * 4 bytes) nearer the
# caches between im2col and the GEMM.
TARGET_COLUMNS = 1024

# One set of scratch buffers per thread: in batch-parallel mode (``minicnn.threads``) each
# worker runs im2col and its GEMMs on its own images at the same time as the others.
_workspace = threading.local()


def _buffer(size: int, dtype: np.dtype, slot: str = "cols") -> np.ndarray:
    """A reusable flat scratch buffer of at least ``size`` elements (one per thread, slot
    and dtype): "cols" for a chunk's im2col columns (in backward, then their gradient),
    "gemm" for its matrix product (in backward: the upstream gradient regrouped), "dw" for
    a chunk's weight gradient."""
    buffers = _workspace.__dict__.setdefault("buffers", {})
    key = (slot, np.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=key[1])
        buffers[key] = buf
    return buf[:size]


def chunk_size(n_images: int, pixels_per_image: int) -> int:
    """How many images share one im2col/GEMM so each GEMM has ~TARGET_COLUMNS columns."""
    return max(1, min(n_images, -(-TARGET_COLUMNS // pixels_per_image)))


Chunk = tuple[int, int]  # images [start, stop) of the batch


def plan_chunks(N: int, pixels_per_image: int, parts: int = 1) -> tuple[tuple[Chunk, ...], ...]:
    """The batch's images in ``parts`` consecutive runs of near-equal size (one per thread),
    each cut into as few GEMM chunks of at most ``chunk_size`` images as will do, of
    near-equal size (32 images at 6x6 are two chunks of 16, not one of 29 and one of 3)."""
    plan = []
    for p in range(parts):
        start, stop = N * p // parts, N * (p + 1) // parts
        count = -(-(stop - start) // chunk_size(stop - start, pixels_per_image))
        cuts = [start + (stop - start) * k // max(count, 1) for k in range(count + 1)]
        plan.append(tuple(zip(cuts[:-1], cuts[1:])))
    return tuple(plan)


# Winograd for 3x3, stride 1, padding 1 or 0 convolutions with at least this many input
# channels (a first layer's K = 9 GEMM is memory-bound either way) and, in all, at least
# WINOGRAD_MIN_TILES 2x2 output tiles: for small batches the transforms' and the 16 GEMM
# calls' fixed costs outweigh the multiplies saved. (These measurements predate
# F(4x4, 3x3), below; they were taken with F(2x2, 3x3) everywhere.) The default model's
# eval forward on 2 cores (medians of 300 calls, fresh processes), im2col only against
# Winograd: one face 2.8-4.4 against 3.2-4.7 ms with its 24x24 layers (144 tiles) in
# Winograd; with the 512-tile threshold, 8 faces 13.4-14.4 against 13.0-14.6 ms, 16 faces
# 28.8 against 22.6-23.1 ms, 64 faces 90-105 against 66-74 ms. Measured on one core (AMD
# EPYC, Zen 4), batch 32, against the im2col convolution: forward 1.40x (64->64 at
# 24x24), 1.83x (128->128 at 12x12), 1.37x (256->256 at 6x6); backward 1.35x, 1.52x,
# 1.34x. The ``default`` model's training step at batch 64 on 2 cores: 330-353 ms with
# im2col everywhere, 260-313 ms with Winograd; the ``seed`` model's (padding 0): 800-864
# against 621-681 ms (4 alternating rounds each, same process).
WINOGRAD = True
WINOGRAD_MIN_CHANNELS = 8
WINOGRAD_MIN_TILES = 512

# The output tile of those convolutions: the m x m tile, m = 2, 3 or 4, whose GEMMs take
# the fewest multiplies, (m + 2)^2 per tile (the smaller m on a tie): F(4x4, 3x3) on the
# default model's 24x24 and 12x12 outputs, F(3x3, 3x3) on its 6x6 ones (100 multiplies
# per image and channel pair, against 144 with either of the others, whose tiles do not
# fit 6x6 as well). None: that rule; 2, 3 or 4: that tile everywhere (for tests).
# Measured on one core, a chunk's forward (transforms and GEMMs), F(4x4) against F(2x2):
# 1.3-1.4x faster at 24x24 (32 or 64 channels), 1.4-1.7x at 12x12 (64 or 128), 1.15x at
# 23x23 -> 21x21 (the seed model); F(3x3) against F(2x2) at 6x6: forward 1.04-1.28x, the
# weight gradient's GEMMs 1.4-1.5x. The default model's training step, F(2x2) everywhere
# against F(4x4) where it does best: fastest 261 against 221 ms, median 281 against 257
# (2 cores, 6 alternating rounds in one process).
WINOGRAD_TILE: int | None = None


def use_winograd(C: int, KH: int, KW: int, stride: int, padding: int, N: int, H: int,
                 W: int) -> bool:
    """Whether a convolution of x (N, C, H, W) runs as Winograd (see above)."""
    tiles = N * kernels.winograd.tile_count(*output_hw(H, W, KH, KW, stride, padding))
    return (WINOGRAD and KH == KW == 3 and stride == 1 and padding in (0, 1)
            and C >= WINOGRAD_MIN_CHANNELS and tiles >= WINOGRAD_MIN_TILES)


def winograd_tile(OH: int, OW: int) -> int:
    """The output tile size m (2, 3 or 4) of a Winograd convolution with an OH x OW output
    (see WINOGRAD_TILE)."""
    if WINOGRAD_TILE is not None:
        return WINOGRAD_TILE
    return min((2, 3, 4), key=lambda m: (m + 2) ** 2 * kernels.winograd.tile_count(OH, OW, m))


# Forward keeps a layer's im2col columns for backward when the whole batch's columns fit
# in this many bytes; larger ones are recomputed from x, chunk by chunk (see above).
# The cost is memory held between forward and backward. It used to be 128 MB, when
# im2col was 3-4x slower and recomputing columns cost about 9% of a step. Since im2col
# vectorises (numba_kernels), recomputing is cheap: for the `default` model at batch 64
# (2 cores), 32 MB against 128 MB measured within the noise of the step time (5
# interleaved runs each), and 16 MB keeps only the first layer's and one 6x6 layer's
# columns (16 MB in all, down from 227 MB), which brings the step's peak memory to
# within 1.5x of PyTorch's (benchmarks, memory case).
CACHE_COLUMNS_BYTES = 16 * 2**20


class ConvCache(NamedTuple):
    x: np.ndarray  # (N, C, H, W) the input
    w: np.ndarray  # (F, C, KH, KW)
    stride: int
    padding: int
    plan: tuple[tuple[Chunk, ...], ...]  # forward's chunks, by thread (``plan_chunks``)
    cols: dict[int, np.ndarray] | None = None  # (K, n*P) by chunk start, or None: recompute
    columns: np.ndarray | None = None  # the flat storage behind ``cols``, to reuse


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, padding: int = 0,
    keep_columns: bool = True, columns: np.ndarray | None = None, relu: bool = False,
) -> tuple[np.ndarray, ConvCache]:
    """Convolve x (N, C, H, W) with w (F, C, KH, KW), add b (F,). Returns (out, cache).

    ``relu=True`` returns max(out, 0) instead, in the same pass that adds the bias (a ReLU
    fused into the convolution; its gradient is the caller's: see ``layers.Conv2D``).

    ``keep_columns=False`` (inference: no backward will follow) never keeps the im2col
    columns, so every chunk reuses one scratch buffer instead of allocating fresh memory.
    ``columns``: where to keep them, a flat array of x's dtype with at least
    C*KH*KW * N*OH*OW elements (a smaller one is replaced). ``Conv2D`` passes the same one
    every training step: fresh memory for ~100 MB of columns per step costs a page fault
    per 4 kB, which measured as a quarter of im2col's time. None allocates.

    The batch is split between threads (``minicnn.threads.map_concurrently``), each doing
    its own images' chunks.
    """
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if C != Cw:
        raise ValueError(f"input has {C} channels but the weights expect {Cw}")
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    P, K = OH * OW, C * KH * KW
    x = np.ascontiguousarray(x)
    w2 = w.reshape(F, K)
    out = np.empty((N, F, OH, OW), dtype=x.dtype)
    plan = plan_chunks(N, P, threads.parallel_parts(N))
    wino = use_winograd(C, KH, KW, stride, padding, N, H, W)
    if wino:
        m = winograd_tile(OH, OW)
        A2 = (m + 2) ** 2  # positions in a transformed tile
        with threads.blas_threads(1):  # (see there: no spinning BLAS thread during the map)
            U = kernels.winograd_weights(w, m)  # (A2, C, F)
        T = kernels.winograd.tile_count(OH, OW, m)  # tiles per image
    keep = not wino and keep_columns and K * N * P * x.itemsize <= CACHE_COLUMNS_BYTES
    if keep and (columns is None or columns.size < K * N * P or columns.dtype != x.dtype):
        columns = np.empty(K * N * P, dtype=x.dtype)

    def run(chunks: tuple[Chunk, ...]) -> dict[int, np.ndarray]:
        kept = {}
        for s, e in chunks:
            if wino:  # tiles transformed, A2 GEMMs, tiles back (+ bias, ReLU) into NCHW
                V = _buffer(A2 * (e - s) * T * C, x.dtype).reshape(A2, (e - s) * T, C)
                kernels.winograd_input(x[s:e], V, padding, m)
                M = _buffer(A2 * (e - s) * T * F, out.dtype, "gemm").reshape(A2, (e - s) * T, F)
                np.matmul(V, U, out=M)
                kernels.winograd_output(M, b, out[s:e], relu=relu, m=m)
                continue
            if keep:  # consecutive stretches of ``columns``, each a contiguous (K, n*P) matrix
                cols = columns[K * s * P:K * e * P].reshape(K, (e - s) * P)
                kept[s] = cols
            else:
                cols = _buffer(K * (e - s) * P, x.dtype).reshape(K, (e - s) * P)
            kernels.im2col_into(x[s:e], KH, KW, stride, padding, out=cols)
            if e - s == 1:  # one image: the product is already in (F, P) order, write it in place
                dst = out[s].reshape(F, P)
                np.matmul(w2, cols, out=dst)
                if b is not None or relu:  # the bias (and ReLU) in one pass, in place
                    kernels.regroup_add_bias(dst, b, dst.reshape(1, F, P), relu=relu)
                continue
            y = _buffer(F * (e - s) * P, out.dtype, "gemm").reshape(F, (e - s) * P)
            np.matmul(w2, cols, out=y)
            # (F, n*P) -> (n, F, P), adding the bias (and the ReLU) in the same pass
            kernels.regroup_add_bias(y, b, out[s:e].reshape(e - s, F, P), relu=relu)
        return kept

    kept = threads.map_concurrently(run, plan)
    if not keep:
        return out, ConvCache(x, w, stride, padding, plan)
    cols = {s: c for part in kept for s, c in part.items()}
    return out, ConvCache(x, w, stride, padding, plan, cols, columns)


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, need_dx: bool = True, need_db: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of conv2d_forward. dout (N, F, OH, OW) -> (dx, dw, db).

    ``need_dx=False`` skips the input gradient (the first layer of a network has no use
    for it), saving one GEMM and one col2im; dx is then returned as None. ``need_db=False``
    (a convolution without bias) skips the bias gradient's pass over dout; db is then None.
    The threads split the batch as forward did; each sums dw and db over its own images,
    and the partial sums are added at the end.
    """
    x, w, stride, padding = cache.x, cache.w, cache.stride, cache.padding
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, OH, OW = dout.shape
    P, K = OH * OW, C * KH * KW
    w2 = w.reshape(F, K)
    dx = np.empty_like(x) if need_dx else None
    wino = use_winograd(C, KH, KW, stride, padding, N, H, W)
    if wino:  # the tiles of forward's output, and of dx (an output of size H x W)
        m, m_dx = winograd_tile(OH, OW), winograd_tile(H, W)
    if wino and need_dx:  # dx = the same convolution of dout with w turned 180 degrees, F, C
        with threads.blas_threads(1):  # swapped (see there: no spinning BLAS thread in the map)
            U = kernels.winograd_weights(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), m_dx)

    # Per thread: its part of dw (or of its Winograd transform dU) and db, added up at the
    # end. The im2col dw is accumulated transposed, (K, F): OpenBLAS runs cols @ d2.T
    # 1.0-1.3x as fast as d2 @ cols.T on these shapes (the most for F = 64: 78 against 62
    # GFLOP/s on one core, interleaved, medians of 25); one small transpose at the end
    # costs nothing next to the GEMMs.
    parts = len(cache.plan)
    dw_parts = np.zeros((parts, (m + 2) ** 2, F, C) if wino else (parts, K, F), dtype=x.dtype)
    db_parts = np.zeros((parts, F), dtype=dout.dtype)

    def run(part: int) -> None:
        product = _buffer(dw_parts[part].size, x.dtype, "dw").reshape(dw_parts[part].shape)
        for s, e in cache.plan[part]:
            if need_db:
                db_parts[part] += dout[s:e].sum(axis=(0, 2, 3))
            if wino:
                _winograd_backward(x[s:e], dout[s:e], padding, m, U if need_dx else None,
                                   m_dx, None if dx is None else dx[s:e], product)
                dw_parts[part] += product
                continue
            if cache.cols is not None:
                cols = cache.cols[s]
            else:
                cols = _buffer(K * (e - s) * P, x.dtype).reshape(K, (e - s) * P)
                kernels.im2col_into(x[s:e], KH, KW, stride, padding, out=cols)
            # (n, F, P) -> (F, n*P): the layout the GEMMs want, in scratch memory (for one
            # image the two are the same: a view, no copy)
            if e - s == 1 and dout.flags.c_contiguous:
                d2 = dout[s].reshape(F, P)
            else:
                d2 = _buffer(F * (e - s) * P, dout.dtype, "gemm").reshape(F, e - s, P)
                np.copyto(d2, dout[s:e].reshape(e - s, F, P).transpose(1, 0, 2))
                d2 = d2.reshape(F, (e - s) * P)
            dw_parts[part] += np.matmul(cols, d2.T, out=product)
            if need_dx:
                # also into scratch memory: the "cols" slot, free again (recomputed
                # columns are used up; kept ones never used it)
                spare = _buffer(K * (e - s) * P, x.dtype).reshape(K, (e - s) * P)
                dcols = np.matmul(w2.T, d2, out=spare)
                kernels.col2im(dcols, (e - s, C, H, W), KH, KW, stride, padding, out=dx[s:e])

    threads.map_concurrently(run, range(parts))
    db = db_parts.sum(axis=0) if need_db else None
    if wino:
        with threads.blas_threads(1):  # (no spinning BLAS thread in the next layer's map)
            return dx, kernels.winograd_weight_grad(dw_parts, m), db
    return dx, np.ascontiguousarray(dw_parts.sum(axis=0).T).reshape(w.shape), db


def _winograd_backward(x: np.ndarray, dout: np.ndarray, padding: int, m: int,
                       U: np.ndarray | None, m_dx: int, dx: np.ndarray | None,
                       dU: np.ndarray) -> None:
    """One chunk's gradients of a Winograd convolution with m x m output tiles
    (``kernels/winograd.py``): the weight gradient's transform dU (A2, F, C) = sum over
    tiles of Y^T V, written into dU, and, when U (the flipped filters' transform for
    m_dx x m_dx tiles, (A2', F, C)) is given, dx = the Winograd convolution of dout with
    padding 2 - ``padding`` (a "full" convolution for a "valid" one), written into dx.
    x (n, C, H, W), dout (n, F, OH, OW)."""
    n, C, H, W = x.shape
    F, OH, OW = dout.shape[1:]
    A2 = (m + 2) ** 2
    nT = n * kernels.winograd.tile_count(OH, OW, m)  # tiles of the output
    V = _buffer(A2 * nT * C, x.dtype).reshape(A2, nT, C)
    kernels.winograd_input(x, V, padding, m)
    Y = _buffer(A2 * nT * F, x.dtype, "gemm").reshape(A2, nT, F)
    kernels.winograd_grad_output(dout, Y, m)
    np.matmul(Y.transpose(0, 2, 1), V, out=dU)
    if U is not None:  # V and Y are used up: their scratch slots take dout's tiles and M
        A2 = (m_dx + 2) ** 2
        nT = n * kernels.winograd.tile_count(H, W, m_dx)  # tiles of dx
        V = _buffer(A2 * nT * F, x.dtype).reshape(A2, nT, F)
        kernels.winograd_input(dout, V, 2 - padding, m_dx)
        M = _buffer(A2 * nT * C, x.dtype, "gemm").reshape(A2, nT, C)
        np.matmul(V, U, out=M)
        kernels.winograd_output(M, None, dx, m=m_dx)
