"""ReLU: out = max(x, 0); by the chain rule dx = dout where x > 0 and 0 elsewhere. The
reference; ``engine.activation`` does the same in one parallel pass.

The cache is the output itself (out > 0 exactly where x > 0), so no extra mask is stored.
At x == 0 the subgradient 0 is used, as PyTorch does.
"""

from __future__ import annotations

import numpy as np


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs: x of any shape. Returns: out = max(x, 0) (NaN stays NaN), and out again
    as the cache."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Inputs: dout and the forward's output, same shape. Returns: dx = dout * (out > 0)."""
    return dout * (out > 0)
