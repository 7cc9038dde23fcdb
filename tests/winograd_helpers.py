"""Forcing the engine's convolution algorithm onto the small shapes tests draw."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minicnn.engine.algorithm import algorithm, choose
from minicnn.kernels import output_hw


@contextmanager
def winograd_everywhere(on: bool = True, tile: int | None = None) -> Iterator[None]:
    """Every 3x3, stride 1, padding 0 or 1 convolution of the engine runs as Winograd
    inside the block, however few channels and tiles it has (``on=False``: none does),
    with m x m output tiles for ``tile`` = m (2, 3 or 4; None: the cost model's choice)."""
    with algorithm("winograd" if on else "im2col", tile if on else None):
        yield


@contextmanager
def target_columns(n: int) -> Iterator[None]:
    """The engine's GEMM chunks sized for ``n`` columns (1: one image per chunk)."""
    from minicnn.engine import conv

    old, conv.TARGET_COLUMNS = conv.TARGET_COLUMNS, n
    try:
        yield
    finally:
        conv.TARGET_COLUMNS = old


def runs_as_winograd(N: int, C: int, F: int, H: int, W: int, padding: int) -> bool:
    """Whether the engine runs a 3x3, stride-1 convolution of x (N, C, H, W) with F filters
    as Winograd (``engine.algorithm``)."""
    OH, OW = output_hw(H, W, 3, 3, 1, padding)
    return choose(N, C, F, 3, 3, 1, padding, OH, OW).name == "winograd"
