"""Reusable memory for the engine's convolutions.

``scratch``: one flat buffer per (thread, slot, dtype), grown as needed and reused by
every chunk of every layer, so a chunk's im2col columns and GEMM result stay in cache.

``kept_columns``: where a layer's im2col columns live between forward and backward, one
buffer per weight array (a layer keeps its weights across steps, the optimizer updates
them in place), reused every step: fresh memory for large columns costs a page fault per
4 kB. A later forward with the same weights takes the buffer over; ``still_kept`` tells
an earlier cache's backward that its columns are gone, and it recomputes them.

``keep_freed_memory``: glibc's malloc hands large freed blocks back to the system (it
trims the heap once more than twice its adaptive mmap threshold is free at its top), and
a training step frees and reallocates tens of MB of activations, so every step would
fault fresh pages in again. The engine therefore asks glibc, once at import, to serve
blocks up to ``MMAP_THRESHOLD`` from the heap and to keep up to ``TRIM_THRESHOLD`` of
freed memory: the process keeps its peak rather than returning it between steps, as
PyTorch's caching allocators do on the GPU (measured in benchmarks/README.md, "Freed
memory kept by glibc"). Set MINICNN_KEEP_FREED_MEMORY=0, or glibc's own
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_, to keep the system's policy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import sys
import threading
import weakref

import numpy as np

_local = threading.local()
_kept: dict[int, tuple[weakref.ref, np.ndarray, int]] = {}  # id(w) -> (w, storage, owner)
_owners = itertools.count(1)


def scratch(size: int, dtype: np.dtype, slot: str = "cols") -> np.ndarray:
    """A flat scratch buffer of ``size`` elements for this thread: "cols" for a chunk's
    columns (in backward, then their gradient), "gemm" for its matrix product (in
    backward: the upstream gradient regrouped), "dw" for a chunk's weight gradient."""
    buffers = _local.__dict__.setdefault("buffers", {})
    key = (slot, np.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=key[1])
        buffers[key] = buf
    return buf[:size]


def _forget(table: dict, key, ref: weakref.ref) -> None:
    """Drop ``table[key]`` when its array is gone (the callback of its weak reference)."""
    if key in table and table[key][0] is ref:  # not a newer array that reuses the id
        del table[key]


def kept_columns(w: np.ndarray, size: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """(storage of ``size`` elements for the columns of a convolution with weights ``w``,
    an owner token for ``still_kept``)."""
    key = id(w)
    entry = _kept.get(key)
    if entry is not None and entry[0]() is w and entry[1].size >= size and \
            entry[1].dtype == dtype:
        ref, storage = entry[0], entry[1]
    else:
        ref = weakref.ref(w, lambda r, key=key: _forget(_kept, key, r))
        storage = np.empty(size, dtype=dtype)
    owner = next(_owners)
    _kept[key] = (ref, storage, owner)
    return storage[:size], owner


def still_kept(w: np.ndarray, owner: int) -> bool:
    """Whether the columns handed out with ``owner`` have not been taken over since."""
    entry = _kept.get(id(w))
    return entry is not None and entry[0]() is w and entry[2] == owner


# Eval mode's Winograd weight transforms, by (id of w, m): (a weak reference to w, a copy
# of the values w had, their transform). An entry goes with its array, and serves only
# while the array holds the same values (weights trained in place between evaluations
# are transformed again).
_transforms: dict[tuple[int, int], tuple[weakref.ref, np.ndarray, np.ndarray]] = {}


def kept_transform(w: np.ndarray, m: int, make) -> np.ndarray:
    """``make(w)``, the transform of the weights w with tile m (made from a copy), or the
    one made for this very array before, if it still holds the values it had then."""
    key = (id(w), m)
    entry = _transforms.get(key)
    if entry is not None and entry[0]() is w and np.array_equal(entry[1], w):
        return entry[2]
    values = w.copy()  # taken first: the transform is made from exactly these values
    U = make(values)
    ref = weakref.ref(w, lambda r, key=key: _forget(_transforms, key, r))
    _transforms[key] = (ref, values, U)
    return U


MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring); whether it did."""
    if not sys.platform.startswith("linux") or os.environ.get(
            "MINICNN_KEEP_FREED_MEMORY", "1") == "0" or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # both together: setting either one fixes the other at its current value
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


KEPT_FREED_MEMORY = keep_freed_memory()
