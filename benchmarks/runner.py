"""Runs the selected cases in order and collects their rows.

``run_isolated`` (what ``python -m benchmarks`` does) measures each framework in its own
fresh process, case by case, alternately (``--rounds N``: N times, keeping each
framework's best figure): minicnn's figures come from a process that never
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
# Some machines set these for old OpenBLAS builds (Haswell kernels, 512 kB L2), which
# makes NumPy run AVX2 kernels on an AVX-512 CPU, unlike a user's machine: the isolated
# mode's workers run without them.
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# case name -> module
CASES: dict[str, str] = {
    "train": "benchmarks.bench_train",
    "layers": "benchmarks.bench_layers",
    "kernels": "benchmarks.bench_kernels",
    "gemm": "benchmarks.bench_gemm",
    "inference": "benchmarks.bench_infer",
    "memory": "benchmarks.bench_memory",
    "inference-e2e": "benchmarks.bench_inference",
    "opencv-dnn": "benchmarks.bench_onnx",
}
OPTIONAL = {"inference-e2e", "opencv-dnn"}  # skipped when their module or onnx is missing
# cases whose baseline is not PyTorch (a plain copy, a plain matmul, OpenCV, or none):
# run_isolated runs them in minicnn's process only
NO_TORCH_BASELINE = {"kernels", "gemm", "inference-e2e", "opencv-dnn"}


def _run_case(name: str, cfg: Config) -> list[Row]:
    if name == "inference-e2e":
        module = importlib.import_module(CASES[name])  # ImportError: handled by caller
        return [Row.from_dict(name, d) for d in module.run(quick=cfg.mode != "full")]
    return importlib.import_module(CASES[name]).run(cfg)


def case_names(mode: str, only: list[str] | None) -> list[str]:
    """The cases to run, in order: those in ``only`` (default: all; the smoke mode leaves
    out the optional end-to-end case unless it is named). ValueError for an unknown one."""
    names = list(only) if only else [n for n in CASES
                                     if not (mode == "smoke" and n in OPTIONAL)]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    return names


def run_all(mode: str = "full", threads: int = 1, only: list[str] | None = None,
            progress=None) -> dict[str, Any]:
    """Run the cases named in ``only`` (default: all; the smoke mode leaves out the
    optional end-to-end case unless it is named). Returns {"mode", "machine", "threads",
    "rows", "seconds", "skipped", "errors"}."""
    get_torch()  # before minicnn: see the note in benchmarks/__main__.py
    names = case_names(mode, only)
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
    # what OpenBLAS was started with: the isolated mode's workers run without these
    machine["openblas_env"] = {var: os.environ[var] for var in OPENBLAS_VARS
                               if var in os.environ}
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
    for var in OPENBLAS_VARS:
        env.pop(var, None)
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


def _best(rows: list[Row], figure: str) -> Row:
    """Of one row's measurements in several rounds, the one with the best ``figure``
    ("ours" or "theirs"): the highest rate, or the lowest time or size."""
    measured = [r for r in rows if getattr(r, figure) is not None]
    if not measured or rows[0].higher_is_better is None:
        return rows[0]
    pick = max if rows[0].higher_is_better else min
    return pick(measured, key=lambda r: getattr(r, figure))


def run_isolated(mode: str = "full", threads: int = 1, only: list[str] | None = None,
                 progress=None, rounds: int = 1) -> dict[str, Any]:
    """Like ``run_all``, but minicnn and PyTorch are measured in separate fresh processes
    (see the module docstring), case by case, alternately: each case runs in a minicnn
    process and then at once in a PyTorch process (in round 2 PyTorch first, and so on),
    so the two figures of a row are taken minutes apart at most, not a whole run apart.
    With ``rounds`` > 1 every figure is the best of its rounds, for each framework alike:
    the least disturbed measurement on a machine shared with other work.

    Rows whose baseline is not PyTorch (a copy, a plain matmul) come whole from the
    minicnn process; in rows compared with PyTorch, the PyTorch figure comes from the
    PyTorch process and the ratio is recomputed."""
    names = case_names(mode, only)
    sides = ["minicnn"] + (["torch"] if get_torch() is not None else [])
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for r in range(rounds):
        for name in names:
            for side in (sides if r % 2 == 0 else sides[::-1]):
                if side == "torch" and name in NO_TORCH_BASELINE:
                    continue
                if progress:
                    progress(f"round {r + 1}/{rounds}, {name}: {side} in a fresh process")
                runs[side].append(_run_side(side, mode, threads, [name], progress))

    def rows_by_key(side: str) -> dict[tuple[str, str], list[Row]]:
        found: dict[tuple[str, str], list[Row]] = {}
        for run in runs[side]:
            for row in run["rows"]:
                found.setdefault((row.group, row.case), []).append(row)
        return found

    ours = rows_by_key("minicnn")
    theirs = rows_by_key("torch") if "torch" in sides else {}
    rows = []
    for key, measured in ours.items():
        row = _best(measured, "ours")
        if key in theirs:  # compared with PyTorch: its best figure from its own process
            row = row.with_baseline(_best(theirs[key], "theirs").theirs)
        # (a row against a copy or a matmul is kept whole, from the round with minicnn's
        # best figure: its two figures were taken at the same time, in the same process)
        rows.append(row)
    first = runs["minicnn"][0]
    machine = dict(first["machine"], isolated=True, rounds=rounds)
    threads_in_effect = dict(first["threads"])
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for side in sides:
        for run in runs[side]:
            errors.update({(k if side == "minicnn" else f"{k} (torch process)"): v
                           for k, v in run["errors"].items()})
            for k, v in run["seconds"].items():
                seconds[k] = round(seconds.get(k, 0) + v, 2)
    if runs.get("torch"):  # (none when every case chosen lacks a PyTorch baseline)
        t = runs["torch"][0]
        machine.update(torch=t["machine"].get("torch"),
                       omp_wait_policy=t["machine"].get("omp_wait_policy"))
        threads_in_effect.update(t["threads"])
    else:
        machine.update(torch=None)
    skipped = {k: v for run in runs["minicnn"] for k, v in run["skipped"].items()}
    return {"mode": mode, "machine": machine, "threads": threads_in_effect, "rows": rows,
            "seconds": seconds, "skipped": skipped, "errors": errors}
