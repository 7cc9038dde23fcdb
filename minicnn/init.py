"""Weight initialisers, all driven by an explicit ``np.random.Generator``.

He (Kaiming) normal, std = sqrt(2 / fan_in), keeps activation variance constant through
ReLU layers (He et al. 2015); Glorot uniform, limit = sqrt(6 / (fan_in + fan_out)), suits
layers without a ReLU after them (Glorot & Bengio 2010).

``Conv2D`` and ``Dense`` take ``init=``: a name from ``INITIALIZERS`` ("he_normal", the
default, or "glorot_uniform"), ``normal(std)`` (a fixed standard deviation, as in *Deep
Learning from Scratch*'s ``weight_init_std``), any callable
``init(shape, fan_in, fan_out, rng) -> array``, or None (weights start at zero and are
yours to set). For a convolution fan_in = in_channels * k * k and fan_out =
out_channels * k * k (Keras's and PyTorch's convention). Biases always start at zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], int, int, np.random.Generator], np.ndarray]


def he_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator,
              dtype=np.float32) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int,
                   rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def normal(std: float) -> Initializer:
    """An initialiser drawing N(0, std^2) weights, e.g. ``Conv2D(1, 30, 5, init=normal(0.01))``."""
    if not (isinstance(std, (int, float)) and np.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")

    def draw(shape, fan_in, fan_out, rng):
        return rng.standard_normal(shape) * std

    draw.__qualname__ = draw.__name__ = f"normal({std})"
    return draw


INITIALIZERS: dict[str, Initializer] = {
    "he_normal": lambda shape, fan_in, fan_out, rng: he_normal(shape, fan_in, rng),
    "glorot_uniform": lambda shape, fan_in, fan_out, rng: glorot_uniform(shape, fan_in,
                                                                         fan_out, rng),
}


def check_init(init, layer: str) -> None:
    """Refuse an ``init=`` that is not None, a known name or a callable (TypeError/ValueError
    naming the layer)."""
    if init is None or callable(init):
        return
    if not isinstance(init, str):
        raise TypeError(f"{layer}: init must be a name, a callable or None, got {init!r}")
    if init not in INITIALIZERS:
        raise ValueError(f"{layer}: unknown init {init!r}; choose from "
                         f"{', '.join(INITIALIZERS)}, a callable or None")


def draw(init, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
         layer: str) -> np.ndarray:
    """Weights of ``shape`` from ``init`` (see the module docstring) as float32; zeros for
    None. A callable's result must have the shape asked for and be finite."""
    if init is None:
        return np.zeros(shape, dtype=np.float32)
    fn = INITIALIZERS[init] if isinstance(init, str) else init
    w = np.asarray(fn(tuple(shape), fan_in, fan_out, rng))
    if w.shape != tuple(shape):
        raise ValueError(f"{layer}: init returned shape {w.shape}, expected {tuple(shape)}")
    if not np.issubdtype(w.dtype, np.number) or not np.isfinite(w).all():
        raise ValueError(f"{layer}: init returned non-numeric or non-finite weights")
    return w.astype(np.float32)
