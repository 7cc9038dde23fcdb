"""Set the thread counts of both parallel runtimes minicnn uses: Numba's (kernels) and
NumPy's BLAS (the GEMMs). They run one after the other, never at once, so each may use
every core; what must be avoided is oversubscription by a third party (for example an
OpenMP runtime started by another library), hence explicit counts that we also print."""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np


def _openblas():
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs_dir, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", "_64_", ""):
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None


def set_num_threads(n: int) -> dict[str, int | None]:
    """Use ``n`` threads for Numba and (when it can be reached) OpenBLAS. Returns the counts
    actually in effect, e.g. {"numba": 2, "blas": 2}."""
    n = max(1, int(n))
    result: dict[str, int | None] = {"numba": None, "blas": None}
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        result["numba"] = numba.get_num_threads()
    except ImportError:
        pass
    blas = _openblas()
    if blas is not None:
        setter, getter = blas
        setter(ctypes.c_int(n))
        result["blas"] = int(getter())
    return result


def get_num_threads() -> dict[str, int | None]:
    result: dict[str, int | None] = {"numba": None, "blas": None}
    try:
        import numba

        result["numba"] = numba.get_num_threads()
    except ImportError:
        pass
    blas = _openblas()
    if blas is not None:
        result["blas"] = int(blas[1]())
    return result
