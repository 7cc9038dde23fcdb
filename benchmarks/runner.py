"""Runs the selected cases in order and collects their rows.

``run_isolated`` (what ``python -m benchmarks`` does when PyTorch is installed) measures
each framework in its own fresh process: minicnn's figures come from a process that never
imported torch, and PyTorch's from one where torch was imported first. In one shared
process the two OpenMP runtimes (PyTorch's bundled one and Numba's) each keep a pool of
threads, and the pool that has just run keeps spinning for a while on the same two cores,
which made minicnn's figures depend on what PyTorch had done just before. ``run_all`` is
the single-process run (``--same-process``; the smoke tests).

Each case is a module with ``run(cfg: Config) -> list[Row]``. The optional
"inference-e2e" case is ``benchmarks/bench_inference.py`` with ``run(quick: bool) ->
list[dict]``; it is skipped when that module is absent.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

from benchmarks.common import (
    NO_TORCH_ENV,
    Config,
    Row,
    get_torch,
    machine_info,
    set_threads,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def _run_side(side: str, mode: str, threads: int, only: list[str] | None,
              progress=None) -> dict[str, Any]:
    """``run_all`` in a fresh ``python -m benchmarks --side SIDE`` process; its result."""
    env = dict(os.environ)
    if side == "minicnn":
        env[NO_TORCH_ENV] = "1"
    else:
        env.pop(NO_TORCH_ENV, None)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "side.json")
        cmd = [sys.executable, "-m", "benchmarks", "--side", side, "--json", out,
               "--threads", str(threads), *(["--only", ",".join(only)] if only else []),
               *({"smoke": ["--smoke"], "quick": ["--quick"]}.get(mode, []))]
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=None if progress else subprocess.DEVNULL, check=False)
        if not os.path.exists(out):
            raise RuntimeError(f"the {side} benchmark process failed (exit {done.returncode})")
        with open(out, encoding="utf-8") as f:
            data = json.load(f)
    data["rows"] = [Row.from_dict(r["group"], r) for r in data["rows"]]
    return data


def run_isolated(mode: str = "full", threads: int = 1, only: list[str] | None = None,
                 progress=None) -> dict[str, Any]:
    """Like ``run_all``, but minicnn and PyTorch are measured in separate fresh processes
    (see the module docstring). Rows whose baseline is not PyTorch (a copy, a plain matmul)
    come whole from the minicnn process; in rows compared with PyTorch, the PyTorch figure
    comes from the PyTorch process and the ratio is recomputed."""
    if progress:
        progress("minicnn, in a process without torch:")
    ours = _run_side("minicnn", mode, threads, only, progress)
    if get_torch() is None:
        return ours
    if progress:
        progress("PyTorch, in a process of its own:")
    theirs = _run_side("torch", mode, threads, only, progress)
    baseline = {(r.group, r.case): r.theirs for r in theirs["rows"]}
    rows = [r.with_baseline(baseline.get((r.group, r.case))) if r.theirs is None else r
            for r in ours["rows"]]
    machine = dict(ours["machine"], torch=theirs["machine"].get("torch"),
                   omp_wait_policy=theirs["machine"].get("omp_wait_policy"),
                   isolated=True)
    errors = dict(ours["errors"], **{f"{k} (torch process)": v
                                     for k, v in theirs["errors"].items()})
    return {"mode": mode, "machine": machine, "threads": dict(ours["threads"],
                                                              **theirs["threads"]),
            "rows": rows, "seconds": {k: round(v + theirs["seconds"].get(k, 0), 2)
                                      for k, v in ours["seconds"].items()},
            "skipped": ours["skipped"], "errors": errors}
