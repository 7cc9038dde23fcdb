"""Winograd's minimal filtering F(m x m, 3x3): a 3x3 convolution (stride 1) with 2.25x
(m = 2), 3.24x (m = 3) or 4x (m = 4) fewer multiplications (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016).

A 3x3 convolution computes each m x m block of output pixels from the alpha x alpha input
tile under it (alpha = m + 2): 9*m^2 multiplies per (input channel, output channel) pair,
36, 81 or 144. Winograd's algorithm computes the same block with alpha^2, 16, 25 or 36,
as

    Y = A^T [ (G g G^T) * (B^T d B) ] A            (* is elementwise)

for a 3x3 filter g and an alpha x alpha input tile d, with the fixed matrices below.
Summed over the input channels c, the elementwise products become alpha^2 independent
matrix products, one per position xi = (a, b) of the transformed tile:

    U[xi]  = (G g G^T)[xi]  for every (c, f)      (alpha^2, C, F)   weights, once per call
    V[xi]  = (B^T d B)[xi]  for every (tile, c)    (alpha^2, T, C)   input transform
    M[xi]  = V[xi] @ U[xi]                         (alpha^2, T, F)   the GEMMs
    out    = A^T M A        for every (tile, f)                      output transform

The weight gradient follows by the chain rule through the same formula (the transposed
algorithm, Lavin & Gray's F(3x3, m x m)): with dY the m x m block of dL/dout of a tile,

    dU[xi] = sum over tiles of  (A dY A^T)[xi] * V[xi]     as GEMMs: Y[xi]^T @ V[xi]
    dw     = G^T dU G           for every (f, c)

so dw saves the same share of multiplies.

Which m: larger tiles save more multiplies on maps that are a whole number of tiles, and
their transforms move less data per output pixel (alpha^2 / m^2 values: 4, 2.8, 2.25),
but they take more adds, a map that is no multiple of m wastes the outputs of its last
tiles (a 6x6 map: 28 of F(4x4)'s 64), and their rounding error grows: of the output's
largest value in float32, 4e-7 for F(2x2, 3x3), 3-6e-6 for F(3x3, 3x3) and 7e-6 to
1.2e-5 for F(4x4, 3x3), against 6e-7 for im2col (in float64: 2-4e-15, 6e-15 to 1.1e-14,
1.7-2.5e-14 and 2-4e-15), far below what training notices. ``functional.conv
.winograd_tile`` picks m per layer.

T is the number of m x m output tiles, n * ceil(OH/m) * ceil(OW/m) for n images and an
OH x OW output; if m does not divide OH or OW, the last row or column of tiles reads
zeros and its extra outputs are dropped. Tile (i, j) reads the input, zero-padded by the
convolution's padding, from padded pixel (m*i, m*j) on.

Why channels last in V and M: the transforms then run along a tile's channels, a long
unit-stride loop that vectorises, instead of along a row of 3-12 tiles (a 6x6 to 24x24
map). With tiles innermost instead, the Numba transforms ran at about 4 GB/s and cost as
much as the GEMMs save. Channels last, a chunk's forward transforms (input and output)
take 0.2-0.6x its GEMMs' time with F(2x2, 3x3), and 0.25-2x with the larger tiles, whose
GEMMs are smaller: on the default model's 24x24 layers with F(4x4, 3x3) the transforms
now cost more than the GEMMs (one core, 2026-12-02). They are the next thing to speed up.

This file is the readable NumPy tier (tiles as a strided view, the transforms as
einsums); ``numba_kernels.winograd_input``, ``winograd_output`` and
``winograd_grad_output`` are the compiled ones, and ``functional.conv`` uses them for 3x3
convolutions with stride 1 and padding 1 or 0 (and 2, for a padding-0 one's dx).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

# F(2x2, 3x3): interpolation points 0, 1, -1 and infinity
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

# F(4x4, 3x3): points 0, 1, -1, 2, -2 and infinity (Lavin & Gray's)
BT4 = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G4 = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)
AT4 = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)

# F(3x3, 3x3): points 0, 1, -1, 2 and infinity (B^T solved from A^T and G, which the
# points give, so that the formula is the exact 3x3 correlation)
BT3 = np.array([[2, -1, -2, 1, 0],
                [0, -2, -1, 1, 0],
                [0, 2, -3, 1, 0],
                [0, -1, 0, 1, 0],
                [0, 2, -1, -2, 1]], dtype=np.float64)
G3 = np.array([[1 / 2, 0, 0],
               [-1 / 2, -1 / 2, -1 / 2],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 6, 1 / 3, 2 / 3],
               [0, 0, 1]], dtype=np.float64)
AT3 = np.array([[1, 1, 1, 1, 0],
                [0, 1, -1, 2, 0],
                [0, 1, 1, 4, 1]], dtype=np.float64)

# (B^T, G, A^T) by output tile size m; a tile of the input is alpha = m + 2 pixels wide
MATRICES = {2: (BT, G, AT), 3: (BT3, G3, AT3), 4: (BT4, G4, AT4)}


def tiles_hw(H: int, W: int, m: int = 2) -> tuple[int, int]:
    """Rows and columns of m x m output tiles covering an H x W output."""
    return -(-H // m), -(-W // m)


def tile_count(H: int, W: int, m: int = 2) -> int:
    """How many m x m output tiles cover an H x W output (per image)."""
    TH, TW = tiles_hw(H, W, m)
    return TH * TW


def filter_transform(m: int) -> np.ndarray:
    """G kron G, (alpha^2, 9): vec(G g G^T) = (G kron G) vec(g) for a 3x3 filter g, so the
    weight transform of all filters is one matrix product; row xi = alpha*a + b, column
    3*k + l."""
    g = MATRICES[m][1]
    return np.kron(g, g)


def winograd_weights(w: np.ndarray, m: int = 2) -> np.ndarray:
    """w (F, C, 3, 3) -> U (alpha^2, C, F) = G w G^T for every filter, position
    xi = alpha*a + b first, then input channel, output channel: the layout of the
    right-hand side of V[xi] @ U[xi]. (OpenBLAS ran these GEMMs 1.07-1.46x as fast with U
    stored so than as the transposed view of an (alpha^2, F, C) array: one core, the
    default model's shapes.) One GEMM with ``filter_transform(m)``."""
    F, C = w.shape[:2]
    taps = w.transpose(1, 0, 2, 3).reshape(C * F, 9)  # (c, f) order
    return (filter_transform(m).astype(w.dtype) @ taps.T).reshape(-1, C, F)


def winograd_input_numpy(x: np.ndarray, padding: int = 1, m: int = 2) -> np.ndarray:
    """x (n, C, H, W) -> V (alpha^2, n*TH*TW, C): B^T d B for every alpha x alpha tile d
    of x padded by ``padding`` (tile (i, j) starts at padded pixel (m*i, m*j)), the tiles
    covering the output, (H + 2*padding - 2) x (W + 2*padding - 2); tiles ordered (image,
    tile row, tile column)."""
    n, C, H, W = x.shape
    bt = MATRICES[m][0]
    A = m + 2
    TH, TW = tiles_hw(H + 2 * padding - 2, W + 2 * padding - 2, m)
    padded = np.zeros((n, C, m * TH + 2, m * TW + 2), dtype=x.dtype)
    h, w = min(H, m * TH + 2 - padding), min(W, m * TW + 2 - padding)  # what tiles reach
    padded[:, :, padding:padding + h, padding:padding + w] = x[:, :, :h, :w]
    s = padded.strides
    d = as_strided(padded, (n, C, TH, TW, A, A), (s[0], s[1], m * s[2], m * s[3], s[2], s[3]))
    v = np.einsum("ar,ncijrq,bq->abnijc", bt, d, bt)  # (A, A, n, TH, TW, C)
    return np.ascontiguousarray(v.reshape(A * A, n * TH * TW, C).astype(x.dtype))


def winograd_grad_output_numpy(dout: np.ndarray, m: int = 2) -> np.ndarray:
    """dout (n, F, H, W) -> Y (alpha^2, n*TH*TW, F): A dY A^T for every tile's m x m block
    dY of dout (zeros past the last whole tile), the weight gradient's transform of dout."""
    n, F, H, W = dout.shape
    a = MATRICES[m][2].T
    TH, TW = tiles_hw(H, W, m)
    padded = np.zeros((n, F, m * TH, m * TW), dtype=dout.dtype)
    padded[:, :, :H, :W] = dout
    dy = padded.reshape(n, F, TH, m, TW, m)
    y = np.einsum("ar,nfirjq,bq->abnijf", a, dy, a)  # (A, A, n, TH, TW, F)
    return np.ascontiguousarray(y.reshape((m + 2) ** 2, n * TH * TW, F).astype(dout.dtype))


def winograd_weight_grad(dU: np.ndarray, m: int = 2) -> np.ndarray:
    """dU (alpha^2, F, C) -> dw (F, C, 3, 3) = G^T dU G for every (f, c)."""
    A2, F, C = dU.shape
    dw = filter_transform(m).T.astype(dU.dtype) @ dU.reshape(A2, F * C)  # (9, F*C)
    return np.ascontiguousarray(dw.T).reshape(F, C, 3, 3)


def winograd_output_numpy(M: np.ndarray, bias: np.ndarray | None, relu: bool,
                          out: np.ndarray, m: int = 2) -> np.ndarray:
    """M (alpha^2, n*TH*TW, F) -> out (n, F, H, W) = A^T M_tile A per tile (+ bias (F,),
    then max(., 0) if ``relu``), written into ``out``."""
    n, F, H, W = out.shape
    at = MATRICES[m][2]
    TH, TW = tiles_hw(H, W, m)
    tiles = M.reshape(m + 2, m + 2, n, TH, TW, F)
    y = np.einsum("ra,abnijf,qb->nfirjq", at, tiles, at)   # (n, F, TH, m, TW, m)
    y = y.reshape(n, F, m * TH, m * TW)[:, :, :H, :W]
    if bias is not None:
        y = y + bias.reshape(1, F, 1, 1)
    if relu:
        y = np.maximum(y, 0)
    out[...] = y
    return out
