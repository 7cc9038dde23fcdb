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

``relu=True`` fuses a ReLU after the batch norm: out = max(gamma * xhat + beta, 0),
computed in the same pass. Its backward first gates the upstream gradient,
g = dout * (out > 0), and then runs the formulas above with g for dout; the gating
happens inside the same two passes (``kernels.channel_sums``, ``channel_affine2``), so
neither the un-rectified output nor the gated gradient is ever stored. For the
``default`` model at batch 64 on 2 cores the separate ReLU layer's passes took about 8%
of a training step.
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
    out: np.ndarray | None = None  # (N, C, H, W) the output, when a ReLU is fused (its mask)


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


def batchnorm2d_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
    running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5, training: bool = True,
    relu: bool = False,
) -> tuple[np.ndarray, BatchNormCache]:
    """x (N, C, H, W) -> out (N, C, H, W). Updates running_mean/var in place when training.
    ``relu=True`` returns max(out, 0) (see the module docstring)."""
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
    xhat, out = kernels.channel_normalize(x, mu, inv_std, gamma, beta, relu=relu)
    return out, BatchNormCache(xhat, inv_std, gamma, training, out if relu else None)


def batchnorm2d_backward(
    dout: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout (N, C, H, W) -> (dx, dgamma (C,), dbeta (C,))."""
    xhat, inv_std, gamma, training, relu_out = cache
    # sum(g), sum(g * xhat) with g = dout, gated by the fused ReLU's output if there is one
    dbeta, dgamma = kernels.channel_sums(dout, xhat, relu_out)
    if not training:
        if relu_out is not None:
            dout = dout * (relu_out > 0)
        return dout * _per_channel(gamma * inv_std), dgamma, dbeta
    N, _, H, W = dout.shape
    M = N * H * W
    # dx = scale * (dout - dbeta / M - xhat * dgamma / M), fused into one pass
    scale = gamma * inv_std
    dx = kernels.channel_affine2(dout, scale, xhat, -scale * dgamma / M, -scale * dbeta / M,
                                 relu_out)
    return dx, dgamma, dbeta
