"""Numba tier of the hot kernels: same contracts as ``im2col.py`` and ``pool.py``.

Every kernel here is ``@njit(cache=True)`` (compiled once, cached on disk next to this
file), ``nogil=True`` (the convolutions call im2col and col2im from several Python threads
at once: ``minicnn.threads``) and ``parallel=True`` with ``prange`` over independent
outputs, so two threads never write the same element:

* ``im2col``  : one thread per KW rows k = (c, kh, 0..KW-1) of ``cols``; each row is
  written contiguously. Instead of padding the input (a full copy) the valid output range of
  each row is computed once and the rest is zero-filled.
* ``col2im``  : one thread per (n, c) image plane of ``dx``; all KH*KW rows that touch that
  plane are added by the same thread, so the accumulation is race-free. With stride 1
  and a 3-wide kernel, a row's three taps are added in one loop.
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
                    # (i * one, with one == 1: a stride LLVM does not know keeps this a
                    # vector loop, where a plain copy loop becomes a call to memcpy, whose
                    # "rep movsb" is slower on AMD Zen for copies whose source and
                    # destination are not aligned alike: 8 images of 32 x 48 x 48, out of
                    # cache, 1.1x faster on one core and 1.3x on two; the same in cache)
                    one = uint64(stride)
                    for i in range(uint64(hi - lo)):
                        cf[dst + i] = xf[src + i * one]
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


@njit(cache=True, inline="always")
def _col2im_edge(df, cf, i, j, NP, ow0, OW):
    """df[i] += the taps kw = 0, 1, 2 of a 3-wide row whose output column ow0 - kw lands
    on the output (0 <= ow0 - kw < OW); tap kw reads cf[j - kw + kw * NP]."""
    for kw in range(3):
        if 0 <= ow0 - kw < OW:
            df[i] += cf[j + kw * (NP - 1)]


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
    # Stride 1 with three taps per row (every 3x3 convolution's dx): a row of dx takes its
    # three taps' rows of cols in one pass, dx[w] += c0[w + p] + c1[w + p - 1] + c2[w + p - 2]
    # over the columns where all three land on the image, and the one or two columns at
    # either edge tap by tap. One loop instead of three of about a row's length each:
    # such short loops cost more to enter and leave than their adds.
    three = stride == 1 and KW == 3
    w_lo = min(max(0, 2 - padding), W)  # columns w with 0 <= w - kw + p < OW for every kw
    w_hi = max(min(W, OW - padding), w_lo)
    NP = N * P  # from one tap's row of cols to the next one's
    for cn in prange(N * C):
        c = cn // N
        n = cn - c * N
        p0 = (n * C + c) * H * W
        _zero(df, p0, p0 + H * W)
        for kh in range(KH):
            oh_lo, oh_hi = oh_los[kh], oh_his[kh]
            if three:
                for oh in range(oh_lo, oh_hi):
                    d = p0 + (oh + kh - padding) * W  # the dx row
                    r = ((c * KH + kh) * KW * N + n) * P + oh * OW  # tap kw = 0's row
                    dst = uint64(d + w_lo)
                    s0 = uint64(r + w_lo + padding)
                    s1 = uint64(r + NP + w_lo + padding - 1)
                    s2 = uint64(r + 2 * NP + w_lo + padding - 2)
                    for i in range(uint64(w_hi - w_lo)):
                        df[dst + i] += cf[s0 + i] + cf[s1 + i] + cf[s2 + i]
                    for w in range(w_lo):  # the edges
                        _col2im_edge(df, cf, d + w, r + w + padding, NP, w + padding, OW)
                    for w in range(w_hi, W):
                        _col2im_edge(df, cf, d + w, r + w + padding, NP, w + padding, OW)
                continue
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


# Winograd F(m x m, 3x3) transforms, m = 2, 3 or 4 (see kernels/winograd.py for the maths,
# the layouts and the NumPy tier). Serial: ``functional.conv`` runs them inside its
# batch-parallel threads. Each 2-D transform of a tile is a 1-D one down its columns,
# then along its rows. A 1-D transform reads vectors src[p], src[p + ps], ... and writes
# dst[q], dst[q + qs], ...: rows of C-contiguous (rows, channels) arrays, so its loop
# along the channels has a unit stride that LLVM knows, and vectorises. (Strided 2-D
# views of a tile's rows instead, whose inner stride Numba only knows at run time, made
# the transforms 1.3-2.4x slower.) The constants are the rows of B^T, A^T and A.

@njit(nogil=True, cache=True)
def _to_channels_last(x, h_end, w_end, out, padding):
    """out[i, h + padding, w + padding, c] = x[i, c, h, w] for h < h_end, w < w_end.

    A transpose: one side of it is strided whatever the loop order. This one reads x in
    memory order, where a convolution's input usually comes from (a chunk of a batch far
    larger than the caches), and scatters into ``out``, which stays in cache. Reading x
    row by row across the channels instead (64 strided streams at once) measured 2-3x
    faster on an input already in cache, but made a 64 -> 64 channel 24x24 layer's
    forward + backward 1.2x slower at batch 64 on 2 cores."""
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


@njit(nogil=True, cache=True, fastmath=True)
def winograd_input(x, V, padding, m):
    """V (alpha^2, n*TH*TW, C) = B^T d B for every alpha x alpha tile d of x (n, C, H, W)
    padded by ``padding``, the m x m tiles covering the (H + 2*padding - 2) x
    (W + 2*padding - 2) output."""
    n, C, H, W = x.shape
    A = m + 2
    TH, TW = (H + 2 * padding - 3 + m) // m, (W + 2 * padding - 3 + m) // m
    T = TH * TW
    HP, WP = m * TH + 2, m * TW + 2
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
def winograd_output(M, bias, relu, out, m):
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
            # row or column; a row of tiles at a time, so each output row is written
            # whole (measured: as fast as writing each tile's pixels into the F planes at
            # once in a 24x24 layer on 2 cores, 1.4x faster at 12x12 on one core)
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
def winograd_grad_output(dout, Y, m):
    """Y (alpha^2, n*TH*TW, F) = A dY A^T for every tile's m x m block dY of
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
    out = Y.reshape(A * A * nT, F)
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
    return Y


# The weight transforms. As NumPy GEMMs with K = 9 (``kernels/winograd.py``) they ran on
# one thread (a multi-threaded BLAS call leaves a spinning thread behind: see
# ``threads.blas_threads``) and took 9% of the default model's training step on 2 cores
# (18-20 ms of 208-227), all of it serial. As parallel loops over the channels, on 2
# cores: U 2-3x faster for 128 and 256 channels (256 -> 256: 0.9 against 2.0-2.6 ms),
# the weight gradient 1.2-1.4x (with the threads' parts summed in the same pass).

@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def winograd_weights(w, GG):
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


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def winograd_weight_grad(dU, GG):
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
