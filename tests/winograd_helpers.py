"""Forcing the Winograd path onto the small shapes tests draw."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minicnn.functional import conv as conv_module


@contextmanager
def winograd_everywhere(on: bool = True, tile: int | None = None) -> Iterator[None]:
    """Every 3x3, stride 1, padding 0 or 1 convolution runs as Winograd inside the block,
    however few channels and tiles it has (``on=False``: none does), with m x m output
    tiles for ``tile`` = m (2, 3 or 4; None: the size rule's choice)."""
    names = ("WINOGRAD", "WINOGRAD_MIN_CHANNELS", "WINOGRAD_MIN_TILES", "WINOGRAD_TILE")
    old = [getattr(conv_module, name) for name in names]
    for name, value in zip(names, (on, 1, 1, tile)):
        setattr(conv_module, name, value)
    try:
        yield
    finally:
        for name, value in zip(names, old):
            setattr(conv_module, name, value)
