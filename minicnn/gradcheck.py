"""Numerical gradients by central differences, and the relative error used to compare them.

cs231n's recipe: for a function f(x) -> array and a random upstream gradient dout, the
numerical dL/dx of L = sum(f(x) * dout) is, coordinate by coordinate,

    (sum(f(x + h e_i) * dout) - sum(f(x - h e_i) * dout)) / (2h)

which checks the full Jacobian-vector product a backward pass computes. Use float64 and
h around 1e-6; the error is O(h^2) except at kinks (ReLU at 0, max-pool ties).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[], np.ndarray | float], x: np.ndarray,
                       dout: np.ndarray | None = None, h: float = 1e-6) -> np.ndarray:
    """dL/dx for L = sum(f() * dout), perturbing ``x`` IN PLACE (restored afterwards).

    ``f`` takes no arguments and reads x itself, so x may be any array the computation
    uses: an input, a weight inside a layer, a parameter of a whole model.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.array(f(), dtype=np.float64)  # a copy: f may return a view of x
        x[i] = old - h
        minus = np.array(f(), dtype=np.float64)
        x[i] = old
        if dout is None:
            grad[i] = (plus - minus) / (2 * h)
        else:
            grad[i] = np.sum((plus - minus) * dout) / (2 * h)
        it.iternext()
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1e-8, |a| + |b|), elementwise then the worst case."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
