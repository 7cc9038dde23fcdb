"""Numba, when it is installed; otherwise stand-ins that let the Numba tiers be defined
(as plain Python, never called: the dispatcher falls back to NumPy with a warning).

Every compiled kernel is ``@njit(cache=True)`` (compiled once, cached on disk),
``nogil=True`` (the engine calls kernels from several Python threads at once) and, where
it has independent outputs, ``parallel=True`` with ``prange`` over them, so two threads
never write the same element. float32 and float64 each get their own specialisation.

Unsigned indices: Numba, like NumPy, lets ``a[-1]`` mean the last element, so every index
that might be negative gets a run-time check, and that branch keeps LLVM from turning a
copy loop into SIMD moves. The copy kernels therefore index flat views with ``uint64``
values, whose bounds are computed (and clipped) before the cast; benchmarks/README.md,
"Performance chapter", has the measurements.
"""

from __future__ import annotations

import os

# Numba's OpenMP workers busy-wait after each parallel kernel by default, stealing the
# cores OpenBLAS needs for the GEMMs in between; passive waiting hands them back at once.
# Must be set before the OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import numba
    from numba import njit, prange, uint64
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

    def njit(*args, **kwargs):
        """Stand-in decorator: the function stays plain Python."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda fn: fn

    prange = range
    uint64 = int

__all__ = ["numba", "njit", "prange", "uint64"]
