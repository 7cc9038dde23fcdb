"""The fast batch norm: ``functional.batchnorm``'s function (which has the maths) in
whole-array passes of the batch-norm kernels (``kernels/batchnorm.py``): one for the
statistics, one for the output, and two for backward, with a fused ReLU's gating done
inside those passes, so neither the un-rectified output nor the gated gradient is ever
stored. Nor is xhat: forward keeps its input x (which costs no memory: the array exists
anyway) and backward's passes use xhat = (x - mu) * inv_std as they read x, which saves
forward a write pass over an array the size of the input."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import kernels
from minicnn.functional.batchnorm import update_running_stats


class Cache(NamedTuple):
    x: np.ndarray        # (N, C, H, W) the input
    mean: np.ndarray     # (C,) the mean it was normalised with (the batch's or the running)
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps)
    gamma: np.ndarray    # (C,)
    training: bool
    out: np.ndarray | None = None  # the output, when a ReLU is fused (its mask)


def batchnorm2d_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
    running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5, training: bool = True,
    relu: bool = False,
) -> tuple[np.ndarray, Cache]:
    """x (N, C, H, W) -> out (N, C, H, W), as ``functional.batchnorm2d_forward``."""
    if training:
        mu, var = kernels.channel_moments(x)  # one parallel pass per channel
        update_running_stats(running_mean, running_var, mu, var, x.shape, momentum)
    else:
        mu, var = running_mean.astype(x.dtype), running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    # one fused per-channel pass: out = (x - mu) * inv_std * gamma + beta
    out = kernels.channel_normalize(x, mu, inv_std, gamma, beta, relu=relu)
    return out, Cache(x, mu, inv_std, gamma, training, out if relu else None)


def batchnorm2d_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, C, H, W) -> (dx, dgamma (C,), dbeta (C,))."""
    x, mu, inv_std, gamma, training, relu_out = cache
    # sum(g), sum(g * xhat) with g = dout, gated by the fused ReLU's output if there is one
    dbeta, dgamma = kernels.channel_sums(dout, x, relu_out, center=mu)
    dgamma = dgamma * inv_std
    scale = gamma * inv_std
    if not training:
        if relu_out is not None:
            dout = dout * (relu_out > 0)
        return dout * scale.reshape(1, -1, 1, 1), dgamma, dbeta
    M = dout.size // dout.shape[1]
    # dx = scale * (g - dbeta / M - xhat * dgamma / M), fused into one pass
    dx = kernels.channel_affine2(dout, scale, x, -scale * dgamma * inv_std / M,
                                 -scale * dbeta / M, relu_out, center=mu)
    return dx, dgamma, dbeta
