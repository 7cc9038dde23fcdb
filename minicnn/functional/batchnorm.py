"""Batch normalisation over (N, H, W) for each channel of an NCHW tensor. The reference;
``engine.batchnorm`` computes the same in fused Numba passes.

Training (Ioffe & Szegedy 2015, Algorithm 1), per channel c with M = N*H*W values:

    mu = mean(x),  var = mean((x - mu)^2)            (biased: used to normalise)
    xhat = (x - mu) / sqrt(var + eps),  out = gamma * xhat + beta
    running_mean = (1 - momentum) * running_mean + momentum * mu
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

The running variance is the unbiased one, exactly PyTorch's convention; evaluation
normalises with the running statistics instead of the batch's.

Backward. dgamma = sum(dout * xhat) and dbeta = sum(dout), over N, H, W. For dx, the
chain rule runs through xhat directly and through mu and var, which every x of the
channel moved; with dxhat = gamma * dout, dvar = sum(dxhat * (x - mu)) * -(var+eps)^-1.5 / 2
and dmu = -sum(dxhat) / sqrt(var + eps) (its term through var sums to zero), so
dx = dxhat / sqrt(var+eps) + dvar * 2 (x - mu) / M + dmu / M, which simplifies to

    dx = gamma / sqrt(var + eps) / M * (M * dout - sum(dout) - xhat * sum(dout * xhat))

In eval mode mu and var are constants, so dx = dout * gamma / sqrt(running_var + eps).

``relu=True`` fuses a ReLU after the batch norm: out = max(gamma * xhat + beta, 0). Its
backward first gates the upstream gradient, g = dout * (out > 0), then runs the formulas
above with g for dout.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class BatchNormCache(NamedTuple):
    xhat: np.ndarray     # (N, C, H, W) normalised input
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps)
    gamma: np.ndarray    # (C,)
    training: bool
    out: np.ndarray | None = None  # (N, C, H, W) the output, when a ReLU is fused (its mask)


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


def update_running_stats(running_mean: np.ndarray, running_var: np.ndarray, mu: np.ndarray,
                         var: np.ndarray, x_shape: tuple[int, ...], momentum: float) -> None:
    """Move the running statistics (C,) in place toward the batch's mu and var (C,),
    the variance unbiased by M / (M - 1) (M = N*H*W values per channel)."""
    N, C, H, W = x_shape
    M = N * H * W
    if M < 2:
        raise ValueError("batch norm in training mode needs more than one value per channel")
    running_mean *= 1 - momentum
    running_mean += momentum * mu
    running_var *= 1 - momentum
    running_var += momentum * var * (M / (M - 1))


def batchnorm2d_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
    running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5, training: bool = True,
    relu: bool = False,
) -> tuple[np.ndarray, BatchNormCache]:
    """Inputs: x (N, C, H, W); gamma, beta, running_mean, running_var (C,) (the running
    statistics are updated in place when ``training``); ``relu``: return max(out, 0).
    Returns: out (N, C, H, W) and the cache for ``batchnorm2d_backward``."""
    if training:
        mu = x.mean(axis=(0, 2, 3))
        var = ((x - _per_channel(mu)) ** 2).mean(axis=(0, 2, 3))
        update_running_stats(running_mean, running_var, mu, var, x.shape, momentum)
    else:
        mu, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - _per_channel(mu).astype(x.dtype)) * _per_channel(inv_std)
    out = xhat * _per_channel(gamma.astype(x.dtype)) + _per_channel(beta.astype(x.dtype))
    if relu:
        out = np.maximum(out, 0)
    return out, BatchNormCache(xhat, inv_std, gamma, training, out if relu else None)


def batchnorm2d_backward(
    dout: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs: dout (N, C, H, W); the forward's cache.
    Returns: dx (N, C, H, W), dgamma (C,), dbeta (C,) (derivation: module docstring)."""
    xhat, inv_std, gamma, training, relu_out = cache
    if relu_out is not None:
        dout = dout * (relu_out > 0)
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    scale = _per_channel(gamma * inv_std)
    if not training:
        return dout * scale, dgamma, dbeta
    M = dout.size // dout.shape[1]
    dx = scale / M * (M * dout - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    return dx, dgamma, dbeta
