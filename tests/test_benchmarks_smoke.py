"""The benchmark suite runs end to end on tiny shapes (what ``python -m benchmarks --smoke``
does), and its PyTorch twin of a model computes the same function as the model.
No timing is asserted: these tests check that the figures exist, not their values."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from benchmarks import report
from benchmarks.common import Config, get_torch
from benchmarks.runner import run_all

IN_PROCESS = ["train", "layers", "kernels", "gemm", "inference"]


@pytest.fixture
def restore_threads():
    """run_all sets the thread counts of Numba, OpenBLAS and torch; put them back."""
    from minicnn.threads import get_num_threads, set_num_threads

    before = get_num_threads()
    torch = get_torch()
    torch_before = torch.get_num_threads() if torch is not None else None
    yield
    set_num_threads(before["blas"] or before["numba"] or os.cpu_count() or 1)
    if before["numba"]:
        import numba

        numba.set_num_threads(before["numba"])
    if torch is not None:
        torch.set_num_threads(torch_before)


def test_smoke_run_fills_the_table(restore_threads):
    # one thread: quick and steady even when the test suite shares the machine
    result = run_all("smoke", threads=1, only=IN_PROCESS)
    assert result["errors"] == {}
    rows = result["rows"]
    assert {r.group for r in rows} == set(IN_PROCESS)
    for r in rows:
        assert r.ours is not None and math.isfinite(r.ours) and r.ours > 0, r
    if get_torch() is not None:
        compared = [r for r in rows if r.group in ("train", "layers", "inference")]
        assert all(r.ratio is not None and r.ratio > 0 for r in compared)
    text = report.table(rows)
    assert len(text.splitlines()) >= len(rows) + 2
    assert "train step small" in text
    header = "\n".join(report.header_lines("smoke", result["machine"], result["threads"]))
    assert "HIGHER IS BETTER" in header and "threads" in header
    # one process: OpenBLAS started with this process's variables, and the header says so
    machine = dict(result["machine"], openblas_env={"OPENBLAS_CORETYPE": "Haswell"})
    header = "\n".join(report.header_lines("smoke", machine, result["threads"]))
    assert "OPENBLAS_CORETYPE=Haswell was set" in header
    assert result["machine"]["openblas_env"] == {
        k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}


def test_memory_worker_runs_in_a_fresh_process():
    from benchmarks.bench_memory import _measure_in_subprocess

    figures = _measure_in_subprocess("minicnn", Config.for_mode("smoke", 1))
    # a smoke step adds next to nothing, and the kernel's RSS counters are per-CPU
    # approximations (VmHWM read 0.1 MB below an earlier VmRSS): allow 1 MB of that
    assert figures["peak_mb"] >= figures["baseline_mb"] - 1 > 0
    assert figures["delta_mb"] == pytest.approx(
        max(0.0, figures["peak_mb"] - figures["baseline_mb"]))
    assert figures["method"] in ("VmHWM after clear_refs", "ru_maxrss (peak not resettable)")


def test_torch_twin_computes_the_same_function():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_models import torch_sequential
    from minicnn import Sequential
    from minicnn.layers import (
        BatchNorm2D,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        GlobalAvgPool2D,
        MaxPool2D,
        ReLU,
    )

    rng = np.random.default_rng(0)
    models = [
        Sequential([Conv2D(1, 4, 3, padding="same", bias=False), BatchNorm2D(4), ReLU(),
                    MaxPool2D(2), Dropout(0.3), Flatten(), Dense(4 * 4 * 4, 7)], rng=1),
        Sequential([Conv2D(1, 4, 3, stride=2, padding=1), ReLU(), GlobalAvgPool2D(),
                    Dense(4, 7)], rng=2),
    ]
    for model in models:
        bn = [layer for layer in model.layers if isinstance(layer, BatchNorm2D)]
        for layer in bn:  # non-trivial running statistics and affine parameters
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2, layer.num_features)
            layer.params["gamma"][...] = rng.uniform(0.5, 2, layer.num_features)
        model.eval()
        x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
        net = torch_sequential(model)
        assert not net.training
        with torch.no_grad():
            theirs = net(torch.from_numpy(x)).numpy()
        ours = model.forward(x)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def _fake_side(calls, figures):
    """A stand-in for runner._run_side: records (side, case) and returns one row per case,
    with the figure ``figures[side][case]`` pops next (rounds in order)."""
    from benchmarks.common import Row, rate_row, time_row

    def run_side(side, mode, threads, only, progress=None):
        (case,) = only
        calls.append((side, case))
        value = figures[side][case].pop(0)
        if case == "train":  # a rate compared with PyTorch
            row = rate_row("train", "step", value if side == "minicnn" else None,
                           value if side == "torch" else None, "img/s", 1.0)
        elif case == "memory":  # a size compared with PyTorch
            row = time_row("memory", "peak", value if side == "minicnn" else None,
                           value if side == "torch" else None, "MB", 0.67)
        else:  # a rate against a plain copy that minicnn's process times (no torch run)
            row = rate_row("kernels", "im2col", value[0], value[1], "GB/s", 0.5)
        assert isinstance(row, Row)
        return {"machine": {"cpu": "test", "torch": "2.x" if side == "torch" else None},
                "threads": {side: 2}, "rows": [row], "seconds": {case: 1.0},
                "skipped": {}, "errors": {}}

    return run_side


def test_isolated_runs_alternate_and_keep_each_frameworks_best(monkeypatch):
    from benchmarks import runner

    monkeypatch.setattr(runner, "get_torch", lambda: object())  # no real PyTorch runs here
    calls = []
    figures = {"minicnn": {"train": [100.0, 120.0], "memory": [250.0, 240.0],
                           "kernels": [(10.0, 20.0), (12.0, 18.0)]},
               "torch": {"train": [110.0, 90.0], "memory": [200.0, 210.0]}}
    monkeypatch.setattr(runner, "_run_side", _fake_side(calls, figures))
    result = runner.run_isolated("smoke", 2, ["train", "memory", "kernels"], rounds=2)
    # case by case, the frameworks alternating; round 2 starts with PyTorch; a case with
    # no PyTorch baseline runs in minicnn's process only
    assert calls == [("minicnn", "train"), ("torch", "train"), ("minicnn", "memory"),
                     ("torch", "memory"), ("minicnn", "kernels"),
                     ("torch", "train"), ("minicnn", "train"), ("torch", "memory"),
                     ("minicnn", "memory"), ("minicnn", "kernels")]
    rows = {r.group: r for r in result["rows"]}
    assert (rows["train"].ours, rows["train"].theirs) == (120.0, 110.0)  # highest rates
    assert rows["train"].ratio == pytest.approx(120 / 110)
    assert (rows["memory"].ours, rows["memory"].theirs) == (240.0, 200.0)  # smallest sizes
    assert rows["memory"].ratio == pytest.approx(200 / 240)
    # against a copy: the whole row of minicnn's best round (figures taken together)
    assert (rows["kernels"].ours, rows["kernels"].theirs) == (12.0, 18.0)
    assert result["machine"]["rounds"] == 2 and result["machine"]["torch"] == "2.x"
    assert result["seconds"] == {"train": 4.0, "memory": 4.0, "kernels": 2.0}
    assert "2 rounds, each figure the best" in "\n".join(
        report.header_lines("smoke", dict(result["machine"], cores=2, usable_cores=2,
                                          platform="p", python="3", numpy="2",
                                          numpy_blas="b", omp_wait_policy="-"),
                            result["threads"]))


def test_isolated_run_of_cases_without_a_pytorch_baseline(monkeypatch):
    """``--only kernels`` (or gemm, e2e) starts no PyTorch process; the merge must not
    look for one (it used to fail with an IndexError)."""
    from benchmarks import runner

    monkeypatch.setattr(runner, "get_torch", lambda: object())  # no real PyTorch runs here
    calls = []
    figures = {"minicnn": {"kernels": [(10.0, 20.0)]}, "torch": {}}
    monkeypatch.setattr(runner, "_run_side", _fake_side(calls, figures))
    result = runner.run_isolated("smoke", 2, ["kernels"], rounds=1)
    assert calls == [("minicnn", "kernels")]
    assert [(r.ours, r.theirs) for r in result["rows"]] == [(10.0, 20.0)]
    assert result["machine"]["torch"] is None
