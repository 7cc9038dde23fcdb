"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 convolution (stride 1) with 2.25x fewer
multiplications (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).

A 3x3 convolution computes each 2x2 block of output pixels from the 4x4 input tile under
it: 36 multiplies per (input channel, output channel) pair. Winograd's algorithm
computes the same 2x2 block with 16, as

    Y = A^T [ (G g G^T) * (B^T d B) ] A            (* is elementwise)

for a 3x3 filter g and a 4x4 input tile d, with the fixed matrices below. Summed over
the input channels c, the elementwise products become 16 independent matrix products,
one per position xi = (a, b) of the 4x4 transformed tile:

    U[xi]  = (G g G^T)[xi]  for every (c, f)      (16, C, F)   weights, once per call
    V[xi]  = (B^T d B)[xi]  for every (tile, c)    (16, T, C)   input transform
    M[xi]  = V[xi] @ U[xi]                         (16, T, F)   16 GEMMs
    out    = A^T M A        for every (tile, f)                 output transform

The weight gradient follows by the chain rule through the same formula (the transposed
algorithm, Lavin & Gray's F(3x3, 2x2)): with dY the 2x2 block of dL/dout of a tile,

    dU[xi] = sum over tiles of  (A dY A^T)[xi] * V[xi]     as GEMMs: Y[xi]^T @ V[xi]
    dw     = G^T dU G           for every (f, c)

so dw costs 16 multiplies per tile and (f, c) pair too, against 36 with im2col.

T is the number of 2x2 output tiles, n * ceil(OH/2) * ceil(OW/2) for n images and an
OH x OW output; an odd OH or OW gets a last row or column of tiles that reads zeros and
whose extra outputs are dropped. Tile (i, j) reads the input, zero-padded by the
convolution's padding, from padded pixel (2i, 2j) on.

Why channels last in V and M: the transforms then run along a tile's channels, a long
unit-stride loop that vectorises, instead of along a row of 3-12 tiles (a 6x6 to 24x24
map). With tiles innermost instead, the Numba transforms ran at about 4 GB/s and cost as
much as the GEMMs save; channels last, they take a tenth of the GEMMs' time.

This file is the readable NumPy tier (tiles as a strided view, the transforms as
einsums); ``numba_kernels.winograd_input``, ``winograd_output`` and
``winograd_grad_output`` are the compiled ones, and ``functional.conv`` uses them for 3x3
convolutions with stride 1 and padding 1 or 0 (and 2, for a padding-0 one's dx).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def tiles_hw(H: int, W: int) -> tuple[int, int]:
    """Rows and columns of 2x2 output tiles covering an H x W output."""
    return (H + 1) // 2, (W + 1) // 2


def tile_count(H: int, W: int) -> int:
    """How many 2x2 output tiles cover an H x W output (per image)."""
    TH, TW = tiles_hw(H, W)
    return TH * TW


# vec(G g G^T) = (G kron G) vec(g): the weight transform of all F*C filters as one GEMM
GG = np.kron(G, G)  # (16, 9); row xi = 4*a + b, column 3*k + l


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """w (F, C, 3, 3) -> U (16, C, F) = G w G^T for every filter, position xi = 4*a + b
    first, then input channel, output channel: the layout of the right-hand side of
    V[xi] @ U[xi]. (OpenBLAS ran these 16 GEMMs 1.05-1.45x as fast with U stored so than
    as the transposed view of a (16, F, C) array: one core, the default model's shapes.)"""
    F, C = w.shape[:2]
    taps = w.transpose(1, 0, 2, 3).reshape(C * F, 9)  # (c, f) order
    return (GG.astype(w.dtype) @ taps.T).reshape(16, C, F)


def winograd_input_numpy(x: np.ndarray, padding: int = 1) -> np.ndarray:
    """x (n, C, H, W) -> V (16, n*TH*TW, C): B^T d B for every 4x4 tile d of x padded by
    ``padding`` (tile (i, j) starts at padded pixel (2i, 2j)), the tiles covering the
    output, (H + 2*padding - 2) x (W + 2*padding - 2); tiles ordered (image, tile row,
    tile column)."""
    n, C, H, W = x.shape
    TH, TW = tiles_hw(H + 2 * padding - 2, W + 2 * padding - 2)
    padded = np.zeros((n, C, 2 * TH + 2, 2 * TW + 2), dtype=x.dtype)
    h, w = min(H, 2 * TH + 2 - padding), min(W, 2 * TW + 2 - padding)  # what the tiles reach
    padded[:, :, padding:padding + h, padding:padding + w] = x[:, :, :h, :w]
    s = padded.strides
    d = as_strided(padded, (n, C, TH, TW, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]))
    v = np.einsum("ar,ncijrq,bq->abnijc", BT, d, BT)  # (4, 4, n, TH, TW, C)
    return np.ascontiguousarray(v.reshape(16, n * TH * TW, C).astype(x.dtype))


def winograd_grad_output_numpy(dout: np.ndarray) -> np.ndarray:
    """dout (n, F, H, W) -> Y (16, n*TH*TW, F): A dY A^T for every tile's 2x2 block dY of
    dout (zeros past an odd last row or column), the weight gradient's transform of dout."""
    n, F, H, W = dout.shape
    TH, TW = tiles_hw(H, W)
    padded = np.zeros((n, F, 2 * TH, 2 * TW), dtype=dout.dtype)
    padded[:, :, :H, :W] = dout
    dy = padded.reshape(n, F, TH, 2, TW, 2)
    y = np.einsum("ar,nfirjq,bq->abnijf", AT.T, dy, AT.T)  # (4, 4, n, TH, TW, F)
    return np.ascontiguousarray(y.reshape(16, n * TH * TW, F).astype(dout.dtype))


def winograd_weight_grad(dU: np.ndarray) -> np.ndarray:
    """dU (16, F, C) -> dw (F, C, 3, 3) = G^T dU G for every (f, c)."""
    _, F, C = dU.shape
    dw = GG.T.astype(dU.dtype) @ dU.reshape(16, F * C)  # (9, F*C)
    return np.ascontiguousarray(dw.T).reshape(F, C, 3, 3)


def winograd_output_numpy(M: np.ndarray, bias: np.ndarray | None, relu: bool,
                          out: np.ndarray) -> np.ndarray:
    """M (16, n*TH*TW, F) -> out (n, F, H, W) = A^T m A per tile (+ bias (F,), then
    max(., 0) if ``relu``), written into ``out``."""
    n, F, H, W = out.shape
    TH, TW = tiles_hw(H, W)
    m = M.reshape(4, 4, n, TH, TW, F)
    y = np.einsum("ra,abnijf,qb->nfirjq", AT, m, AT)   # (n, F, TH, 2, TW, 2)
    y = y.reshape(n, F, 2 * TH, 2 * TW)[:, :, :H, :W]
    if bias is not None:
        y = y + bias.reshape(1, F, 1, 1)
    if relu:
        y = np.maximum(y, 0)
    out[...] = y
    return out
