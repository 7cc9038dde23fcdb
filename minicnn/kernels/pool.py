"""Max-pooling kernels: naive loops and NumPy. The Numba tier is in ``numba_kernels.py``.

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
