"""Weight initialisers, all driven by an explicit ``np.random.Generator``.

He (Kaiming) normal, std = sqrt(2 / fan_in), keeps activation variance constant through
ReLU layers (He et al. 2015); Glorot uniform, limit = sqrt(6 / (fan_in + fan_out)), suits
layers without a ReLU after them (Glorot & Bengio 2010).
"""

from __future__ import annotations

import numpy as np


def he_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator,
              dtype=np.float32) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int,
                   rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
