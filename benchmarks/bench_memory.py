"""Case "memory": peak resident memory that a training step adds, minicnn vs PyTorch.

Method. Each framework runs in a FRESH Python subprocess (``python -m
benchmarks.bench_memory --worker minicnn|torch ...``), so neither sees the other's
allocations. The worker imports what it needs, builds the model (the same architecture
and weights as the "train" case) and its optimizer, and runs one warm-up training step on
a batch of ``WARMUP_BATCH`` images: that compiles or loads the kernels (Numba's LLVM
compilation alone can take more memory than a training step, which once made this case
report 0 MB) and allocates the optimizer state. It then resets the kernel's high-water
mark (``echo 5 > /proc/self/clear_refs``, Linux), reads the resident set size (the
baseline), runs ``cfg.memory_steps`` steps at the benchmark batch and reads the high-water
mark (VmHWM) again. The figure is peak - baseline: the memory training at that batch needs
at its high point (activations, caches, gradients, temporaries, and workspaces kept from
one step to the next, such as minicnn's im2col columns) on top of a warmed-up model.
(An earlier version warmed up at the full batch, which put kept workspaces into the
baseline and hid them.) Where the mark cannot be reset (not Linux) the worker falls back
to ``ru_maxrss`` and says so.
Ratio = torch MB / minicnn MB (target: minicnn at most 1.5x torch, i.e. ratio >= 0.67).
The absolute peaks are noted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import Config, Row, get_torch, time_row

GROUP = "memory"
WARMUP_BATCH = 2  # enough to compile every kernel; small enough to keep no big buffers
TARGET = 1 / 1.5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _status_mb(field: str) -> float | None:
    """A VmRSS / VmHWM line of /proc/self/status in MB, or None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's resident high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def worker(framework: str, model_name: str, batch: int, steps: int, threads: int) -> dict:
    """Runs in the subprocess; returns {"baseline_mb", "peak_mb", "delta_mb", "method"}."""
    if framework == "torch":
        get_torch()  # first, as in the main process (see benchmarks/__main__.py)
    from benchmarks.bench_train import build_model, make_batch, minicnn_step, torch_step
    from benchmarks.common import set_threads

    set_threads(threads, with_torch=framework == "torch")
    if framework != "torch" and "torch" in sys.modules:
        raise RuntimeError("torch was imported into the minicnn worker; its figure is void")
    model = build_model(model_name)
    step = torch_step(model) if framework == "torch" else minicnn_step(model)
    step(*make_batch(min(batch, WARMUP_BATCH)))  # kernels compiled, optimizer state made
    x, y = make_batch(batch)
    # the mark is reset first and the baseline read after it, so nothing freed in between
    # counts (the kernel's counters are still approximate to about 0.1 MB)
    if _status_mb("VmRSS") is not None and _reset_peak():
        baseline, method = _status_mb("VmRSS"), "VmHWM after clear_refs"
    else:
        baseline, method = _maxrss_mb(), "ru_maxrss (peak not resettable)"
    for _ in range(steps):
        step(x, y)
    peak = _status_mb("VmHWM") if method.startswith("VmHWM") else _maxrss_mb()
    return {"baseline_mb": baseline, "peak_mb": peak, "delta_mb": max(0.0, peak - baseline),
            "method": method}


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
