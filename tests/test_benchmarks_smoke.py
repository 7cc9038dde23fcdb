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


def test_memory_worker_runs_in_a_fresh_process():
    from benchmarks.bench_memory import _measure_in_subprocess

    figures = _measure_in_subprocess("minicnn", Config.for_mode("smoke", 1))
    assert figures["peak_mb"] >= figures["baseline_mb"] > 0


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
