"""Runs the selected cases in order and collects their rows.

Each case is a module with ``run(cfg: Config) -> list[Row]``. The optional
"inference-e2e" case is ``benchmarks/bench_inference.py`` with ``run(quick: bool) ->
list[dict]``; it is skipped when that module is absent.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from typing import Any

from benchmarks.common import Config, Row, get_torch, machine_info, set_threads

# case name -> module
CASES: dict[str, str] = {
    "train": "benchmarks.bench_train",
    "layers": "benchmarks.bench_layers",
    "kernels": "benchmarks.bench_kernels",
    "gemm": "benchmarks.bench_gemm",
    "inference": "benchmarks.bench_infer",
    "memory": "benchmarks.bench_memory",
    "inference-e2e": "benchmarks.bench_inference",
}
OPTIONAL = {"inference-e2e"}


def _run_case(name: str, cfg: Config) -> list[Row]:
    if name == "inference-e2e":
        module = importlib.import_module(CASES[name])  # ImportError: handled by caller
        return [Row.from_dict(name, d) for d in module.run(quick=cfg.mode != "full")]
    return importlib.import_module(CASES[name]).run(cfg)


def run_all(mode: str = "full", threads: int = 1, only: list[str] | None = None,
            progress=None) -> dict[str, Any]:
    """Run the cases named in ``only`` (default: all; the smoke mode leaves out the
    optional end-to-end case unless it is named). Returns {"mode", "machine", "threads",
    "rows", "seconds", "skipped", "errors"}."""
    get_torch()  # before minicnn: see the note in benchmarks/__main__.py
    names = list(only) if only else [n for n in CASES
                                     if not (mode == "smoke" and n in OPTIONAL)]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    cfg = Config.for_mode(mode, threads)
    machine = machine_info()
    counts = set_threads(threads)
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in names:
        if progress:
            progress(f"running {name} ...")
        t0 = time.perf_counter()
        try:
            rows += _run_case(name, cfg)
        except ImportError as e:
            if name not in OPTIONAL:
                raise
            skipped[name] = f"not available ({e})"
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            errors[name] = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
        seconds[name] = round(time.perf_counter() - t0, 2)
    # minicnn.kernels sets this for Numba when imported; torch started before that
    machine["omp_wait_policy_numba"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    try:
        import numba

        machine["numba_threading_layer"] = numba.threading_layer()
    except Exception:  # noqa: BLE001 - no parallel kernel ran, or no numba
        machine["numba_threading_layer"] = None
    return {"mode": mode, "machine": machine, "threads": counts, "rows": rows,
            "seconds": seconds, "skipped": skipped, "errors": errors}
