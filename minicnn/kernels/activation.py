"""ReLU kernels: out = max(x, 0) and its gradient, dx = dout where out > 0, in the naive
(a loop over the values), NumPy and Numba tiers."""

from __future__ import annotations

import numpy as np

from minicnn.kernels import dispatch
from minicnn.kernels._numba import parallel_njit, prange


def relu_forward_naive(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        out[i] = 0 if x[i] < 0 else x[i]  # NaN is not < 0: it stays NaN
    return out


def relu_backward_naive(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    dx = np.empty_like(dout)
    for i in np.ndindex(dout.shape):
        dx[i] = dout[i] * (out[i] > 0)
    return dx


def relu_forward_numpy(x: np.ndarray) -> np.ndarray:
    """max(x, 0), a new array of x's shape and dtype (NaN stays NaN)."""
    return np.maximum(x, 0)


def relu_backward_numpy(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dout where the ReLU output ``out`` is positive, else 0."""
    return dout * (out > 0)


@parallel_njit(nogil=True, cache=True)
def relu_forward_numba(x):
    """max(x, 0) in one parallel pass; NaN stays NaN (as with ``np.maximum``).

    Each block is a pair of contiguous slices walked from index 0: LLVM vectorises that
    loop, and not one from ``b * block`` to ``min(n, ...)`` over the whole array.
    """
    out = np.empty_like(x)
    fx = x.reshape(-1)
    fo = out.reshape(-1)
    n = fx.size
    block = 16384
    for b in prange((n + block - 1) // block):
        start = b * block
        xs, os_ = fx[start:start + block], fo[start:start + block]
        for i in range(xs.size):
            v = xs[i]
            os_[i] = 0 if v < 0 else v
    return out


@parallel_njit(nogil=True, cache=True)
def relu_backward_numba(dout, out):
    """dx = dout where out > 0 else 0, in one pass (no boolean temporary), blocks as in
    ``relu_forward_numba``.

    Written as a multiply by the comparison, not as ``dout if out > 0 else 0``: the branch
    is unpredictable on real activations (about half are zero) and keeps the loop from
    vectorising.
    """
    dx = np.empty_like(dout)
    fd = dout.reshape(-1)
    fo = out.reshape(-1)
    fx = dx.reshape(-1)
    n = fd.size
    block = 16384
    for b in prange((n + block - 1) // block):
        start = b * block
        ds, os_, xs = fd[start:start + block], fo[start:start + block], fx[start:start + block]
        for i in range(ds.size):
            xs[i] = ds[i] * (os_[i] > 0)
    return dx


def relu_forward(x: np.ndarray, tier: str | None = None) -> np.ndarray:
    """max(x, 0), a new array of x's shape and dtype (NaN stays NaN)."""
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return relu_forward_naive(x)
    if tier == "numba" and x.flags.c_contiguous:
        return dispatch.run(relu_forward_numba, x.nbytes, x)
    return relu_forward_numpy(x)


def relu_backward(dout: np.ndarray, out: np.ndarray, tier: str | None = None) -> np.ndarray:
    """dx = dout where the ReLU output is positive, else 0 (same shape and dtype as dout)."""
    tier = dispatch.resolve(tier)
    if tier == "naive":
        return relu_backward_naive(dout, out)
    if tier == "numba" and dout.flags.c_contiguous and out.flags.c_contiguous:
        return dispatch.run(relu_backward_numba, dout.nbytes, dout, out)
    return relu_backward_numpy(dout, out)
