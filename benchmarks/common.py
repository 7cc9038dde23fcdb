"""What every benchmark case shares: the run configuration, one result row, timing, the
machine description, and the lazy, optional PyTorch import.

Timing method (all cases): call the function ``warmup`` times untimed (Numba loads its
compiled kernels, BLAS and PyTorch warm their thread pools and allocators), then time
``repeat`` repeats of ``number`` calls each with ``time.perf_counter`` and report the
MEDIAN repeat divided by ``number``. The median ignores the odd repeat that a background
process slowed down; a quiet machine is still needed for figures worth quoting.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- run settings
@dataclass(frozen=True)
class Config:
    """How big and how long. ``mode`` is "smoke" (tiny shapes, 1 repeat: checks that every
    case runs), "quick" (about a minute) or "full" (a few minutes)."""

    mode: str = "full"
    threads: int = 1
    batch: int = 64           # training step, per-layer, GEMM and memory cases
    warmup: int = 2
    repeat: int = 5
    train_steps: int = 2      # training steps per timed repeat
    latency_calls: int = 200  # single-face inference calls (median of these)
    infer_batch: int = 256
    memory_steps: int = 3
    models: tuple[str, ...] = ("default", "seed")  # the first one: inference and memory
    # the training-step zoo (benchmarks/zoo.py), each network at its own input and batch
    zoo: tuple[str, ...] = ("default", "vggbn", "simpleconvnet", "s2bn", "seed", "nin",
                            "lenet5", "cifarkeras")

    @classmethod
    def for_mode(cls, mode: str, threads: int) -> Config:
        if mode == "full":
            return cls(mode, threads)
        if mode == "quick":
            return cls(mode, threads, warmup=1, repeat=3, train_steps=1, latency_calls=50,
                       memory_steps=2)
        if mode == "smoke":
            # the "small" model (5.9 M MACs) stands in for the FER models
            return cls(mode, threads, batch=2, warmup=1, repeat=1, train_steps=1,
                       latency_calls=2, infer_batch=4, memory_steps=1, models=("small",),
                       zoo=("small", "vggbn", "simpleconvnet", "s2bn", "nin"))
        raise ValueError(f"unknown mode {mode!r}")

    @property
    def smoke(self) -> bool:
        return self.mode == "smoke"


# --------------------------------------------------------------------------- result rows
@dataclass
class Row:
    """One line of the results table.

    ``ours`` and ``theirs`` are in ``unit``; ``theirs`` is the baseline named by the group
    (PyTorch, a plain copy, or a plain matmul). ``ratio`` is defined per row so that HIGHER
    IS BETTER for minicnn: ours/theirs for rates, theirs/ours for times and memory. It is
    compared with ``target`` (None: informational).
    """

    group: str
    case: str
    ours: float | None
    theirs: float | None = None
    ratio: float | None = None
    unit: str = ""
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool | None = None  # True: a rate; False: a time or size; None: unknown

    def with_baseline(self, theirs: float | None) -> Row:
        """This row with another baseline figure and the ratio recomputed (see run_isolated)."""
        if self.higher_is_better is None or not theirs or not self.ours:
            return self
        ratio = self.ours / theirs if self.higher_is_better else theirs / self.ours
        return Row(self.group, self.case, self.ours, theirs, ratio,
                   self.unit, self.target, self.note, dict(self.extra), self.higher_is_better)

    @property
    def meets(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meets_target"] = self.meets
        return d

    @classmethod
    def from_dict(cls, group: str, d: dict[str, Any]) -> Row:
        """A row from a plain dict (as returned by an external ``run(quick)`` module)."""
        known = {"case", "ours", "theirs", "ratio", "unit", "target", "note",
                 "higher_is_better", "meets_target"}
        return cls(group=d.get("group", group), case=str(d.get("case", "?")),
                   ours=d.get("ours"), theirs=d.get("theirs"), ratio=d.get("ratio"),
                   unit=str(d.get("unit", "")), target=d.get("target"),
                   note=str(d.get("note", "")),
                   extra=d.get("extra") or {k: v for k, v in d.items()
                                            if k not in known | {"group", "extra"}},
                   higher_is_better=d.get("higher_is_better"))


def rate_row(group, case, ours, theirs, unit, target=None, note="") -> Row:
    """A higher-is-better figure (throughput, GB/s, GFLOP/s): ratio = ours / theirs."""
    ratio = ours / theirs if ours is not None and theirs else None
    return Row(group, case, ours, theirs, ratio, unit, target, note, higher_is_better=True)


def time_row(group, case, ours, theirs, unit, target=None, note="") -> Row:
    """A lower-is-better figure (latency, memory): ratio = theirs / ours."""
    ratio = theirs / ours if theirs is not None and ours else None
    return Row(group, case, ours, theirs, ratio, unit, target, note, higher_is_better=False)


# --------------------------------------------------------------------------- timing
def measure(fn: Callable[[], Any], cfg: Config, number: int = 1,
            warmup: int | None = None, repeat: int | None = None) -> float:
    """Median seconds per call of ``fn`` (see the module docstring for the method)."""
    for _ in range(cfg.warmup if warmup is None else warmup):
        fn()
    times = []
    for _ in range(cfg.repeat if repeat is None else repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


# --------------------------------------------------------------------------- PyTorch
_torch: Any = None
_torch_tried = False
NO_TORCH_ENV = "MINICNN_BENCH_NO_TORCH"  # set: behave as if PyTorch were not installed


def get_torch():
    """The torch module, or None when it is not installed. Imported on first use only:
    nothing that minicnn or emotion imports may depend on torch."""
    global _torch, _torch_tried
    if not _torch_tried:
        _torch_tried = True
        if os.environ.get(NO_TORCH_ENV):
            return None
        try:
            import torch
        except ImportError:
            _torch = None
        else:
            _torch = torch
    return _torch


def set_threads(n: int, with_torch: bool = True) -> dict[str, int | None]:
    """Give minicnn (Numba + OpenBLAS) and PyTorch the same explicit thread count.
    ``with_torch=False`` leaves torch unimported (the minicnn memory worker)."""
    from minicnn.threads import set_num_threads

    n = max(1, int(n))
    counts = dict(set_num_threads(n))
    torch = get_torch() if with_torch else None
    if torch is not None:
        torch.set_num_threads(n)
        counts["torch"] = torch.get_num_threads()
    return counts


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def numpy_blas() -> str:
    """NumPy's BLAS as 'name version' (from numpy.show_config's build information)."""
    try:
        cfg = np.show_config(mode="dicts")  # NumPy >= 1.26
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy: fall back to the legacy config module
        info = getattr(np.__config__, "blas_opt_info", None) or {}
        libs = info.get("libraries") if isinstance(info, dict) else None
        return ", ".join(libs) if libs else "unknown"


def openblas_core() -> str | None:
    """The CPU core type OpenBLAS chose its kernels for (e.g. "Haswell", "SkylakeX"), or
    None where OpenBLAS cannot be reached. OPENBLAS_CORETYPE overrides its detection."""
    import ctypes
    import glob

    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs_dir, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "openblas_core": openblas_core(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        info["load_average_1min"] = None
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    torch = get_torch()
    info["torch"] = torch.__version__ if torch is not None else None
    return info
