"""Batch normalisation over (N, H, W) for each channel of an NCHW tensor.

Training (Ioffe & Szegedy 2015, Algorithm 1), per channel c with M = N*H*W values:

    mu = mean(x),  var = mean((x - mu)^2)            (biased: used to normalise)
    xhat = (x - mu) / sqrt(var + eps),  out = gamma * xhat + beta
    running_mean = (1 - momentum) * running_mean + momentum * mu
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

The running variance is the unbiased one, exactly PyTorch's convention; evaluation
normalises with the running statistics instead of the batch's.

Backward in training mode, the compact form of the chain rule through mu and var:

    dx = gamma / sqrt(var + eps) / M * (M * dout - sum(dout) - xhat * sum(dout * xhat))

In eval mode mu and var are constants, so dx = dout * gamma / sqrt(running_var + eps).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import kernels


class BatchNormCache(NamedTuple):
    xhat: np.ndarray     # (N, C, H, W) normalised input
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps)
    gamma: np.ndarray    # (C,)
    training: bool


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


def batchnorm2d_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
    running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5, training: bool = True,
) -> tuple[np.ndarray, BatchNormCache]:
    """x (N, C, H, W) -> out (N, C, H, W). Updates running_mean/var in place when training."""
    if training:
        N, C, H, W = x.shape
        M = N * H * W
        if M < 2:
            raise ValueError("batch norm in training mode needs more than one value per channel")
        mu, var = kernels.channel_moments(x)  # one parallel pass per channel
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * (M / (M - 1))
    else:
        mu, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    # one fused per-channel pass: xhat = (x - mu) * inv_std, out = xhat * gamma + beta
    xhat, out = kernels.channel_normalize(x, mu, inv_std, gamma, beta)
    return out, BatchNormCache(xhat, inv_std, gamma, training)


def batchnorm2d_backward(
    dout: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, C, H, W) -> (dx, dgamma (C,), dbeta (C,))."""
    xhat, inv_std, gamma, training = cache
    dbeta, dgamma = kernels.channel_sums(dout, xhat)  # sum(dout), sum(dout * xhat)
    if not training:
        return dout * _per_channel(gamma * inv_std), dgamma, dbeta
    N, _, H, W = dout.shape
    M = N * H * W
    # dx = scale * (dout - dbeta / M - xhat * dgamma / M), fused into one pass
    scale = gamma * inv_std
    dx = kernels.channel_affine2(dout, scale, xhat, -scale * dgamma / M, -scale * dbeta / M)
    return dx, dgamma, dbeta
