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

Three tiers live here, side by side: ``*_naive`` loops that read like the definition,
``*_numpy`` versions built on a strided view, and the Numba tier (``*_numba``) that the
engine uses; the public ``im2col``, ``im2col_into``, ``col2im`` and ``regroup_add_bias``
at the end pick one (``kernels.dispatch``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minicnn.kernels import dispatch
from minicnn.kernels._numba import njit, parallel_njit, prange, uint64


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
    """Naive im2col: x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW). Loops only."""
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
    """Naive col2im: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), adding overlaps."""
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


# --------------------------------------------------------------------------- Numba tier
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
    once per call: on small maps the integer divisions cost more than a row's copy."""
    lo = np.empty(K, dtype=np.int64)
    hi = np.empty(K, dtype=np.int64)
    for k in range(K):
        lo[k], hi[k] = _valid_range(k, stride, padding, size, out_size)
    return lo, hi


@parallel_njit(nogil=True, cache=True)
def im2col_numba(x, KH, KW, stride, padding, OH, OW, cols):
    """Fill cols (C*KH*KW, N*OH*OW) from a C-contiguous x (N, C, H, W) (layout above);
    one thread per KW rows, each row written contiguously, the padding's entries zeroed."""
    N, C, H, W = x.shape
    xf = x.reshape(x.size)
    cf = cols.reshape(cols.size)
    P = OH * OW
    oh_los, oh_his = _tap_ranges(KH, stride, padding, H, OH)
    ow_los, ow_his = _tap_ranges(KW, stride, padding, W, OW)
    # "same" convolution (stride 1, output as large as the input, e.g. 3x3 with padding
    # 1): output position d = oh*W + ow reads input pixel d + (kh - p)*W + (kw - p), one
    # fixed offset, so an image's whole stretch of row k is a single contiguous copy; only
    # the padded border is then zeroed (faster than row by row on small maps).
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
                    # the copied range: valid output rows, source inside the plane,
                    # 0 <= lo <= hi <= P (a tap off the image copies nothing)
                    lo = min(max(oh_lo * W, -off, 0), P)
                    hi = max(min(oh_hi * W, H * W - off, P), lo)
                    _zero(cf, r0, r0 + lo)
                    dst, src = uint64(r0 + lo), uint64(s0 + off + lo)
                    # (i * one, with one == 1: a stride LLVM does not know keeps this a
                    # vector loop instead of a memcpy call, whose "rep movsb" is slow on
                    # AMD Zen for unlike alignments; see the performance chapter)
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


@parallel_njit(nogil=True, cache=True)
def col2im_numba(cols, KH, KW, stride, padding, OH, OW, dx):
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


@njit(cache=True, inline="always")
def add_bias_row(dst, src, b, relu):
    """dst[p] = src[p] + b, then max(., 0) when ``relu``: one output row (both rows slices
    indexed from 0, which LLVM vectorises; src may be dst)."""
    if relu:
        for p in range(dst.size):
            dst[p] = max(src[p] + b, 0)
    else:
        for p in range(dst.size):
            dst[p] = src[p] + b


@parallel_njit(nogil=True, cache=True)
def regroup_add_bias_numba(y, bias, out, relu):
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
        # both rows as slices indexed from 0: LLVM vectorises that loop, not one indexed
        # src[i * P + p] (measured in benchmarks/README.md)
        add_bias_row(out[i, f], y[f, i * P:(i + 1) * P], bias[f], relu)
    return out


# --------------------------------------------------------------------------- entry points
def im2col(x: np.ndarray, KH: int, KW: int, stride: int = 1, padding: int = 0,
           tier: str | None = None) -> np.ndarray:
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), in the given (or the default) tier."""
    name = dispatch.resolve(tier)
    if name == "naive":
        return im2col_naive(x, KH, KW, stride, padding)
    if name == "numpy":
        return im2col_numpy(x, KH, KW, stride, padding)
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    return im2col_into(x, KH, KW, stride, padding, cols, tier=name)


def im2col_into(x: np.ndarray, KH: int, KW: int, stride: int, padding: int,
                out: np.ndarray, tier: str | None = None) -> np.ndarray:
    """Like ``im2col`` but writes into a preallocated ``out`` (reused across steps)."""
    name = dispatch.resolve(tier)
    if name != "numba":
        out[...] = im2col(x, KH, KW, stride, padding, tier=name)
        return out
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    return dispatch.run(im2col_numba, out.nbytes, np.ascontiguousarray(x), KH, KW, stride,
                        padding, OH, OW, out)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], KH: int, KW: int,
           stride: int = 1, padding: int = 0, tier: str | None = None,
           out: np.ndarray | None = None) -> np.ndarray:
    """cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows; into
    ``out`` when given."""
    name = dispatch.resolve(tier)
    if name == "numba":
        N, C, H, W = x_shape
        OH, OW = output_hw(H, W, KH, KW, stride, padding)
        target = out if out is not None else np.empty(x_shape, dtype=cols.dtype)
        return dispatch.run(col2im_numba, cols.nbytes, np.ascontiguousarray(cols), KH, KW,
                            stride, padding, OH, OW, target)
    tier_fn = col2im_naive if name == "naive" else col2im_numpy
    dx = tier_fn(cols, x_shape, KH, KW, stride, padding)
    if out is None:
        return dx
    out[...] = dx
    return out


def regroup_add_bias(y: np.ndarray, bias: np.ndarray | None, out: np.ndarray,
                     tier: str | None = None, relu: bool = False) -> np.ndarray:
    """out (n, F, P) = y (F, n*P) with its columns regrouped by image, plus bias (F,) (None:
    no bias), then max(., 0) if ``relu``: a conv chunk's GEMM result into NCHW."""
    n, F, P = out.shape
    if dispatch.resolve(tier) == "numba" and y.flags.c_contiguous and out.flags.c_contiguous:
        b = np.zeros(F, dtype=out.dtype) if bias is None else bias.astype(out.dtype, copy=False)
        return dispatch.run(regroup_add_bias_numba, out.nbytes, y, b, out, relu)
    yt = y.reshape(F, n, P).transpose(1, 0, 2)
    if bias is None:
        np.copyto(out, yt)
    else:
        np.add(yt, bias.reshape(1, F, 1), out=out)
    if relu:
        np.maximum(out, 0, out=out)
    return out
