"""Inverted dropout: zero each value with probability p and scale the survivors by 1/(1-p),
so the expected activation is unchanged and evaluation needs no rescaling. out = x * mask,
so by the chain rule dx = dout * mask.

The cache is the scaled mask (same shape and dtype as x). Randomness comes from the
``np.random.Generator`` passed in, so a mask can be reproduced exactly in tests.
"""

from __future__ import annotations

import numpy as np


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator, training: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs: x of any shape, drop probability p, the Generator for the mask.
    Returns: out (x's shape) and the scaled mask (None when nothing is dropped)."""
    if not training or p == 0.0:
        return x, None
    keep = rng.random(x.shape, dtype=np.float32) >= p
    mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Inputs: dout and the forward's mask, same shape. Returns: dx = dout * mask."""
    return dout if mask is None else dout * mask
