"""im2col / col2im: unrolling convolution windows into the columns of a matrix.

Layout used everywhere in minicnn (the one the GEMM in ``functional.conv`` wants):

    x     : (N, C, H, W)                       input batch, NCHW
    cols  : (C*KH*KW, N*OH*OW)                 one column per output pixel
            row    k = (c*KH + kh)*KW + kw     which input value of the window
            column j = (n*OH + oh)*OW + ow     which output pixel

with the output size (written out once, here):

    OH = (H + 2*padding - KH) // stride + 1
    OW = (W + 2*padding - KW) // stride + 1

so that a convolution is one matrix product: ``W.reshape(F, C*KH*KW) @ cols``.
``col2im`` is the adjoint (transpose) of ``im2col``: it scatters-and-adds columns back
into an image, which is exactly what the backward pass needs. The adjoint identity
``<im2col(x), y> == <x, col2im(y)>`` is tested in ``tests/test_kernels.py``.

Two tiers live here: ``*_naive`` loops that read like the definition, and ``*_numpy``
versions built on a strided view. The Numba tier is in ``numba_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window sweep along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def output_hw(H: int, W: int, KH: int, KW: int, stride: int, padding: int) -> tuple[int, int]:
    OH = conv_output_size(H, KH, stride, padding)
    OW = conv_output_size(W, KW, stride, padding)
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"window {KH}x{KW} (stride {stride}, padding {padding}) does not fit "
            f"an input of size {H}x{W}"
        )
    return OH, OW


# --------------------------------------------------------------------------- naive tier
def im2col_naive(x: np.ndarray, KH: int, KW: int, stride: int, padding: int) -> np.ndarray:
    """Reference im2col: x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW). Loops only."""
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    cols = np.zeros((C * KH * KW, N * OH * OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    k = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        for ow in range(OW):
                            h = oh * stride + kh - padding
                            w = ow * stride + kw - padding
                            if 0 <= h < H and 0 <= w < W:
                                cols[k, (n * OH + oh) * OW + ow] = x[n, c, h, w]
    return cols


def col2im_naive(
    cols: np.ndarray, x_shape: tuple[int, int, int, int], KH: int, KW: int, stride: int,
    padding: int,
) -> np.ndarray:
    """Reference col2im: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), adding overlaps."""
    N, C, H, W = x_shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    k = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        for ow in range(OW):
                            h = oh * stride + kh - padding
                            w = ow * stride + kw - padding
                            if 0 <= h < H and 0 <= w < W:
                                dx[n, c, h, w] += cols[k, (n * OH + oh) * OW + ow]
    return dx


# --------------------------------------------------------------------------- NumPy tier
def _window_view(xp: np.ndarray, KH: int, KW: int, stride: int, OH: int, OW: int) -> np.ndarray:
    """Read-only view v[c, kh, kw, n, oh, ow] = xp[n, c, oh*stride + kh, ow*stride + kw]."""
    N, C, _, _ = xp.shape
    sN, sC, sH, sW = xp.strides
    return as_strided(
        xp,
        shape=(C, KH, KW, N, OH, OW),
        strides=(sC, sH, sW, sN, sH * stride, sW * stride),
        writeable=False,
    )


def im2col_numpy(x: np.ndarray, KH: int, KW: int, stride: int, padding: int) -> np.ndarray:
    """Vectorised im2col: one strided view of the padded input, then one copy."""
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    view = _window_view(xp, KH, KW, stride, OH, OW)
    return np.ascontiguousarray(view).reshape(C * KH * KW, N * OH * OW)


def col2im_numpy(
    cols: np.ndarray, x_shape: tuple[int, int, int, int], KH: int, KW: int, stride: int,
    padding: int,
) -> np.ndarray:
    """Vectorised col2im: KH*KW strided slice-adds into a padded buffer, then crop."""
    N, C, H, W = x_shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    p = padding
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    c6 = cols.reshape(C, KH, KW, N, OH, OW)
    for kh in range(KH):
        for kw in range(KW):
            # (C, N, OH, OW) -> (N, C, OH, OW); overlapping windows add up.
            dxp[:, :, kh : kh + stride * OH : stride, kw : kw + stride * OW : stride] += c6[
                :, kh, kw
            ].transpose(1, 0, 2, 3)
    return dxp[:, :, p : p + H, p : p + W] if p else dxp
