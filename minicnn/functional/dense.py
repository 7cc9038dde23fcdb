"""Fully connected (affine) layer: out = x @ W.T + b.

Shapes follow PyTorch's ``nn.Linear``: x (N, D), W (M, D), b (M,) -> out (N, M).
Backward: dx = dout @ W, dW = dout.T @ x, db = sum over N of dout.
"""

from __future__ import annotations

import numpy as np


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = x @ w.T
    out += b
    return out, x  # the cache is just the input


def dense_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return dout @ w, dout.T @ x, dout.sum(axis=0)
