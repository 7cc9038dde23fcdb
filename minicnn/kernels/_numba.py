"""Numba, when it is installed; otherwise stand-ins that let the Numba tiers be defined
(as plain Python, never called: the dispatcher falls back to NumPy with a warning).

Every compiled kernel is ``@njit(cache=True)`` (compiled once, cached on disk),
``nogil=True`` (the engine calls kernels from several Python threads at once) and, where
it has independent outputs, ``@parallel_njit``: ``prange`` over them, so two threads
never write the same element, plus a serial twin of the same source for small inputs and
for calls from the engine's own threads. float32 and float64 each get their own
specialisation.

Unsigned indices: Numba, like NumPy, lets ``a[-1]`` mean the last element, so every index
that might be negative gets a run-time check, and that branch keeps LLVM from turning a
copy loop into SIMD moves. The copy kernels therefore index flat views with ``uint64``
values, whose bounds are computed (and clipped) before the cast; benchmarks/README.md,
"Performance chapter", has the measurements.
"""

from __future__ import annotations

import os
import types

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


def parallel_njit(**options):
    """``@njit(parallel=True, **options)``, with a serial twin at ``kernel.serial``: the
    same source compiled without threads (``prange`` then runs as ``range``).
    ``dispatch.run`` calls the twin where starting Numba's thread pool costs more than
    the work: small inputs, and calls from a thread that already runs one part of a
    batch. The twin is a copy of the function under another name, so that the two
    compilations get their own entries in Numba's on-disk cache. (That cache is keyed by
    the kernel's source file, not by the options set here: after changing them, delete
    the ``__pycache__`` folders of ``minicnn/kernels``.)"""
    def wrap(fn):
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__kwdefaults__ = fn.__kwdefaults__
        twin.__doc__ = fn.__doc__
        kernel = njit(parallel=True, **options)(fn)
        kernel.serial = njit(**options)(twin)
        return kernel
    return wrap


__all__ = ["numba", "njit", "parallel_njit", "prange", "uint64"]
