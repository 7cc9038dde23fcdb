"""The one switch between the two implementations of every op:

    "reference"  ``minicnn.functional``: short textbook NumPy, kernels in the NumPy tier
    "fast"       ``minicnn.engine``: chunks, threads, Winograd, fused passes, kernels in
                 the Numba tier (NumPy, with a warning, when Numba is missing); the default

    minicnn.set_backend("reference")        # from now on
    with minicnn.backend("reference"):      # inside the block only
        model.forward(x)

Layers look the active backend's functions up through ``ops()`` on every forward, and
keep them for their backward, so a step started under one backend ends under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from minicnn import engine, functional
from minicnn.kernels import dispatch

BACKENDS = ("reference", "fast")
_name = "fast"


def set_backend(name: str) -> None:
    """Select the implementation layers run: "reference" or "fast" (see above)."""
    global _name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    _name = name
    dispatch.set_tier("numpy" if name == "reference" else "numba")


def get_backend() -> str:
    return _name


@contextmanager
def backend(name: str) -> Iterator[None]:
    """``set_backend(name)`` inside the block, then back to the previous backend."""
    before, tier = _name, dispatch.get_tier()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(before)
        dispatch.set_tier(tier)


def ops() -> ModuleType:
    """The active backend's op functions: ``minicnn.functional`` or ``minicnn.engine``
    (the same names and signatures)."""
    return functional if _name == "reference" else engine
