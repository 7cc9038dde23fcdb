"""The kernel dispatcher: which tier a kernel call runs in.

    tier "naive"  loops that read like the maths (what the tests check the others against;
                  slow)
    tier "numpy"  vectorised NumPy on strided views
    tier "numba"  compiled, parallel loops

``minicnn.set_backend`` sets the default tier ("reference" -> numpy, "fast" -> numba);
``set_tier`` sets it directly and every kernel takes ``tier=`` per call. Without Numba,
"numba" warns once and runs NumPy.
"""

from __future__ import annotations

import warnings

from minicnn.kernels._numba import numba

TIERS = ("naive", "numpy", "numba")
_tier = "numba"  # the fast backend's; without Numba the first kernel call warns (resolve)
_warned = False

# A Numba kernel whose largest array is smaller than this runs on the calling thread
# alone, as its serial twin: waking Numba's sleeping pool costs more than such a
# kernel's whole work.
SERIAL_BYTES = 2 * 2**20


def numba_available() -> bool:
    return numba is not None


def set_tier(name: str) -> None:
    """The tier kernel calls run in when they pass no ``tier``."""
    global _tier
    if name not in TIERS:
        raise ValueError(f"unknown kernel tier {name!r}; choose one of {TIERS}")
    _tier = name


def get_tier() -> str:
    return _tier


def resolve(tier: str | None) -> str:
    """The tier a call runs in: ``tier``, or the default; "numba" without Numba -> "numpy"."""
    global _warned
    name = _tier if tier is None else tier
    if name not in TIERS:
        raise ValueError(f"unknown kernel tier {name!r}; choose one of {TIERS}")
    if name == "numba" and numba is None:
        if not _warned:
            warnings.warn("numba is not installed; minicnn kernels fall back to NumPy",
                          RuntimeWarning, stacklevel=3)
            _warned = True
        return "numpy"
    return name


def run(kernel, nbytes: int, *args):
    """kernel(*args), or its serial twin (``_numba.parallel_njit``) when ``nbytes`` (its
    largest array) < SERIAL_BYTES or Numba runs one thread here (a batch-parallel
    worker): then the work is not worth waking, or cannot use, Numba's thread pool."""
    if nbytes < SERIAL_BYTES or numba.get_num_threads() == 1:
        return getattr(kernel, "serial", kernel)(*args)  # a plain @njit kernel is serial
    return kernel(*args)
