"""Max-pooling kernels in three tiers: naive loops, NumPy (a strided window view) and Numba.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW) with ``OH = (H - KH) // stride + 1`` (no
padding; trailing rows/columns that do not fill a window are dropped, as in PyTorch).

Forward also returns ``argmax``: an int32 array (N, C, OH, OW) holding, for every output,
the flat index ``h*W + w`` of the winning input inside its (H, W) plane. Backward routes
each upstream gradient to exactly that position.

Ties go to the FIRST maximum in row-major window order (kh, then kw), like ``np.argmax``.
A numerical gradient check at a tie is meaningless, so tests draw unique values.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minicnn.kernels import dispatch
from minicnn.kernels._numba import parallel_njit, prange, uint64
from minicnn.kernels.im2col import output_hw


def maxpool_forward_naive(
    x: np.ndarray, KH: int, KW: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, 0)
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int32)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, best_idx = -np.inf, -1
                    for kh in range(KH):
                        for kw in range(KW):
                            h, w = oh * stride + kh, ow * stride + kw
                            if x[n, c, h, w] > best or best_idx < 0:  # strict: first max wins
                                best, best_idx = x[n, c, h, w], h * W + w
                    out[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = best_idx
    return out, argmax


def maxpool_backward_naive(
    dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int]
) -> np.ndarray:
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    _, _, OH, OW = dout.shape
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    idx = argmax[n, c, oh, ow]
                    dx[n, c, idx // W, idx % W] += dout[n, c, oh, ow]
    return dx


def maxpool_forward_numpy(
    x: np.ndarray, KH: int, KW: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, 0)
    sN, sC, sH, sW = x.strides
    # windows[n, c, oh, ow, kh, kw] = x[n, c, oh*stride + kh, ow*stride + kw]
    windows = as_strided(
        x, shape=(N, C, OH, OW, KH, KW),
        strides=(sN, sC, sH * stride, sW * stride, sH, sW), writeable=False,
    ).reshape(N, C, OH, OW, KH * KW)
    a = windows.argmax(axis=-1)  # first maximum on ties
    out = np.take_along_axis(windows, a[..., None], axis=-1)[..., 0]
    kh, kw = np.divmod(a, KW)
    oh = np.arange(OH).reshape(1, 1, OH, 1)
    ow = np.arange(OW).reshape(1, 1, 1, OW)
    argmax = ((oh * stride + kh) * W + (ow * stride + kw)).astype(np.int32)
    return out, argmax


def maxpool_backward_numpy(
    dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int]
) -> np.ndarray:
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=dout.dtype)
    rows = np.arange(N * C).reshape(N * C, 1)
    # add.at, not fancy assignment: overlapping windows (stride < kernel) can pick the
    # same input twice and both gradients must be added.
    np.add.at(dx, (rows, argmax.reshape(N * C, -1)), dout.reshape(N * C, -1))
    return dx.reshape(x_shape)


@parallel_njit(nogil=True, cache=True)
def maxpool_forward_numba(x, KH, KW, stride, OH, OW):
    """The numpy tier's contract; one thread per (n, c) plane."""
    N, C, H, W = x.shape
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int32)
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = x[n, c]
        o = out[n, c]
        a = argmax[n, c]
        if KH == 2 and KW == 2 and stride == 2:
            # the common case, unrolled: two input rows per output row, four candidates
            # compared in window order (strict >: the first maximum wins ties); unsigned
            # flat indices, as in im2col (faster than plane[h, w] indexing)
            # (Mixing uint64 and int64 in arithmetic gives float64 in Numba, hence the
            # casts of every operand.)
            xf = plane.reshape(H * W)
            of = o.reshape(OH * OW)
            af = a.reshape(OH * OW)
            one, two, w = uint64(1), uint64(2), uint64(W)
            for oh in range(OH):
                top = uint64(2 * oh * W)  # flat index of the first window's top-left
                row = uint64(oh * OW)
                for ow in range(uint64(OW)):
                    i = top + two * ow
                    best, idx = xf[i], i
                    if xf[i + one] > best:
                        best, idx = xf[i + one], i + one
                    if xf[i + w] > best:
                        best, idx = xf[i + w], i + w
                    if xf[i + w + one] > best:
                        best, idx = xf[i + w + one], i + w + one
                    of[row + ow] = best
                    af[row + ow] = idx
            continue
        for oh in range(OH):
            for ow in range(OW):
                h0 = oh * stride
                w0 = ow * stride
                best = plane[h0, w0]
                best_idx = h0 * W + w0
                for kh in range(KH):
                    for kw in range(KW):
                        v = plane[h0 + kh, w0 + kw]
                        if v > best:  # strict: the first maximum wins ties
                            best = v
                            best_idx = (h0 + kh) * W + (w0 + kw)
                o[oh, ow] = best
                a[oh, ow] = best_idx
    return out, argmax


@parallel_njit(nogil=True, cache=True)
def maxpool_backward_numba(dout, argmax, H, W):
    """The numpy tier's contract; one thread per (n, c) plane."""
    N, C, OH, OW = dout.shape
    # np.empty, not np.zeros: each thread zeroes its own planes just before scattering into
    # them, so that memory is written while it is in this core's cache, not in a separate
    # pass over the whole (N, C, H, W) array first
    dx = np.empty((N, C, H * W), dtype=dout.dtype)
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = dx[n, c]
        plane[:] = 0
        g = dout[n, c]
        a = argmax[n, c]
        for oh in range(OH):
            for ow in range(OW):
                plane[a[oh, ow]] += g[oh, ow]
    return dx.reshape(N, C, H, W)


def maxpool_forward(x: np.ndarray, KH: int, KW: int, stride: int,
                    tier: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (out (N, C, OH, OW), argmax int32 (N, C, OH, OW))."""
    name = dispatch.resolve(tier)
    if name == "naive":
        return maxpool_forward_naive(x, KH, KW, stride)
    if name == "numpy":
        return maxpool_forward_numpy(x, KH, KW, stride)
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, 0)
    return dispatch.run(maxpool_forward_numba, x.nbytes, np.ascontiguousarray(x), KH, KW,
                        stride, OH, OW)


def maxpool_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int],
                     tier: str | None = None) -> np.ndarray:
    """Route dout (N, C, OH, OW) to the argmax positions: dx (N, C, H, W)."""
    name = dispatch.resolve(tier)
    if name == "naive":
        return maxpool_backward_naive(dout, argmax, x_shape)
    if name == "numpy":
        return maxpool_backward_numpy(dout, argmax, x_shape)
    dx_bytes = int(np.prod(x_shape)) * dout.itemsize
    return dispatch.run(maxpool_backward_numba, dx_bytes, np.ascontiguousarray(dout), argmax,
                        x_shape[2], x_shape[3])
