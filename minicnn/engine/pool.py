"""The fast max-pool: ``functional.pool``'s function with the Numba kernels
(``kernels/pool.py``), one thread per feature map; the same cache."""

from __future__ import annotations

import numpy as np

from minicnn import kernels
from minicnn.functional.pool import MaxPoolCache


def maxpool2d_forward(x: np.ndarray, kernel_size: int,
                      stride: int) -> tuple[np.ndarray, MaxPoolCache]:
    """x (N, C, H, W) -> (out (N, C, OH, OW), cache), as ``functional.maxpool2d_forward``."""
    out, argmax = kernels.maxpool_forward(x, kernel_size, kernel_size, stride)
    return out, MaxPoolCache(argmax, x.shape)


def maxpool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """dout (N, C, OH, OW) -> dx (N, C, H, W): each gradient to its window's maximum."""
    return kernels.maxpool_backward(dout, cache.argmax, cache.x_shape)
