"""Numba tier of the hot kernels: same contracts as ``im2col.py`` and ``pool.py``.

Every kernel here is ``@njit(cache=True)`` (compiled once, cached on disk next to this
file), ``nogil=True`` (the convolutions call im2col and col2im from several Python threads
at once: ``minicnn.threads``) and ``parallel=True`` with ``prange`` over independent
outputs, so two threads never write the same element:

* ``im2col``  : one thread per KW rows k = (c, kh, 0..KW-1) of ``cols``; each row is
  written contiguously. Instead of padding the input (a full copy) the valid output range of
  each row is computed once and the rest is zero-filled.
* ``col2im``  : one thread per (n, c) image plane of ``dx``; all KH*KW rows that touch that
  plane are added by the same thread, so the accumulation is race-free.
* ``regroup_add_bias`` : a conv chunk's GEMM result (F, n*P) into NCHW (n, F, P) plus
  the bias (and a fused ReLU), one thread per (n, f) row.
* ``maxpool`` : one thread per (n, c) plane, forward and backward.
* ``channel_*`` (batch norm): per-channel sums with one thread per channel, and fused
  per-channel affine maps (``channel_normalize``: batch norm's whole forward after its
  statistics) with one thread per (n, c) plane.

Inputs are assumed C-contiguous (the dispatcher makes them so); dtypes float32 and
float64 each get their own compiled specialisation.

Unsigned indices. Numba, like NumPy, lets ``a[-1]`` mean the last element, so every index
that might be negative gets a run-time check and a fix-up. That branch keeps LLVM from
turning a copy loop into SIMD moves. The im2col, col2im and per-plane kernels index flat
views of their arrays with ``uint64`` values, for which no such check exists: measured on
2 cores (AMD EPYC), 2-5x faster than the same loops with signed indices or slices (and
1.1-1.3x for the per-plane batch-norm maps, which were already simple loops). The
values are non-negative by construction; casting a negative one would wrap around to a
huge index, so the bounds each loop uses are computed (and clipped) before the cast.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64


@njit(cache=True, inline="always")
def _valid_range(kernel_offset, stride, padding, size, out_size):
    """Output positions o with 0 <= o*stride + kernel_offset - padding < size."""
    # smallest o with o*stride >= padding - kernel_offset
    lo_num = padding - kernel_offset
    lo = 0 if lo_num <= 0 else (lo_num + stride - 1) // stride
    # largest o with o*stride <= size - 1 + padding - kernel_offset
    hi_num = size - 1 + padding - kernel_offset
    hi = -1 if hi_num < 0 else hi_num // stride
    if hi > out_size - 1:
        hi = out_size - 1
    if lo > hi + 1:
        lo = hi + 1
    return lo, hi + 1


@njit(cache=True, inline="always")
def _zero(a, start, stop):
    """a[start:stop] = 0 for a flat array, with unsigned indices (see the module notes)."""
    for i in range(uint64(start), uint64(stop)):
        a[i] = 0


@njit(cache=True)
def _tap_ranges(K, stride, padding, size, out_size):
    """For each kernel offset 0..K-1, its ``_valid_range`` as (lo, hi) arrays. Computed
    once per call: the integer divisions in it cost more than a small map's row copy
    (precomputing them made one image's im2col 1.1-1.5x faster on 6x6 to 24x24 maps)."""
    lo = np.empty(K, dtype=np.int64)
    hi = np.empty(K, dtype=np.int64)
    for k in range(K):
        lo[k], hi[k] = _valid_range(k, stride, padding, size, out_size)
    return lo, hi


@njit(parallel=True, nogil=True, cache=True)
def im2col_into(x, KH, KW, stride, padding, OH, OW, cols):
    """Fill cols (C*KH*KW, N*OH*OW) from x (N, C, H, W); see im2col.py for the layout.

    Row k = (c, kh, kw) of cols holds, image after image, the input pixel under kernel
    tap (kh, kw) for every output position, or 0 where the tap falls on the padding.
    """
    N, C, H, W = x.shape
    xf = x.reshape(x.size)
    cf = cols.reshape(cols.size)
    P = OH * OW
    oh_los, oh_his = _tap_ranges(KH, stride, padding, H, OH)
    ow_los, ow_his = _tap_ranges(KW, stride, padding, W, OW)
    # "same" convolution (stride 1, output as large as the input, e.g. 3x3 with padding
    # 1): output position d = oh*W + ow reads input pixel d + (kh - p)*W + (kw - p), one
    # fixed offset, so an image's whole stretch of row k is a single contiguous copy; only
    # the padded border is then zeroed. On small maps (6x6 to 24x24) this is 1.3-2x faster
    # than copying output row by output row.
    same = stride == 1 and OH == H and OW == W
    for ckh in prange(C * KH):  # the KW rows (c, kh, 0..KW-1) of cols per iteration
        c = ckh // KH
        kh = ckh - c * KH
        oh_lo, oh_hi = oh_los[kh], oh_his[kh]
        for kw in range(KW):
            k = ckh * KW + kw
            ow_lo, ow_hi = ow_los[kw], ow_his[kw]
            for n in range(N):
                r0 = (k * N + n) * P  # this image's stretch of row k
                s0 = (n * C + c) * H * W  # its input plane
                if same:
                    off = (kh - padding) * W + (kw - padding)
                    # the copied range: valid output rows, source kept inside the plane,
                    # and 0 <= lo <= hi <= P (a tap that never lands on the image copies
                    # nothing)
                    lo = min(max(oh_lo * W, -off, 0), P)
                    hi = max(min(oh_hi * W, H * W - off, P), lo)
                    _zero(cf, r0, r0 + lo)
                    dst, src = uint64(r0 + lo), uint64(s0 + off + lo)
                    for i in range(uint64(hi - lo)):
                        cf[dst + i] = xf[src + i]
                    _zero(cf, r0 + hi, r0 + P)
                    if ow_lo > 0 or ow_hi < OW:  # the copy wrapped across rows: zero borders
                        for oh in range(oh_lo, oh_hi):
                            _zero(cf, r0 + oh * OW, r0 + oh * OW + ow_lo)
                            _zero(cf, r0 + oh * OW + ow_hi, r0 + (oh + 1) * OW)
                    continue
                _zero(cf, r0, r0 + oh_lo * OW)
                for oh in range(oh_lo, oh_hi):
                    j = r0 + oh * OW
                    _zero(cf, j, j + ow_lo)
                    dst = uint64(j + ow_lo)
                    src = uint64(s0 + (oh * stride + kh - padding) * W
                                 + ow_lo * stride + kw - padding)
                    step = uint64(stride)
                    for i in range(uint64(ow_hi - ow_lo)):
                        cf[dst + i] = xf[src + i * step]
                    _zero(cf, j + ow_hi, j + OW)
                _zero(cf, r0 + oh_hi * OW, r0 + P)
    return cols


@njit(parallel=True, nogil=True, cache=True)
def col2im_into(cols, KH, KW, stride, padding, OH, OW, dx):
    """dx (N, C, H, W) = col2im(cols); dx is overwritten (not accumulated into)."""
    N, C, H, W = dx.shape
    cf = cols.reshape(cols.size)
    df = dx.reshape(dx.size)
    P = OH * OW
    step = uint64(stride)
    oh_los, oh_his = _tap_ranges(KH, stride, padding, H, OH)
    ow_los, ow_his = _tap_ranges(KW, stride, padding, W, OW)
    # Planes are numbered channel-major (cn = c*N + n), so consecutive planes, which
    # prange hands to the same thread, read consecutive stretches of the same KH*KW rows
    # of cols: one forward stream per row instead of a jump to another row for every plane.
    for cn in prange(N * C):
        c = cn // N
        n = cn - c * N
        p0 = (n * C + c) * H * W
        _zero(df, p0, p0 + H * W)
        for kh in range(KH):
            oh_lo, oh_hi = oh_los[kh], oh_his[kh]
            for kw in range(KW):
                ow_lo, ow_hi = ow_los[kw], ow_his[kw]
                r0 = (((c * KH + kh) * KW + kw) * N + n) * P  # row k's stretch for image n
                for oh in range(oh_lo, oh_hi):
                    src = uint64(r0 + oh * OW + ow_lo)
                    dst = uint64(p0 + (oh * stride + kh - padding) * W
                                 + ow_lo * stride + kw - padding)
                    for i in range(uint64(ow_hi - ow_lo)):
                        df[dst + i * step] += cf[src + i]
    return dx


@njit(parallel=True, nogil=True, cache=True)
def regroup_add_bias(y, bias, out, relu):
    """out (n, F, P) = y (F, n*P) regrouped image by image, plus bias (F,) per channel,
    then max(., 0) when ``relu``.

    The GEMM of a chunk of n images leaves channel f of image i at y[f, i*P:(i+1)*P];
    NCHW wants it at out[i, f]. One thread per (i, f) row, each a contiguous copy. For
    n = 1 the two layouts agree, and out may be y itself (each element is read, then
    written).
    """
    n, F, P = out.shape
    for i_f in prange(n * F):
        i = i_f // F
        f = i_f % F
        src = y[f]
        dst = out[i, f]
        b = bias[f]
        if relu:
            for p in range(P):
                dst[p] = max(src[i * P + p] + b, 0)
        else:
            for p in range(P):
                dst[p] = src[i * P + p] + b
    return out


@njit(parallel=True, nogil=True, cache=True)
def maxpool_forward(x, KH, KW, stride, OH, OW):
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
            # flat indices, as in im2col (1.3-1.8x faster than plane[h, w] indexing)
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


@njit(parallel=True, nogil=True, cache=True)
def maxpool_backward(dout, argmax, H, W):
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


@njit(parallel=True, nogil=True, cache=True)
def relu_forward(x):
    """max(x, 0) in one parallel pass; NaN stays NaN (as with ``np.maximum``).

    NumPy's ``np.maximum(x, 0)`` runs on one thread; this measured 1.8-5x faster on 2
    cores for the ``default`` model's activations at batch 64.
    """
    out = np.empty_like(x)
    fx = x.reshape(-1)
    fo = out.reshape(-1)
    n = fx.size
    block = 16384
    for b in prange((n + block - 1) // block):
        for i in range(b * block, min(n, (b + 1) * block)):
            v = fx[i]
            fo[i] = 0 if v < 0 else v
    return out


@njit(parallel=True, nogil=True, cache=True)
def relu_backward(dout, out):
    """dx = dout where out > 0 else 0, in one pass (no boolean temporary).

    Written as a multiply by the comparison, not as ``dout if out > 0 else 0``: the branch
    is unpredictable on real activations (about half are zero) and kept the loop from
    vectorising; the branch-free form measured 4-5x faster on 2 cores.
    """
    dx = np.empty_like(dout)
    fd = dout.reshape(-1)
    fo = out.reshape(-1)
    fx = dx.reshape(-1)
    n = fd.size
    block = 16384
    for b in prange((n + block - 1) // block):
        for i in range(b * block, min(n, (b + 1) * block)):
            fx[i] = fd[i] * (fo[i] > 0)
    return dx


# Let LLVM reorder the additions of a sum so it can keep several partial sums in SIMD
# registers; a strict left-to-right float sum is bound by the add latency (~4x slower).
_REASSOCIATE = {"reassoc", "contract"}


@njit(parallel=True, nogil=True, cache=True, fastmath=_REASSOCIATE)
def channel_moments(x):
    """Per-channel mean and biased variance of x (N, C, H, W), accumulated in float64.

    One thread per channel. The variance is two-pass (mean first, then the centred sum of
    squares) for accuracy; a channel's N*H*W values are small enough to stay in cache
    between the passes.
    """
    N, C, H, W = x.shape
    xf = x.reshape(N, C, H * W)
    M = N * H * W
    mean = np.empty(C, dtype=np.float64)
    var = np.empty(C, dtype=np.float64)
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for i in range(H * W):
                s += xf[n, c, i]
        mu = s / M
        q = 0.0
        for n in range(N):
            for i in range(H * W):
                d = xf[n, c, i] - mu
                q += d * d
        mean[c] = mu
        var[c] = q / M
    return mean, var


@njit(parallel=True, nogil=True, cache=True, fastmath=_REASSOCIATE)
def channel_sums(dout, xhat, gate, relu):
    """Per-channel sum(g) and sum(g * xhat) over (N, H, W), in one pass, float64, where
    g = dout, or with ``relu`` g = dout where gate > 0 else 0 (the gradient through a ReLU
    fused after batch norm, whose output ``gate`` is; otherwise ``gate`` is not read)."""
    N, C, H, W = dout.shape
    df = dout.reshape(N, C, H * W)
    xf = xhat.reshape(N, C, H * W)
    gf = gate.reshape(N, C, H * W)
    s = np.empty(C, dtype=np.float64)
    sx = np.empty(C, dtype=np.float64)
    for c in prange(C):
        a = 0.0
        b = 0.0
        for n in range(N):
            for i in range(H * W):
                d = df[n, c, i]
                if relu:  # loop-invariant: LLVM compiles the loop once for each value
                    d = d * (gf[n, c, i] > 0)
                a += d
                b += d * xf[n, c, i]
        s[c] = a
        sx[c] = b
    return s, sx


@njit(parallel=True, nogil=True, cache=True)
def channel_normalize(x, center, scale, gamma, beta, relu):
    """Batch norm's forward in one pass over x (N, C, H, W), per channel c:
    xhat = (x - center[c]) * scale[c] and out = xhat * gamma[c] + beta[c], or with ``relu``
    max(xhat * gamma[c] + beta[c], 0) (NaN stays NaN); returns both.

    Subtracting the centre first (not folding it into a shift) avoids cancellation when a
    channel's mean is large next to its spread.
    """
    N, C, H, W = x.shape
    P = H * W
    xf = x.reshape(x.size)
    xhat = np.empty_like(xf)
    out = np.empty_like(xf)
    for nc in prange(N * C):
        c = nc % C
        m, a, g, b = center[c], scale[c], gamma[c], beta[c]
        o = uint64(nc * P)
        for i in range(uint64(P)):
            v = (xf[o + i] - m) * a
            xhat[o + i] = v
            y = v * g + b
            if relu:
                y = 0 if y < 0 else y
            out[o + i] = y
    return xhat.reshape(N, C, H, W), out.reshape(N, C, H, W)


@njit(parallel=True, nogil=True, cache=True)
def channel_affine2(x, x_scale, y, y_scale, shift, gate, relu):
    """out[n, c] = x[n, c] * x_scale[c] + y[n, c] * y_scale[c] + shift[c]; x, y (N, C, H, W).
    With ``relu``, x counts only where gate > 0 (``channel_sums``)."""
    N, C, H, W = x.shape
    P = H * W
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    gf = gate.reshape(gate.size)
    out = np.empty_like(xf)
    for nc in prange(N * C):
        c = nc % C
        a, b, d = x_scale[c], y_scale[c], shift[c]
        o = uint64(nc * P)
        for i in range(uint64(P)):
            v = xf[o + i]
            if relu:
                v = v * (gf[o + i] > 0)
            out[o + i] = v * a + yf[o + i] * b + d
    return out.reshape(N, C, H, W)


# Winograd F(2x2, 3x3) transforms (see kernels/winograd.py for the maths, the layouts and
# the NumPy tier). Serial: ``functional.conv`` runs them inside its batch-parallel threads.
# The innermost loops run along the channels, contiguous in V and M (and in the input's
# padded channels-last copy), so LLVM vectorises them.

@njit(nogil=True, cache=True, fastmath=True)
def winograd_input(x, V, padding):
    """V (16, n*TH*TW, C) = B^T d B for every 4x4 tile d of x (n, C, H, W) padded by
    ``padding``, the tiles covering the (H + 2*padding - 2) x (W + 2*padding - 2) output."""
    n, C, H, W = x.shape
    TH, TW = (H + 2 * padding - 1) // 2, (W + 2 * padding - 1) // 2
    T = TH * TW
    # the input zero-padded and channels last: a tile's pixel is then a contiguous C-vector
    # (input rows and columns that no tile reaches are left out)
    xp = np.zeros((n, 2 * TH + 2, 2 * TW + 2, C), dtype=x.dtype)
    h_end, w_end = min(H, 2 * TH + 2 - padding), min(W, 2 * TW + 2 - padding)
    for img in range(n):
        for c in range(C):
            for h in range(h_end):
                for w in range(w_end):
                    xp[img, h + padding, w + padding, c] = x[img, c, h, w]
    rows = np.empty((4, 4, C), dtype=x.dtype)  # B^T applied down a tile's columns
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                for q in range(4):
                    d0, d1 = xp[img, 2 * i, 2 * j + q], xp[img, 2 * i + 1, 2 * j + q]
                    d2, d3 = xp[img, 2 * i + 2, 2 * j + q], xp[img, 2 * i + 3, 2 * j + q]
                    for c in range(C):
                        rows[0, q, c] = d0[c] - d2[c]
                        rows[1, q, c] = d1[c] + d2[c]
                        rows[2, q, c] = d2[c] - d1[c]
                        rows[3, q, c] = d1[c] - d3[c]
                for a in range(4):  # then B along the rows
                    r0, r1, r2, r3 = rows[a, 0], rows[a, 1], rows[a, 2], rows[a, 3]
                    v0, v1, v2, v3 = V[4 * a, t], V[4 * a + 1, t], V[4 * a + 2, t], V[4 * a + 3, t]
                    for c in range(C):
                        v0[c] = r0[c] - r2[c]
                        v1[c] = r1[c] + r2[c]
                        v2[c] = r2[c] - r1[c]
                        v3[c] = r1[c] - r3[c]
    return V


@njit(nogil=True, cache=True, fastmath=True)
def winograd_output(M, bias, relu, out):
    """out (n, F, H, W) = A^T m A for every tile of M (16, n*TH*TW, F), plus bias (F,),
    then max(., 0) when ``relu`` (NaN stays NaN)."""
    n, F, H, W = out.shape
    TH, TW = (H + 1) // 2, (W + 1) // 2
    T = TH * TW
    cols = np.empty((2, 4, F), dtype=out.dtype)  # A^T applied down a tile's columns
    y = np.empty((4, F), dtype=out.dtype)  # the tile's 2x2 outputs, each an F-vector
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                for b in range(4):
                    m0, m1, m2, m3 = M[b, t], M[4 + b, t], M[8 + b, t], M[12 + b, t]
                    for f in range(F):
                        cols[0, b, f] = m0[f] + m1[f] + m2[f]
                        cols[1, b, f] = m1[f] - m2[f] - m3[f]
                for a in range(2):  # then A along the rows, plus the bias (and ReLU)
                    c0, c1, c2, c3 = cols[a, 0], cols[a, 1], cols[a, 2], cols[a, 3]
                    left, right = y[2 * a], y[2 * a + 1]
                    for f in range(F):
                        u = c0[f] + c1[f] + c2[f] + bias[f]
                        v = c1[f] - c2[f] - c3[f] + bias[f]
                        if relu:
                            u = 0 if u < 0 else u
                            v = 0 if v < 0 else v
                        left[f] = u
                        right[f] = v
                for a in range(2):  # into NCHW, dropping a last odd row or column
                    h = 2 * i + a
                    if h < H:
                        for b in range(2):
                            w = 2 * j + b
                            if w < W:
                                yy = y[2 * a + b]
                                for f in range(F):
                                    out[img, f, h, w] = yy[f]
    return out


@njit(nogil=True, cache=True, fastmath=True)
def winograd_grad_output(dout, Y):
    """Y (16, n*TH*TW, F) = A dY A^T for every tile's 2x2 block dY of dout (n, F, H, W),
    with zeros past an odd last row or column: the weight gradient's transform."""
    n, F, H, W = dout.shape
    TH, TW = (H + 1) // 2, (W + 1) // 2
    T = TH * TW
    # dout zero-padded to whole tiles and channels last, as in winograd_input
    dp = np.zeros((n, 2 * TH, 2 * TW, F), dtype=dout.dtype)
    for img in range(n):
        for f in range(F):
            for h in range(H):
                for w in range(W):
                    dp[img, h, w, f] = dout[img, f, h, w]
    z = np.empty((2, 4, F), dtype=dout.dtype)  # A applied along each of the 2 rows
    for img in range(n):
        for i in range(TH):
            for j in range(TW):
                t = img * T + i * TW + j
                for r in range(2):
                    y0, y1 = dp[img, 2 * i + r, 2 * j], dp[img, 2 * i + r, 2 * j + 1]
                    for f in range(F):
                        z[r, 0, f] = y0[f]
                        z[r, 1, f] = y0[f] + y1[f]
                        z[r, 2, f] = y0[f] - y1[f]
                        z[r, 3, f] = -y1[f]
                for b in range(4):  # then A down the columns
                    z0, z1 = z[0, b], z[1, b]
                    o0, o1, o2, o3 = Y[b, t], Y[4 + b, t], Y[8 + b, t], Y[12 + b, t]
                    for f in range(F):
                        o0[f] = z0[f]
                        o1[f] = z0[f] + z1[f]
                        o2[f] = z0[f] - z1[f]
                        o3[f] = -z1[f]
    return Y
