"""Case "memory": peak resident memory that a training step adds, minicnn vs PyTorch.

Method. Each framework runs in a FRESH Python subprocess (``python -m
benchmarks.bench_memory --worker minicnn|torch ...``), so neither sees the other's
allocations. The worker imports what it needs, builds the model (the same architecture
and weights as the "train" case), and runs one training step at batch 1: that loads
Numba's compiled kernels or PyTorch's kernels and allocates the optimizer state. It then
reads the process's peak resident set size, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(the baseline), runs ``cfg.memory_steps`` training steps at the benchmark batch, and
reads the peak again. The figure is peak - baseline: the extra memory a batch's
activations, caches, gradients and workspaces need at their high point. ru_maxrss is a
high-water mark, so a transient peak counts, as it should. Ratio = torch MB / minicnn MB
(target: minicnn at most 1.5x torch, i.e. ratio >= 0.67). The absolute peaks are noted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import Config, Row, get_torch, time_row

GROUP = "memory"
TARGET = 1 / 1.5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def worker(framework: str, model_name: str, batch: int, steps: int, threads: int) -> dict:
    """Runs in the subprocess; returns {"baseline_mb", "peak_mb", "delta_mb"}."""
    if framework == "torch":
        get_torch()  # first, as in the main process (see benchmarks/__main__.py)
    from benchmarks.bench_train import build_model, make_batch, minicnn_step, torch_step
    from benchmarks.common import set_threads

    set_threads(threads, with_torch=framework == "torch")
    if framework != "torch" and "torch" in sys.modules:
        raise RuntimeError("torch was imported into the minicnn worker; its figure is void")
    model = build_model(model_name)
    step = torch_step(model) if framework == "torch" else minicnn_step(model)
    x, y = make_batch(batch)
    step(*make_batch(1))
    baseline = _peak_mb()
    for _ in range(steps):
        step(x, y)
    peak = _peak_mb()
    return {"baseline_mb": baseline, "peak_mb": peak, "delta_mb": peak - baseline}


def _measure_in_subprocess(framework: str, cfg: Config) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--worker", framework,
           "--model", cfg.models[0], "--batch", str(cfg.batch), "--steps", str(cfg.memory_steps),
           "--threads", str(cfg.threads)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {framework} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cfg: Config) -> list[Row]:
    ours = _measure_in_subprocess("minicnn", cfg)
    theirs = _measure_in_subprocess("torch", cfg) if get_torch() is not None else None
    note = f"peak RSS {ours['peak_mb']:.0f} MB"
    if theirs is not None:
        note += f" vs {theirs['peak_mb']:.0f} MB"
    return [time_row(GROUP, f"train step {cfg.models[0]} (batch {cfg.batch}), peak - baseline",
                     ours["delta_mb"], None if theirs is None else theirs["delta_mb"], "MB",
                     TARGET, note=note)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="memory worker (used by python -m benchmarks)")
    p.add_argument("--worker", choices=("minicnn", "torch"), required=True)
    p.add_argument("--model", default="default")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    print(json.dumps(worker(a.worker, a.model, a.batch, a.steps, a.threads)))


if __name__ == "__main__":
    main()
