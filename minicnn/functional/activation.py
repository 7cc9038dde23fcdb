"""ReLU: out = max(x, 0); the gradient passes where the output is positive.

The cache is the output itself (out > 0 exactly where x > 0), so no extra mask is stored.
At x == 0 the subgradient 0 is used, as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from minicnn import kernels


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = kernels.relu_forward(x)
    return out, out


def relu_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return kernels.relu_backward(dout, out)
