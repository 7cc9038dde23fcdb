"""Mini-batches for a training loop.

    for xb, yb in minicnn.data.batches(x, y, batch_size=64, shuffle=True, rng=0):
        loss = loss_fn(model.forward(xb), yb)

``batch_indices`` gives the index arrays alone, for data that lives elsewhere (a
memory-mapped file, an augmentation step in between).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def batch_indices(n: int, batch_size: int, shuffle: bool = True,
                  rng: np.random.Generator | int | None = None,
                  drop_last: bool = False) -> Iterator[np.ndarray]:
    """Yield index arrays (batch_size,) covering range(n) once; the last one may be shorter
    unless ``drop_last`` (useful with batch norm, which needs more than one sample).

    Shuffling draws one permutation from ``rng`` (a Generator or a seed; required when
    shuffle=True, so an epoch's order can be reproduced)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if shuffle:
        if rng is None:
            raise ValueError("shuffle=True needs an rng (np.random.Generator or a seed)")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def batches(x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64,
            shuffle: bool = True, rng: np.random.Generator | int | None = None,
            drop_last: bool = False) -> Iterator:
    """Yield ``(x[idx], y[idx])`` mini-batches (or ``x[idx]`` alone when y is None) over one
    epoch, in the order of ``batch_indices`` (see there for shuffle, rng and drop_last).

    x : (N, ...) samples, e.g. (N, 1, 28, 28) float32 images; y : (N,) labels or None.
    """
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    for idx in batch_indices(len(x), batch_size, shuffle, rng, drop_last):
        yield x[idx] if y is None else (x[idx], y[idx])
