"""Pooling: max-pooling (via the kernel dispatcher) and global average pooling.

max-pool : x (N, C, H, W) -> (N, C, OH, OW), OH = (H - KH) // stride + 1, no padding.
           Ties route the gradient to the first maximum (see kernels/pool.py).
global average pool : x (N, C, H, W) -> (N, C); the gradient spreads evenly, dout / (H*W).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import kernels


class MaxPoolCache(NamedTuple):
    argmax: np.ndarray  # int32 (N, C, OH, OW): flat h*W + w index of each window's winner
    x_shape: tuple[int, int, int, int]


def maxpool2d_forward(
    x: np.ndarray, kernel_size: int, stride: int
) -> tuple[np.ndarray, MaxPoolCache]:
    out, argmax = kernels.maxpool_forward(x, kernel_size, kernel_size, stride)
    return out, MaxPoolCache(argmax, x.shape)


def maxpool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    return kernels.maxpool_backward(dout, cache.argmax, cache.x_shape)


def global_avgpool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    N, C, H, W = x_shape
    dx = np.empty(x_shape, dtype=dout.dtype)
    dx[...] = (dout / (H * W))[:, :, None, None]
    return dx
