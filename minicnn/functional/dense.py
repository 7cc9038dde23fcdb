"""Fully connected (affine) layer: out = x @ W.T + b.

Shapes follow PyTorch's ``nn.Linear``: x (N, D), W (M, D), b (M,) -> out (N, M).
By the chain rule through out[n, m] = sum_d x[n, d] W[m, d] + b[m]:
dx = dout @ W, dW = dout.T @ x, db = sum over N of dout.
"""

from __future__ import annotations

import numpy as np


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs: x (N, D), w (M, D), b (M,). Returns: out (N, M), and x as the cache."""
    out = x @ w.T
    out += b
    return out, x


def dense_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs: dout (N, M), the cached x (N, D), w (M, D). Returns: dx (N, D), dw (M, D),
    db (M,)."""
    return dout @ w, dout.T @ x, dout.sum(axis=0)
