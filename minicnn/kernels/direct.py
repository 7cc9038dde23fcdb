"""Direct convolution (stride 1): every output summed straight from the input, with no
column matrix. For layers with few channels, im2col writes KH*KW copies of the input and
then runs a GEMM whose small inner or outer dimension (C*KH*KW or F) keeps BLAS far from
its peak; the direct loops do the same multiply-adds without the copies.

    out[n, f, oh, ow] = b[f] + sum over c, kh, kw of  w[f, c, kh, kw] * xp[n, c, oh + kh, ow + kw]

with xp the input zero-padded by ``padding`` on each side (Hp x Wp). The gradients are
the same loops: dx is the direct convolution of dout, padded by KH - 1 - padding, with
each filter turned by 180 degrees and the channel axes swapped (``flip_filters``), and

    dw[f, c, kh, kw] = sum over n, oh, ow of  dout[n, f, oh, ow] * xp[n, c, oh + kh, ow + kw]

The Numba tier's trick, flat rows: output pixel (oh, ow) at flat index i = oh*Wp + ow
reads xp at i + kh*Wp + kw, one fixed offset per tap over the whole plane. So a plane of
output is one long unit-stride loop per input channel, the 9 taps of a 3x3 filter summed
in its body, which LLVM turns into SIMD code; the outputs at ow >= OW (a window that
wraps into the next row) are computed and dropped. The weight gradient's loops take three
filters and one row of taps at a time, so that each value loaded from dout or xp serves
three multiply-adds (``_sums_row3``).

Three tiers, side by side: ``*_naive`` loops that read like the sum above, a NumPy tier
(one einsum per tap on a shifted view), and the Numba tier the engine uses, which works
on one image at a time inside the engine's threads.
"""

from __future__ import annotations

import numpy as np

from minicnn.kernels import dispatch
from minicnn.kernels._numba import njit
from minicnn.kernels.im2col import add_bias_row, output_hw


def flip_filters(w: np.ndarray) -> np.ndarray:
    """The filters of dx's convolution: w (F, C, KH, KW) -> (C, F, KH, KW), each turned by
    180 degrees."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _pad(x: np.ndarray, padding: int) -> np.ndarray:
    p = padding
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


# --------------------------------------------------------------------------- naive tier
def direct_conv_naive(x, w, b, padding):
    """out (N, F, OH, OW) from x (N, C, H, W), w (F, C, KH, KW), b (F,) or None: the sum."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = output_hw(H, W, KH, KW, 1, padding)
    xp = _pad(x, padding)
    out = np.zeros((N, F, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for oh in range(OH):
                for ow in range(OW):
                    s = 0.0 if b is None else b[f]
                    for c in range(C):
                        for kh in range(KH):
                            for kw in range(KW):
                                s += w[f, c, kh, kw] * xp[n, c, oh + kh, ow + kw]
                    out[n, f, oh, ow] = s
    return out


def direct_weight_grad_naive(x, dout, KH, KW, padding):
    """dw (F, C, KH, KW) = the sum over images and output pixels above."""
    N, C, _, _ = x.shape
    _, F, OH, OW = dout.shape
    xp = _pad(x, padding)
    dw = np.zeros((F, C, KH, KW), dtype=x.dtype)
    for f in range(F):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    s = 0.0
                    for n in range(N):
                        for oh in range(OH):
                            for ow in range(OW):
                                s += dout[n, f, oh, ow] * xp[n, c, oh + kh, ow + kw]
                    dw[f, c, kh, kw] = s
    return dw


# --------------------------------------------------------------------------- NumPy tier
def direct_conv_numpy(x, w, b, padding):
    """One einsum per tap: out += w[:, :, kh, kw] applied to xp shifted by (kh, kw)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = output_hw(H, W, KH, KW, 1, padding)
    xp = _pad(x, padding)
    out = np.zeros((N, F, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            out += np.einsum("fc,nchw->nfhw", w[:, :, kh, kw],
                             xp[:, :, kh:kh + OH, kw:kw + OW], optimize=True)
    if b is not None:
        out += b.reshape(1, F, 1, 1)
    return out


def direct_weight_grad_numpy(x, dout, KH, KW, padding):
    _, _, OH, OW = dout.shape
    xp = _pad(x, padding)
    dw = np.empty((dout.shape[1], x.shape[1], KH, KW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            dw[:, :, kh, kw] = np.einsum("nfhw,nchw->fc", dout,
                                         xp[:, :, kh:kh + OH, kw:kw + OW], optimize=True)
    return dw


# --------------------------------------------------------------------------- Numba tier
@njit(nogil=True, cache=True)
def _pad_into(src, dst, padding):
    """dst (C, Hp*Wp) = one image src (C, H, W) zero-padded by ``padding``."""
    C, H, W = src.shape
    Wp = W + 2 * padding
    for c in range(C):
        d = dst[c]
        for i in range(d.size):
            d[i] = 0
        for h in range(H):  # loops over views: Numba's slice assignment is slower here
            row, drow = src[c, h], d[(h + padding) * Wp + padding:]
            for j in range(W):
                drow[j] = row[j]


# The loops below index each tap's input as a slice (x1 = xc[Wp:], read at i + 1, ...)
# from a signed range: LLVM then vectorises them, and not the same loops written with
# unsigned offsets (several times slower: benchmarks/README.md).
@njit(nogil=True, cache=True, fastmath={"contract"})
def _plane3x3(acc, xc, w, f, c, Wp, L):
    """acc[i] += the 9 taps of filter w[f, c] over the flat padded plane xc, i < L."""
    w0, w1, w2 = w[f, c, 0, 0], w[f, c, 0, 1], w[f, c, 0, 2]
    w3, w4, w5 = w[f, c, 1, 0], w[f, c, 1, 1], w[f, c, 1, 2]
    w6, w7, w8 = w[f, c, 2, 0], w[f, c, 2, 1], w[f, c, 2, 2]
    x1, x2 = xc[Wp:], xc[2 * Wp:]  # the rows kh = 1 and 2 of each window
    for i in range(L):
        acc[i] += (w0 * xc[i] + w1 * xc[i + 1] + w2 * xc[i + 2]
                   + w3 * x1[i] + w4 * x1[i + 1] + w5 * x1[i + 2]
                   + w6 * x2[i] + w7 * x2[i + 1] + w8 * x2[i + 2])


@njit(nogil=True, cache=True, fastmath={"contract"})
def _plane_any(acc, xc, w, f, c, Wp, L):
    """acc[i] += every tap of filter w[f, c] (any KH x KW), one pass per tap, or per row
    of 5 taps when KW = 5."""
    KH, KW = w.shape[2], w.shape[3]
    for kh in range(KH):
        r = xc[kh * Wp:]
        if KW == 5:
            w0, w1, w2 = w[f, c, kh, 0], w[f, c, kh, 1], w[f, c, kh, 2]
            w3, w4 = w[f, c, kh, 3], w[f, c, kh, 4]
            for i in range(L):
                acc[i] += (w0 * r[i] + w1 * r[i + 1] + w2 * r[i + 2] + w3 * r[i + 3]
                           + w4 * r[i + 4])
            continue
        for kw in range(KW):
            wv = w[f, c, kh, kw]
            t = r[kw:]
            for i in range(L):
                acc[i] += wv * t[i]


@njit(nogil=True, cache=True)
def direct_conv_numba(x, w, b, padding, relu, out, xp, acc):
    """out (N, F, OH, OW) = the convolution of x (N, C, H, W) with w (F, C, KH, KW), + b
    (F,), then max(., 0) when ``relu``; image by image, serially. xp (C, Hp*Wp) and acc
    (Hp*Wp,) are scratch."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = out.shape[2], out.shape[3]
    Wp = W + 2 * padding
    L = (OH - 1) * Wp + OW  # flat outputs computed; the last read is xp's last element
    three = KH == 3 and KW == 3
    for n in range(N):
        _pad_into(x[n], xp, padding)
        for f in range(F):
            for i in range(L):
                acc[i] = 0
            for c in range(C):
                if three:
                    _plane3x3(acc, xp[c], w, f, c, Wp, L)
                else:
                    _plane_any(acc, xp[c], w, f, c, Wp, L)
            for oh in range(OH):  # the valid columns of each flat row
                add_bias_row(out[n, f, oh], acc[oh * Wp:oh * Wp + OW], b[f], relu)
    return out


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sums3x3(d, xc, Wp, L, s):
    """s[0..8] += the 9 taps' sums d[i] * xc[i + kh*Wp + kw] over i < L (the partial sums
    start from s, so they have its dtype)."""
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]
    x1, x2 = xc[Wp:], xc[2 * Wp:]
    for i in range(L):
        g = d[i]
        a0 += g * xc[i]
        a1 += g * xc[i + 1]
        a2 += g * xc[i + 2]
        a3 += g * x1[i]
        a4 += g * x1[i + 1]
        a5 += g * x1[i + 2]
        a6 += g * x2[i]
        a7 += g * x2[i + 1]
        a8 += g * x2[i + 2]
    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8] = a0, a1, a2, a3, a4, a5, a6, a7, a8


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sums_row3(d0, d1, d2, xr, L, s0, s1, s2, o):
    """The same sums for one row of 3 taps and three filters at once: s_j[o + kw] +=
    d_j[i] * xr[i + kw] over i < L, j < 3, kw < 3. Each value loaded serves three
    multiply-adds instead of one, and the 9 partial sums still fit in registers."""
    a00, a01, a02 = s0[o], s0[o + 1], s0[o + 2]
    a10, a11, a12 = s1[o], s1[o + 1], s1[o + 2]
    a20, a21, a22 = s2[o], s2[o + 1], s2[o + 2]
    for i in range(L):
        x0, x1, x2 = xr[i], xr[i + 1], xr[i + 2]
        g0, g1, g2 = d0[i], d1[i], d2[i]
        a00 += g0 * x0
        a01 += g0 * x1
        a02 += g0 * x2
        a10 += g1 * x0
        a11 += g1 * x1
        a12 += g1 * x2
        a20 += g2 * x0
        a21 += g2 * x1
        a22 += g2 * x2
    s0[o], s0[o + 1], s0[o + 2] = a00, a01, a02
    s1[o], s1[o + 1], s1[o + 2] = a10, a11, a12
    s2[o], s2[o + 1], s2[o + 2] = a20, a21, a22


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sums_any(d, xc, Wp, L, KH, KW, s):
    for kh in range(KH):
        for kw in range(KW):
            t = xc[kh * Wp + kw:]
            a = s[kh * KW + kw]
            for i in range(L):
                a += d[i] * t[i]
            s[kh * KW + kw] = a


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def direct_weight_grad_numba(x, dout, padding, dw, db, xp, dp):
    """dw (F, C, KH*KW) += the weight gradient of x (N, C, H, W)'s images and dout
    (N, F, OH, OW), and db (F,) += dout's sums, serially; xp (C, Hp*Wp) and dp
    (F, Hp*Wp) are scratch."""
    N, C, H, W = x.shape
    F, OH, OW = dout.shape[1], dout.shape[2], dout.shape[3]
    KH, KW = H + 2 * padding - OH + 1, W + 2 * padding - OW + 1
    Wp = W + 2 * padding
    L = (OH - 1) * Wp + OW
    three = KH == 3 and KW == 3
    for n in range(N):
        _pad_into(x[n], xp, padding)
        for f in range(F):  # dout in flat rows of width Wp, zeros where ow >= OW
            d = dp[f]
            for i in range(L):
                d[i] = 0
            total = 0.0  # in float64
            for oh in range(OH):
                row, drow = dout[n, f, oh], d[oh * Wp:]
                for ow in range(OW):
                    drow[ow] = row[ow]
                    total += row[ow]
            db[f] += total
        blocked = F - F % 3 if KW == 3 else 0
        for f in range(0, blocked, 3):  # three filters at a time, a row of taps a pass
            for c in range(C):
                for kh in range(KH):
                    _sums_row3(dp[f], dp[f + 1], dp[f + 2], xp[c, kh * Wp:], L,
                               dw[f, c], dw[f + 1, c], dw[f + 2, c], 3 * kh)
        for f in range(blocked, F):  # the filters left over
            for c in range(C):
                if three:
                    _sums3x3(dp[f], xp[c], Wp, L, dw[f, c])
                else:
                    _sums_any(dp[f], xp[c], Wp, L, KH, KW, dw[f, c])
    return dw


# --------------------------------------------------------------------------- entry points
def direct_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: int,
                relu: bool = False, out: np.ndarray | None = None,
                tier: str | None = None) -> np.ndarray:
    """The stride-1 convolution of x (N, C, H, W) with w (F, C, KH, KW) plus b (F,) (None:
    no bias), then max(., 0) if ``relu``, into ``out`` when given."""
    name = dispatch.resolve(tier)
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = output_hw(H, W, KH, KW, 1, padding)
    if name == "numba":
        target = out if out is not None else np.empty((N, F, OH, OW), dtype=x.dtype)
        Hp, Wp = H + 2 * padding, W + 2 * padding
        bias = np.zeros(F, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)
        return direct_conv_numba(np.ascontiguousarray(x), np.ascontiguousarray(w, x.dtype),
                                 bias, padding, relu, target,
                                 np.empty((C, Hp * Wp), dtype=x.dtype),
                                 np.empty(Hp * Wp, dtype=x.dtype))
    result = (direct_conv_naive if name == "naive" else direct_conv_numpy)(x, w, b, padding)
    if relu:
        np.maximum(result, 0, out=result)
    if out is None:
        return result
    out[...] = result
    return out


def direct_weight_grad(x: np.ndarray, dout: np.ndarray, KH: int, KW: int, padding: int,
                       tier: str | None = None) -> np.ndarray:
    """dw (F, C, KH, KW) of the stride-1 convolution of x (N, C, H, W) whose output
    gradient is dout (N, F, OH, OW)."""
    name = dispatch.resolve(tier)
    if name == "naive":
        return direct_weight_grad_naive(x, dout, KH, KW, padding)
    if name == "numpy":
        return direct_weight_grad_numpy(x, dout, KH, KW, padding)
    C, H, W = x.shape[1:]
    F = dout.shape[1]
    Hp, Wp = H + 2 * padding, W + 2 * padding
    dw = np.zeros((F, C, KH * KW), dtype=x.dtype)
    direct_weight_grad_numba(np.ascontiguousarray(x), np.ascontiguousarray(dout), padding,
                             dw, np.zeros(F, dtype=x.dtype),
                             np.empty((C, Hp * Wp), dtype=x.dtype),
                             np.empty((F, Hp * Wp), dtype=x.dtype))
    return dw.reshape(F, C, KH, KW)
