"""Winograd's minimal filtering F(m x m, 3x3): a 3x3 convolution (stride 1) with 2.25x
(m = 2), 3.24x (m = 3) or 4x (m = 4) fewer multiplications (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016).

A 3x3 convolution computes each m x m block of output pixels from the alpha x alpha input
tile under it (alpha = m + 2): 9*m^2 multiplies per (input channel, output channel) pair,
36, 81 or 144. Winograd's algorithm computes the same block with alpha^2, 16, 25 or 36,
as

    out = A^T [ (G g G^T) * (B^T d B) ] A          (* is elementwise)

for a 3x3 filter g and an alpha x alpha input tile d, with the fixed matrices below.
Summed over the input channels c, the elementwise products become alpha^2 independent
matrix products, one per position xi = (a, b) of the transformed tile:

    U[xi]  = (G g G^T)[xi]  for every (c, f)      (alpha^2, C, F)   weights, once per call
    V[xi]  = (B^T d B)[xi]  for every (tile, c)    (alpha^2, T, C)   input transform
    M[xi]  = V[xi] @ U[xi]                         (alpha^2, T, F)   the GEMMs
    out    = A^T M A        for every (tile, f)                      output transform

The gradients follow by the chain rule through out = A^T M A (the transposed algorithm,
Lavin & Gray's F(3x3, m x m)). With dY the m x m block of dL/dout over a tile:

    dM[xi] = (A dY A^T)[xi]  for every (tile, f)   (alpha^2, T, F)   dout's transform, once
    dU[xi] = sum over tiles of dM[xi]^T @ V[xi]    (alpha^2, F, C)   GEMMs
    dw     = G^T dU G        for every (f, c)
    dV[xi] = dM[xi] @ U[xi]^T                      (alpha^2, T, C)   the GEMMs transposed
    dx     = B dV B^T        for every tile, added up where the tiles overlap

so dw saves the same share of multiplies, and dx is the transpose of the input transform
(``winograd_input_grad``).

Which m: larger tiles save more multiplies on maps that are a whole number of tiles, and
their transforms move less data per output pixel (alpha^2 / m^2 values: 4, 2.8, 2.25),
but they take more adds, a map that is no multiple of m wastes the outputs of its last
tiles (a 6x6 map: 28 of F(4x4)'s 64), and their rounding error grows with m, though it
stays far below what training notices (the figures are in benchmarks/README.md).
``engine.algorithm`` picks m per layer.

T is the number of m x m output tiles, n * ceil(OH/m) * ceil(OW/m) for n images and an
OH x OW output; if m does not divide OH or OW, the last row or column of tiles reads
zeros and its extra outputs are dropped. Tile (i, j) reads the input, zero-padded by the
convolution's padding, from padded pixel (m*i, m*j) on.

Why channels last in V and M: the transforms then run along a tile's channels, a long
unit-stride loop that vectorises, instead of along a row of 3-12 tiles (a 6x6 to 24x24
map). What they cost next to the GEMMs is in benchmarks/README.md ("Performance chapter").

Three tiers live here: the naive one (``winograd_conv2d_naive``: the whole convolution,
tile by tile, in loops that follow the formula above; read it first), the NumPy one (tiles
as a strided view, the transforms as einsums, split into the steps the engine runs) and
the Numba one (``*_numba``); the public functions at the end pick NumPy or Numba.
``minicnn.engine`` uses them for 3x3 convolutions with stride 1 and padding 1 or 0.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minicnn.kernels import dispatch
from minicnn.kernels._numba import njit, parallel_njit, prange

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


# --------------------------------------------------------------------------- naive tier
def winograd_conv2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                          padding: int = 1, m: int = 2) -> np.ndarray:
    """The 3x3 convolution (stride 1) of x (N, C, H, W) with w (F, C, 3, 3) and bias b (F,)
    or None, as Winograd's F(m x m, 3x3): for every image, m x m output tile and filter,
    out = A^T [ sum over c of (G g G^T) * (B^T d B) ] A. Returns (N, F, OH, OW), OH = H +
    2*padding - 2, the same as ``functional.conv2d_forward`` up to rounding. Loops only."""
    bt, g, at = MATRICES[m]
    alpha = m + 2
    N, C, H, W = x.shape
    F = w.shape[0]
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    TH, TW = tiles_hw(OH, OW, m)
    # zero-padded by the convolution's padding, and at the bottom and right to whole tiles
    xp = np.zeros((N, C, m * TH + 2, m * TW + 2))
    xp[:, :, padding:padding + H, padding:padding + W] = x
    U = [[g @ w[f, c] @ g.T for c in range(C)] for f in range(F)]  # alpha x alpha each
    out = np.zeros((N, F, m * TH, m * TW))
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                d = xp[n, :, m * i:m * i + alpha, m * j:m * j + alpha]  # (C, alpha, alpha)
                V = [bt @ d[c] @ bt.T for c in range(C)]
                for f in range(F):
                    M = sum(U[f][c] * V[c] for c in range(C))  # elementwise products
                    out[n, f, m * i:m * i + m, m * j:m * j + m] = at @ M @ at.T
    out = out[:, :, :OH, :OW]  # the last tiles' outputs past the map are dropped
    if b is not None:
        out += b[None, :, None, None]
    return out.astype(x.dtype)


# --------------------------------------------------------------------------- NumPy tier
def filter_transform(m: int) -> np.ndarray:
    """G kron G, (alpha^2, 9): vec(G g G^T) = (G kron G) vec(g) for a 3x3 filter g, so the
    weight transform of all filters is one matrix product; row xi = alpha*a + b, column
    3*k + l."""
    g = MATRICES[m][1]
    return np.kron(g, g)


def winograd_weights_numpy(w: np.ndarray, m: int = 2) -> np.ndarray:
    """w (F, C, 3, 3) -> U (alpha^2, C, F) = G w G^T for every filter, position
    xi = alpha*a + b first, then input channel, output channel: the layout of the
    right-hand side of V[xi] @ U[xi] (OpenBLAS runs those GEMMs faster with U stored so
    than as a transposed view). One GEMM with ``filter_transform(m)``."""
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


def winograd_input_grad_numpy(dV: np.ndarray, x_shape: tuple[int, ...], padding: int = 1,
                               m: int = 2) -> np.ndarray:
    """dV (alpha^2, n*TH*TW, C) -> dx (n, C, H, W): the gradient of ``winograd_input``, its
    transpose. Each tile's B dV B^T is added into the padded input where the tile lies
    (neighbouring tiles overlap by two pixels, so their sums meet there), then the padding
    is cut off."""
    n, C, H, W = x_shape
    bt = MATRICES[m][0]
    A = m + 2
    TH, TW = tiles_hw(H + 2 * padding - 2, W + 2 * padding - 2, m)
    v = dV.reshape(A, A, n, TH, TW, C)
    d = np.einsum("ar,abnijc,bq->ncijrq", bt, v, bt)  # (n, C, TH, TW, A, A)
    padded = np.zeros((n, C, m * TH + 2, m * TW + 2), dtype=np.result_type(dV, np.float32))
    for r in range(A):
        for q in range(A):
            padded[:, :, r:r + m * TH:m, q:q + m * TW:m] += d[..., r, q]
    dx = np.zeros(x_shape, dtype=dV.dtype)
    h, w = min(H, m * TH + 2 - padding), min(W, m * TW + 2 - padding)  # what tiles reach
    dx[:, :, :h, :w] = padded[:, :, padding:padding + h, padding:padding + w]
    return dx


def winograd_grad_output_numpy(dout: np.ndarray, m: int = 2) -> np.ndarray:
    """dout (n, F, H, W) -> dM (alpha^2, n*TH*TW, F): A dY A^T for every tile's m x m block
    dY of dout (zeros past the last whole tile), the weight gradient's transform of dout."""
    n, F, H, W = dout.shape
    a = MATRICES[m][2].T
    TH, TW = tiles_hw(H, W, m)
    padded = np.zeros((n, F, m * TH, m * TW), dtype=dout.dtype)
    padded[:, :, :H, :W] = dout
    dy = padded.reshape(n, F, TH, m, TW, m)
    dm = np.einsum("ar,nfirjq,bq->abnijf", a, dy, a)  # (A, A, n, TH, TW, F)
    return np.ascontiguousarray(dm.reshape((m + 2) ** 2, n * TH * TW, F).astype(dout.dtype))


def winograd_weight_grad_numpy(dU: np.ndarray, m: int = 2) -> np.ndarray:
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


# Numba tier. The tile transforms are serial: the engine runs them inside its
# batch-parallel threads. Each 2-D transform of a tile is a 1-D one down its columns,
# then along its rows. A 1-D transform reads vectors src[p], src[p + ps], ... and writes
# dst[q], dst[q + qs], ...: rows of C-contiguous (rows, channels) arrays, so its loop
# along the channels has a unit stride that LLVM knows, and vectorises (strided 2-D views
# of a tile's rows, whose inner stride Numba only knows at run time, are slower). The
# constants are the rows of B^T, A^T and A.

@njit(nogil=True, cache=True)
def _to_channels_last(x, h_end, w_end, out, padding):
    """out[i, h + padding, w + padding, c] = x[i, c, h, w] for h < h_end, w < w_end.

    A transpose: one side of it is strided whatever the loop order. This one reads x in
    memory order, where a convolution's input usually comes from (a chunk of a batch far
    larger than the caches), and scatters into ``out``, which stays in cache."""
    n, C = x.shape[:2]
    for img in range(n):
        for c in range(C):
            for h in range(h_end):
                src = x[img, c, h]
                dst = out[img, h + padding]
                for w in range(w_end):
                    dst[w + padding, c] = src[w]


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _input_1d(m, src, p, ps, dst, q, qs):
    """B^T along one axis of a tile: alpha = m + 2 vectors in, alpha out."""
    if m == 2:
        for c in range(src.shape[1]):
            s0, s1, s2, s3 = src[p, c], src[p + ps, c], src[p + 2 * ps, c], src[p + 3 * ps, c]
            dst[q, c] = s0 - s2
            dst[q + qs, c] = s1 + s2
            dst[q + 2 * qs, c] = s2 - s1
            dst[q + 3 * qs, c] = s1 - s3
    elif m == 3:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4 = src[p + 3 * ps, c], src[p + 4 * ps, c]
            dst[q, c] = 2 * (s0 - s2) + s3 - s1
            dst[q + qs, c] = s3 - s2 - 2 * s1
            dst[q + 2 * qs, c] = 2 * s1 - 3 * s2 + s3
            dst[q + 3 * qs, c] = s3 - s1
            dst[q + 4 * qs, c] = 2 * (s1 - s3) + s4 - s2
    else:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4, s5 = src[p + 3 * ps, c], src[p + 4 * ps, c], src[p + 5 * ps, c]
            dst[q, c] = 4 * s0 - 5 * s2 + s4
            dst[q + qs, c] = s3 + s4 - 4 * (s1 + s2)
            dst[q + 2 * qs, c] = 4 * (s1 - s2) + s4 - s3
            dst[q + 3 * qs, c] = 2 * (s3 - s1) + s4 - s2
            dst[q + 4 * qs, c] = 2 * (s1 - s3) + s4 - s2
            dst[q + 5 * qs, c] = 4 * s1 - 5 * s3 + s5


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _output_1d(m, src, p, ps, dst, q, qs):
    """A^T along one axis: alpha vectors in, m out."""
    if m == 2:
        for c in range(src.shape[1]):
            s0, s1, s2, s3 = src[p, c], src[p + ps, c], src[p + 2 * ps, c], src[p + 3 * ps, c]
            dst[q, c] = s0 + s1 + s2
            dst[q + qs, c] = s1 - s2 - s3
    elif m == 3:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4 = src[p + 3 * ps, c], src[p + 4 * ps, c]
            a, b = s1 + s2, s1 - s2
            dst[q, c] = s0 + a + s3
            dst[q + qs, c] = b + 2 * s3
            dst[q + 2 * qs, c] = a + 4 * s3 + s4
    else:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4, s5 = src[p + 3 * ps, c], src[p + 4 * ps, c], src[p + 5 * ps, c]
            a, b, u, v = s1 + s2, s1 - s2, s3 + s4, s3 - s4
            dst[q, c] = s0 + a + u
            dst[q + qs, c] = b + 2 * v
            dst[q + 2 * qs, c] = a + 4 * u
            dst[q + 3 * qs, c] = b + 8 * v + s5


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _grad_1d(m, src, p, ps, dst, q, qs):
    """A (the transpose of A^T) along one axis: m vectors in, alpha out."""
    if m == 2:
        for c in range(src.shape[1]):
            s0, s1 = src[p, c], src[p + ps, c]
            dst[q, c] = s0
            dst[q + qs, c] = s0 + s1
            dst[q + 2 * qs, c] = s0 - s1
            dst[q + 3 * qs, c] = -s1
    elif m == 3:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            even = s0 + s2
            dst[q, c] = s0
            dst[q + qs, c] = even + s1
            dst[q + 2 * qs, c] = even - s1
            dst[q + 3 * qs, c] = s0 + 2 * s1 + 4 * s2
            dst[q + 4 * qs, c] = s2
    else:
        for c in range(src.shape[1]):
            s0, s1, s2, s3 = src[p, c], src[p + ps, c], src[p + 2 * ps, c], src[p + 3 * ps, c]
            even, odd = s0 + s2, s1 + s3
            even4, odd2 = s0 + 4 * s2, 2 * s1 + 8 * s3
            dst[q, c] = s0
            dst[q + qs, c] = even + odd
            dst[q + 2 * qs, c] = even - odd
            dst[q + 3 * qs, c] = even4 + odd2
            dst[q + 4 * qs, c] = even4 - odd2
            dst[q + 5 * qs, c] = s3


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _input_grad_1d(m, src, p, ps, dst, q, qs):
    """B (the transpose of B^T) along one axis: alpha vectors in, alpha out."""
    if m == 2:
        for c in range(src.shape[1]):
            s0, s1, s2, s3 = src[p, c], src[p + ps, c], src[p + 2 * ps, c], src[p + 3 * ps, c]
            dst[q, c] = s0
            dst[q + qs, c] = s1 - s2 + s3
            dst[q + 2 * qs, c] = s1 + s2 - s0
            dst[q + 3 * qs, c] = -s3
    elif m == 3:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4 = src[p + 3 * ps, c], src[p + 4 * ps, c]
            dst[q, c] = 2 * s0
            dst[q + qs, c] = 2 * (s2 - s1 + s4) - s0 - s3
            dst[q + 2 * qs, c] = -2 * s0 - s1 - 3 * s2 - s4
            dst[q + 3 * qs, c] = s0 + s1 + s2 + s3 - 2 * s4
            dst[q + 4 * qs, c] = s4
    else:
        for c in range(src.shape[1]):
            s0, s1, s2 = src[p, c], src[p + ps, c], src[p + 2 * ps, c]
            s3, s4, s5 = src[p + 3 * ps, c], src[p + 4 * ps, c], src[p + 5 * ps, c]
            dst[q, c] = 4 * s0
            dst[q + qs, c] = 4 * (s2 - s1 + s5) + 2 * (s4 - s3)
            dst[q + 2 * qs, c] = -5 * s0 - 4 * (s1 + s2) - s3 - s4
            dst[q + 3 * qs, c] = s1 - s2 + 2 * (s3 - s4) - 5 * s5
            dst[q + 4 * qs, c] = s0 + s1 + s2 + s3 + s4
            dst[q + 5 * qs, c] = s5


@njit(nogil=True, cache=True)
def _tile_grid(H, W, padding, m):
    """The m x m output tiles of a 3x3 convolution of an H x W input with ``padding``:
    TH x TW of them, reading a (HP, WP) zero-padded input."""
    TH, TW = (H + 2 * padding - 3 + m) // m, (W + 2 * padding - 3 + m) // m
    return TH, TW, m * TH + 2, m * TW + 2


@njit(nogil=True, cache=True, fastmath=True)
def winograd_input_numba(x, V, padding, m):
    """V (alpha^2, n*TH*TW, C) = B^T d B for every alpha x alpha tile d of x (n, C, H, W)
    padded by ``padding``, the m x m tiles covering the (H + 2*padding - 2) x
    (W + 2*padding - 2) output."""
    n, C, H, W = x.shape
    A = m + 2
    TH, TW, HP, WP = _tile_grid(H, W, padding, m)
    T = TH * TW
    # the input zero-padded and channels last: a tile's pixel is then a contiguous C-vector
    # (input rows and columns that no tile reaches are left out)
    xp = np.zeros((n, HP, WP, C), dtype=x.dtype)
    h_end, w_end = min(H, HP - padding), min(W, WP - padding)
    _to_channels_last(x, h_end, w_end, xp, padding)
    pixels = xp.reshape(n * HP * WP, C)
    nT = n * T
    out = V.reshape(A * A * nT, C)  # row xi * nT + t
    rows = np.empty((A * A, C), dtype=x.dtype)  # B^T d: row a * A + column q
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                corner = (img * HP + m * i) * WP + m * j
                for q in range(A):  # down each column of the tile
                    _input_1d(m, pixels, corner + q, WP, rows, q, A)
                for a in range(A):  # then along each row
                    _input_1d(m, rows, a * A, 1, out, a * A * nT + t, nT)
    return V


@njit(nogil=True, cache=True, fastmath=True)
def winograd_input_grad_numba(dV, dx, padding, m):
    """dx (n, C, H, W) = the gradient of ``winograd_input_numba`` for dV (alpha^2,
    n*TH*TW, C): each tile's B dV B^T added into the padded input, channels last, then
    back to NCHW without the padding."""
    n, C, H, W = dx.shape
    A = m + 2
    TH, TW, HP, WP = _tile_grid(H, W, padding, m)
    T = TH * TW
    dp = np.zeros((n, HP, WP, C), dtype=dx.dtype)
    pixels = dp.reshape(n * HP * WP, C)
    nT = n * T
    src = dV.reshape(A * A * nT, C)  # row xi * nT + t
    rows = np.empty((A * A, C), dtype=dx.dtype)  # B along each row: row a * A + column r
    tile = np.empty((A * A, C), dtype=dx.dtype)  # then down each column: row k * A + r
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                corner = (img * HP + m * i) * WP + m * j
                for a in range(A):  # the forward's steps in reverse order, each transposed
                    _input_grad_1d(m, src, a * A * nT + t, nT, rows, a * A, 1)
                for r in range(A):
                    _input_grad_1d(m, rows, r, A, tile, r, A)
                for k in range(A):
                    for r in range(A):
                        d, g = pixels[corner + k * WP + r], tile[k * A + r]
                        for c in range(C):
                            d[c] += g[c]
    # NCHW without the padding; input pixels that no tile reaches get 0
    h_end, w_end = min(H, HP - padding), min(W, WP - padding)
    for img in range(n):
        for c in range(C):
            for h in range(H):
                dst = dx[img, c, h]
                if h < h_end:
                    src_row = dp[img, h + padding]
                    for w in range(w_end):
                        dst[w] = src_row[w + padding, c]
                    dst[w_end:] = 0
                else:
                    dst[:] = 0
    return dx


@njit(nogil=True, cache=True, fastmath=True)
def winograd_output_numba(M, bias, relu, out, m):
    """out (n, F, H, W) = A^T M_tile A for every tile of M (alpha^2, n*TH*TW, F), plus
    bias (F,), then max(., 0) when ``relu`` (NaN stays NaN)."""
    n, F, H, W = out.shape
    A = m + 2
    TH, TW = (H + m - 1) // m, (W + m - 1) // m
    T = TH * TW
    nT = n * T
    tiles = M.reshape(A * A * nT, F)  # row xi * nT + t
    cols = np.empty((m * A, F), dtype=out.dtype)  # A^T down the columns: row a * A + b
    # a row of tiles' outputs, channels last: (m, m * TW, F) as rows a * m * TW + w
    y = np.empty((m * m * TW, F), dtype=out.dtype)
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                for b in range(A):
                    _output_1d(m, tiles, b * nT + t, A * nT, cols, b, A)
                for a in range(m):
                    _output_1d(m, cols, a * A, 1, y, a * m * TW + m * j, 1)
            # into NCHW with the bias (and ReLU), dropping the outputs past the map's last
            # row or column; a row of tiles at a time, so each output row is written whole
            for a in range(min(m, H - m * i)):
                row = a * m * TW
                for f in range(F):
                    dst = out[img, f, m * i + a]
                    bf = bias[f]
                    for w in range(W):
                        v = y[row + w, f] + bf
                        if relu:
                            v = 0 if v < 0 else v
                        dst[w] = v
    return out


@njit(nogil=True, cache=True, fastmath=True)
def winograd_grad_output_numba(dout, dM, m):
    """dM (alpha^2, n*TH*TW, F) = A dY A^T for every tile's m x m block dY of
    dout (n, F, H, W), with zeros past the last whole tile: the weight gradient's
    transform."""
    n, F, H, W = dout.shape
    A = m + 2
    TH, TW = (H + m - 1) // m, (W + m - 1) // m
    T = TH * TW
    HP, WP = m * TH, m * TW
    # dout zero-padded to whole tiles and channels last, as in winograd_input
    dp = np.zeros((n, HP, WP, F), dtype=dout.dtype)
    _to_channels_last(dout, H, W, dp, 0)
    pixels = dp.reshape(n * HP * WP, F)
    nT = n * T
    out = dM.reshape(A * A * nT, F)
    z = np.empty((m * A, F), dtype=dout.dtype)  # A along each row: row r * A + b
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                corner = (img * HP + m * i) * WP + m * j
                for r in range(m):
                    _grad_1d(m, pixels, corner + r * WP, 1, z, r * A, 1)
                for b in range(A):  # then down the columns
                    _grad_1d(m, z, b, A, out, b * nT + t, A * nT)
    return dM


# The weight transforms as parallel loops over the channels (as NumPy GEMMs with K = 9
# they would run on one BLAS thread: see ``engine.threads.blas_threads``).

@parallel_njit(nogil=True, cache=True, fastmath=True)
def winograd_weights_numba(w, GG):
    """U (alpha^2, C, F) = GG @ (the 9 taps of w[f, c]) for every (c, f): the Winograd
    transform G g G^T of every filter g of w (F, C, 3, 3); GG = G kron G (alpha^2, 9)."""
    F, C = w.shape[:2]
    A2 = GG.shape[0]
    gg = GG.astype(w.dtype)
    U = np.empty((A2, C, F), dtype=w.dtype)
    for c in prange(C):
        taps = np.empty((9, F), dtype=w.dtype)  # channel c's filters, tap-major
        for f in range(F):
            for k in range(9):
                taps[k, f] = w[f, c, k // 3, k % 3]
        for xi in range(A2):
            u = U[xi, c]
            u[:] = 0
            for k in range(9):
                g = gg[xi, k]
                if g != 0:
                    t = taps[k]
                    for f in range(F):
                        u[f] += g * t[f]
    return U


@parallel_njit(nogil=True, cache=True, fastmath=True)
def winograd_weight_grad_numba(dU, GG):
    """dw (F, C, 3, 3) = GG^T dU, summed over dU's parts: dU (parts, alpha^2, F, C), one
    part per thread of the backward pass (their sum is the gradient's transform)."""
    P, A2, F, C = dU.shape
    gg = GG.astype(dU.dtype)
    dw = np.empty((F, C, 3, 3), dtype=dU.dtype)
    for f in prange(F):
        acc = np.zeros((9, C), dtype=dU.dtype)  # tap-major, for the loops along c
        for p in range(P):
            for xi in range(A2):
                d = dU[p, xi, f]
                for k in range(9):
                    g = gg[xi, k]
                    if g != 0:
                        a = acc[k]
                        for c in range(C):
                            a[c] += g * d[c]
        for c in range(C):
            for k in range(9):
                dw[f, c, k // 3, k % 3] = acc[k, c]
    return dw


# --------------------------------------------------------------------------- entry points
def winograd_weights(w: np.ndarray, m: int = 2, tier: str | None = None) -> np.ndarray:
    """w (F, C, 3, 3) -> U (alpha^2, C, F): the transform of every filter."""
    if dispatch.resolve(tier) == "numba":
        return dispatch.run(winograd_weights_numba, w.nbytes * (m + 2) ** 2 // 9, w,
                            filter_transform(m))
    return winograd_weights_numpy(w, m)


def winograd_weight_grad(dU: np.ndarray, m: int = 2, tier: str | None = None) -> np.ndarray:
    """dU (alpha^2, F, C), or (parts, alpha^2, F, C) to be summed over the parts ->
    dw (F, C, 3, 3): the weight gradient from its Winograd transform."""
    parts = dU if dU.ndim == 4 else dU[None]
    if dispatch.resolve(tier) == "numba":
        return dispatch.run(winograd_weight_grad_numba, parts.nbytes,
                            np.ascontiguousarray(parts), filter_transform(m))
    return winograd_weight_grad_numpy(parts.sum(axis=0), m)


def winograd_input(x: np.ndarray, out: np.ndarray, padding: int = 1, m: int = 2,
                   tier: str | None = None) -> np.ndarray:
    """x (n, C, H, W) -> out (alpha^2, n*TH*TW, C): the input transform of every tile of x
    zero-padded by ``padding`` (0, 1 or 2), the tiles covering the 3x3 convolution's
    output, (H + 2*padding - 2) x (W + 2*padding - 2)."""
    if dispatch.resolve(tier) == "numba" and out.flags.c_contiguous:
        return winograd_input_numba(np.ascontiguousarray(x), out, padding, m)
    out[...] = winograd_input_numpy(x, padding, m)
    return out


def winograd_input_grad(dV: np.ndarray, out: np.ndarray, padding: int = 1, m: int = 2,
                        tier: str | None = None) -> np.ndarray:
    """dV (alpha^2, n*TH*TW, C) -> out (n, C, H, W): the gradient of ``winograd_input``
    with respect to x, for the gradient dV of its transformed tiles."""
    if dispatch.resolve(tier) == "numba" and out.flags.c_contiguous:
        return winograd_input_grad_numba(np.ascontiguousarray(dV), out, padding, m)
    out[...] = winograd_input_grad_numpy(dV, out.shape, padding, m)
    return out


def winograd_output(M: np.ndarray, bias: np.ndarray | None, out: np.ndarray,
                    relu: bool = False, m: int = 2, tier: str | None = None) -> np.ndarray:
    """M (alpha^2, n*TH*TW, F) -> out (n, F, H, W): the output transform of every tile,
    plus bias (F,) (None: none), then max(., 0) if ``relu``."""
    if dispatch.resolve(tier) == "numba" and M.flags.c_contiguous and out.flags.c_contiguous:
        F = out.shape[1]
        b = np.zeros(F, dtype=out.dtype) if bias is None else bias.astype(out.dtype, copy=False)
        return winograd_output_numba(M, b, relu, out, m)
    return winograd_output_numpy(M, bias, relu, out, m)


def winograd_grad_output(dout: np.ndarray, out: np.ndarray, m: int = 2,
                         tier: str | None = None) -> np.ndarray:
    """dout (n, F, H, W) -> out (alpha^2, n*TH*TW, F): the transform of dL/dout that the
    weight gradient needs."""
    if dispatch.resolve(tier) == "numba" and out.flags.c_contiguous:
        return winograd_grad_output_numba(np.ascontiguousarray(dout), out, m)
    out[...] = winograd_grad_output_numpy(dout, m)
    return out
