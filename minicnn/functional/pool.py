"""Pooling: max-pooling and global average pooling. The reference; ``engine.pool`` runs
the same max-pool in Numba.

max-pool: x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - k) // stride + 1, no padding.
Each output is the largest value of its k x k window, so by the chain rule its gradient
flows to that one input and to no other (ties go to the first maximum in the window,
row-major, as ``np.argmax``; see kernels/pool.py).

global average pool: x (N, C, H, W) -> out (N, C), the mean of each map; each of the H*W
inputs contributed 1/(H*W) of it, so dx = dout / (H*W) spread over the map.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.kernels.pool import maxpool_backward_numpy, maxpool_forward_numpy


class MaxPoolCache(NamedTuple):
    argmax: np.ndarray  # int32 (N, C, OH, OW): flat h*W + w index of each window's winner
    x_shape: tuple[int, int, int, int]


def maxpool2d_forward(x: np.ndarray, kernel_size: int,
                      stride: int) -> tuple[np.ndarray, MaxPoolCache]:
    """Inputs: x (N, C, H, W); a kernel_size x kernel_size window moved by ``stride``.
    Returns: out (N, C, OH, OW) and the cache (where each maximum came from)."""
    out, argmax = maxpool_forward_numpy(x, kernel_size, kernel_size, stride)
    return out, MaxPoolCache(argmax, x.shape)


def maxpool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """Inputs: dout (N, C, OH, OW). Returns: dx (N, C, H, W), each window's gradient at its
    maximum (added up where overlapping windows share one)."""
    return maxpool_backward_numpy(dout, cache.argmax, cache.x_shape)


def global_avgpool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Inputs: x (N, C, H, W). Returns: out (N, C), and x's shape as the cache."""
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    """Inputs: dout (N, C). Returns: dx (N, C, H, W) = dout / (H*W) at every pixel."""
    N, C, H, W = x_shape
    dx = np.empty(x_shape, dtype=dout.dtype)
    dx[...] = (dout / (H * W))[:, :, None, None]
    return dx
