"""The fast batch norm: ``functional.batchnorm``'s function (which has the maths) in
whole-array passes of the batch-norm kernels (``kernels/batchnorm.py``): one for the
statistics, one for xhat and the output, and two for backward, with a fused ReLU's
gating done inside those passes, so neither the un-rectified output nor the gated
gradient is ever stored. In eval mode forward writes only the output (xhat is a second
array the size of the input that only a backward pass would read) and keeps x instead,
from which a backward pass recomputes xhat."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import kernels
from minicnn.functional.batchnorm import BatchNormCache, update_running_stats


class EvalCache(NamedTuple):
    """What an eval-mode forward keeps: its input, not xhat."""
    x: np.ndarray        # (N, C, H, W)
    mean: np.ndarray     # (C,) the running mean it was normalised with
    inv_std: np.ndarray  # (C,)
    gamma: np.ndarray    # (C,)
    out: np.ndarray | None = None  # the output, when a ReLU is fused (its mask)


def batchnorm2d_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
    running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5, training: bool = True,
    relu: bool = False,
) -> tuple[np.ndarray, BatchNormCache | EvalCache]:
    """x (N, C, H, W) -> out (N, C, H, W), as ``functional.batchnorm2d_forward``."""
    if training:
        mu, var = kernels.channel_moments(x)  # one parallel pass per channel
        update_running_stats(running_mean, running_var, mu, var, x.shape, momentum)
    else:
        mu, var = running_mean.astype(x.dtype), running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    # one fused per-channel pass: xhat = (x - mu) * inv_std, out = xhat * gamma + beta
    xhat, out = kernels.channel_normalize(x, mu, inv_std, gamma, beta, relu=relu,
                                          keep_xhat=training)
    relu_out = out if relu else None
    if not training:
        return out, EvalCache(x, mu, inv_std, gamma, relu_out)
    return out, BatchNormCache(xhat, inv_std, gamma, training, relu_out)


def batchnorm2d_backward(
    dout: np.ndarray, cache: BatchNormCache | EvalCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, C, H, W) -> (dx, dgamma (C,), dbeta (C,))."""
    if isinstance(cache, EvalCache):
        x, mu, inv_std, gamma, relu_out = cache
        xhat = (x - mu.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)
        training = False
    else:
        xhat, inv_std, gamma, training, relu_out = cache
    # sum(g), sum(g * xhat) with g = dout, gated by the fused ReLU's output if there is one
    dbeta, dgamma = kernels.channel_sums(dout, xhat, relu_out)
    scale = gamma * inv_std
    if not training:
        if relu_out is not None:
            dout = dout * (relu_out > 0)
        return dout * scale.reshape(1, -1, 1, 1), dgamma, dbeta
    M = dout.size // dout.shape[1]
    # dx = scale * (g - dbeta / M - xhat * dgamma / M), fused into one pass
    dx = kernels.channel_affine2(dout, scale, xhat, -scale * dgamma / M, -scale * dbeta / M,
                                 relu_out)
    return dx, dgamma, dbeta
