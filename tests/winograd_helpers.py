"""Forcing the Winograd path onto the small shapes tests draw."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minicnn.functional import conv as conv_module


@contextmanager
def winograd_everywhere(on: bool = True) -> Iterator[None]:
    """Every 3x3, stride 1, padding 1 convolution runs as Winograd F(2x2, 3x3) inside the
    block, however few channels and tiles it has (``on=False``: none does)."""
    old = conv_module.WINOGRAD, conv_module.WINOGRAD_MIN_CHANNELS, conv_module.WINOGRAD_MIN_TILES
    conv_module.WINOGRAD, conv_module.WINOGRAD_MIN_CHANNELS = on, 1
    conv_module.WINOGRAD_MIN_TILES = 1
    try:
        yield
    finally:
        (conv_module.WINOGRAD, conv_module.WINOGRAD_MIN_CHANNELS,
         conv_module.WINOGRAD_MIN_TILES) = old
