"""Batch-norm passes: per-channel statistics and per-channel affine maps over NCHW arrays,
in the naive tier (loops over the values, the sums written out), the NumPy tier (a line or
two of array maths each) and the Numba tier, which does each in one parallel pass.
``engine.batchnorm`` combines them into batch norm's forward and backward
(``functional.batchnorm`` has the maths).

Shapes: x, y, dout (N, C, H, W); every per-channel vector (C,).
"""

from __future__ import annotations

import numpy as np

from minicnn.kernels import dispatch
from minicnn.kernels._numba import parallel_njit, prange, uint64


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


# --------------------------------------------------------------------------- naive tier
def channel_moments_naive(x):
    """mean[c] = sum of x[n, c, h, w] / M and var[c] = sum of (x - mean[c])^2 / M over
    n, h, w (M = N*H*W values a channel)."""
    N, C, H, W = x.shape
    M = N * H * W
    mean, var = np.zeros(C), np.zeros(C)
    for n, c, h, w in np.ndindex(x.shape):
        mean[c] += x[n, c, h, w]
    mean /= M
    for n, c, h, w in np.ndindex(x.shape):
        var[c] += (x[n, c, h, w] - mean[c]) ** 2
    var /= M
    return mean.astype(x.dtype), var.astype(x.dtype)


def channel_sums_naive(dout, y, relu_out=None, center=None):
    """s[c] = sum of g and sx[c] = sum of g * (y - center[c]), g = dout (0 where relu_out
    is given and not positive)."""
    C = dout.shape[1]
    s, sx = np.zeros(C), np.zeros(C)
    for n, c, h, w in np.ndindex(dout.shape):
        g = dout[n, c, h, w]
        if relu_out is not None:
            g = g * (relu_out[n, c, h, w] > 0)  # as the other tiers gate (inf * 0 is NaN)
        s[c] += g
        sx[c] += g * (y[n, c, h, w] - (0.0 if center is None else center[c]))
    return s.astype(dout.dtype), sx.astype(dout.dtype)


def channel_normalize_naive(x, center, scale, gamma, beta, relu=False):
    out = np.empty_like(x)
    for n, c, h, w in np.ndindex(x.shape):
        v = (x[n, c, h, w] - center[c]) * scale[c] * gamma[c] + beta[c]
        out[n, c, h, w] = 0 if relu and v < 0 else v
    return out


def channel_affine2_naive(x, x_scale, y, y_scale, shift, relu_out=None, center=None):
    out = np.empty_like(x)
    for n, c, h, w in np.ndindex(x.shape):
        xv = x[n, c, h, w] * (True if relu_out is None else relu_out[n, c, h, w] > 0)
        yv = y[n, c, h, w] - (0.0 if center is None else center[c])
        out[n, c, h, w] = xv * x_scale[c] + yv * y_scale[c] + shift[c]
    return out


# --------------------------------------------------------------------------- NumPy tier
def channel_moments_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, biased variance) per channel over N, H, W; two passes, for accuracy."""
    mean = x.mean(axis=(0, 2, 3))
    xc = x - _per_channel(mean)
    return mean, np.einsum("nchw,nchw->c", xc, xc) / (x.size // x.shape[1])


def channel_sums_numpy(dout, y, relu_out=None, center=None):
    """(sum(g), sum(g * (y - center))) per channel, g = dout, gated by ``relu_out`` > 0 if
    given; center None: 0."""
    if relu_out is not None:
        dout = dout * (relu_out > 0)
    if center is not None:
        y = y - _per_channel(center)
    return dout.sum(axis=(0, 2, 3)), np.einsum("nchw,nchw->c", dout, y)


def channel_normalize_numpy(x, center, scale, gamma, beta, relu=False):
    """out = (x - center) * scale * gamma + beta (then ReLU)."""
    out = x - _per_channel(center)
    out *= _per_channel(scale)
    out *= _per_channel(gamma)
    out += _per_channel(beta)
    if relu:
        np.maximum(out, 0, out=out)
    return out


def channel_affine2_numpy(x, x_scale, y, y_scale, shift, relu_out=None, center=None):
    """x * x_scale + (y - center) * y_scale + shift, x gated by ``relu_out`` > 0 if given;
    center None: 0."""
    if relu_out is not None:
        x = x * (relu_out > 0)
    if center is not None:
        y = y - _per_channel(center)
    out = x * _per_channel(x_scale)
    out += y * _per_channel(y_scale)
    out += _per_channel(shift)
    return out


# --------------------------------------------------------------------------- Numba tier
# Let LLVM reorder the additions of a sum so it can keep several partial sums in SIMD
# registers; a strict left-to-right float sum is bound by the add latency.
_REASSOCIATE = {"reassoc", "contract"}


@parallel_njit(nogil=True, cache=True, fastmath=_REASSOCIATE)
def channel_moments_numba(x):
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


@parallel_njit(nogil=True, cache=True, fastmath=_REASSOCIATE)
def channel_sums_numba(dout, y, center, gate, relu):
    """Per-channel sum(g) and sum(g * (y - center)) over (N, H, W), in one pass, float64,
    where g = dout, or with ``relu`` g = dout where gate > 0 else 0 (the gradient through
    a ReLU fused after batch norm, whose output ``gate`` is; otherwise ``gate`` is not
    read)."""
    N, C, H, W = dout.shape
    df = dout.reshape(N, C, H * W)
    yf = y.reshape(N, C, H * W)
    gf = gate.reshape(N, C, H * W)
    s = np.empty(C, dtype=np.float64)
    sx = np.empty(C, dtype=np.float64)
    for c in prange(C):
        a = 0.0
        b = 0.0
        m = center[c]
        for n in range(N):
            for i in range(H * W):
                d = df[n, c, i]
                if relu:  # loop-invariant: LLVM compiles the loop once for each value
                    d = d * (gf[n, c, i] > 0)
                a += d
                b += d * (yf[n, c, i] - m)
        s[c] = a
        sx[c] = b
    return s, sx


@parallel_njit(nogil=True, cache=True)
def channel_normalize_numba(x, center, scale, gamma, beta, relu):
    """Batch norm's forward in one pass over x (N, C, H, W), per channel c:
    out = xhat * gamma[c] + beta[c] with xhat = (x - center[c]) * scale[c], or with
    ``relu`` max(that, 0) (NaN stays NaN). xhat is not stored: backward recomputes it
    from x (``engine.batchnorm``).

    Subtracting the centre first (not folding it into a shift) avoids cancellation when a
    channel's mean is large next to its spread.
    """
    N, C, H, W = x.shape
    P = H * W
    xf = x.reshape(x.size)
    out = np.empty_like(xf)
    for nc in prange(N * C):
        c = nc % C
        m, a, g, b = center[c], scale[c], gamma[c], beta[c]
        o = uint64(nc * P)
        for i in range(uint64(P)):
            y = (xf[o + i] - m) * a * g + b
            if relu:
                y = 0 if y < 0 else y
            out[o + i] = y
    return out.reshape(N, C, H, W)


@parallel_njit(nogil=True, cache=True)
def channel_affine2_numba(x, x_scale, y, center, y_scale, shift, gate, relu):
    """out[n, c] = x[n, c] * x_scale[c] + (y[n, c] - center[c]) * y_scale[c] + shift[c];
    x, y (N, C, H, W). With ``relu``, x counts only where gate > 0 (``channel_sums``)."""
    N, C, H, W = x.shape
    P = H * W
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    gf = gate.reshape(gate.size)
    out = np.empty_like(xf)
    for nc in prange(N * C):
        c = nc % C
        a, b, d, m = x_scale[c], y_scale[c], shift[c], center[c]
        o = uint64(nc * P)
        for i in range(uint64(P)):
            v = xf[o + i]
            if relu:
                v = v * (gf[o + i] > 0)
            out[o + i] = v * a + (yf[o + i] - m) * b + d
    return out.reshape(N, C, H, W)


def channel_moments(x: np.ndarray, tier: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (mean (C,), biased variance (C,)) over N, H, W, in x's dtype."""
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return channel_moments_naive(x)
    if tier == "numba":
        mean, var = dispatch.run(channel_moments_numba, x.nbytes, np.ascontiguousarray(x))
        return mean.astype(x.dtype), var.astype(x.dtype)
    return channel_moments_numpy(x)


def channel_sums(dout: np.ndarray, y: np.ndarray, relu_out: np.ndarray | None = None,
                 tier: str | None = None,
                 center: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """dout, y (N, C, H, W) -> (sum(g), sum(g * (y - center))), each (C,) over N, H, W,
    where g = dout, or dout where ``relu_out`` > 0 (a ReLU fused after batch norm:
    ``relu_out`` is its output); center (C,), None: 0."""
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return channel_sums_naive(dout, y, relu_out, center)
    if tier == "numba":
        gate = y if relu_out is None else np.ascontiguousarray(relu_out)
        center = np.zeros(y.shape[1], y.dtype) if center is None else center.astype(y.dtype)
        s, sx = dispatch.run(channel_sums_numba, dout.nbytes, np.ascontiguousarray(dout),
                             np.ascontiguousarray(y), center, gate, relu_out is not None)
        return s.astype(dout.dtype), sx.astype(dout.dtype)
    return channel_sums_numpy(dout, y, relu_out, center)


def channel_normalize(x: np.ndarray, center: np.ndarray, scale: np.ndarray, gamma: np.ndarray,
                      beta: np.ndarray, relu: bool = False,
                      tier: str | None = None) -> np.ndarray:
    """Batch norm's forward map for x (N, C, H, W) and per-channel (C,) factors:
    out = (x - center) * scale * gamma + beta (``relu``: max(that, 0))."""
    center, scale, gamma, beta = (v.astype(x.dtype, copy=False)
                                  for v in (center, scale, gamma, beta))
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return channel_normalize_naive(x, center, scale, gamma, beta, relu)
    if tier == "numba":
        return dispatch.run(channel_normalize_numba, x.nbytes, np.ascontiguousarray(x),
                            center, scale, gamma, beta, relu)
    return channel_normalize_numpy(x, center, scale, gamma, beta, relu)


def channel_affine2(x: np.ndarray, x_scale: np.ndarray, y: np.ndarray, y_scale: np.ndarray,
                    shift: np.ndarray, relu_out: np.ndarray | None = None,
                    tier: str | None = None, center: np.ndarray | None = None) -> np.ndarray:
    """x * x_scale + (y - center) * y_scale + shift for x, y (N, C, H, W) and per-channel
    (C,) factors (center None: 0); with ``relu_out``, x counts only where relu_out > 0 (as
    in ``channel_sums``)."""
    x_scale, y_scale, shift = (v.astype(x.dtype, copy=False) for v in (x_scale, y_scale, shift))
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return channel_affine2_naive(x, x_scale, y, y_scale, shift, relu_out, center)
    if tier == "numba":
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        gate = y if relu_out is None else np.ascontiguousarray(relu_out)
        center = np.zeros(y.shape[1], y.dtype) if center is None else center.astype(y.dtype)
        return dispatch.run(channel_affine2_numba, x.nbytes, x, x_scale, y, center, y_scale,
                            shift, gate, relu_out is not None)
    return channel_affine2_numpy(x, x_scale, y, y_scale, shift, relu_out, center)
