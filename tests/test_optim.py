"""Optimizer and schedule behaviour that does not need PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minicnn.optim import SGD, Adam, AdamW, CosineWarmup, OneCycle, StepLR


def quadratic(opt_factory, steps=200):
    """Minimise 0.5*||p - 3||^2 and return the final parameter."""
    p = {"p": np.zeros(4)}
    opt = opt_factory(p)
    for _ in range(steps):
        opt.step({"p": p["p"] - 3.0})
    return p["p"]


@pytest.mark.parametrize("factory", [
    lambda p: SGD(p, lr=0.1),
    lambda p: SGD(p, lr=0.05, momentum=0.9),
    lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    lambda p: Adam(p, lr=0.1),
    lambda p: AdamW(p, lr=0.1, weight_decay=0.0),
])
def test_optimizers_converge_in_place(factory):
    np.testing.assert_allclose(quadratic(factory), 3.0, atol=1e-2)


def test_no_decay_and_weight_decay():
    p = {"w": np.ones(2), "b": np.ones(2)}
    opt = SGD(p, lr=0.1, weight_decay=0.5, no_decay={"b"})
    opt.step({"w": np.zeros(2), "b": np.zeros(2)})
    np.testing.assert_allclose(p["w"], 0.95)
    np.testing.assert_allclose(p["b"], 1.0)


def test_state_arrays_round_trip():
    p = {"w": np.ones(3)}
    a = Adam(p, lr=0.1)
    for _ in range(3):
        a.step({"w": np.arange(3.0)})
    q = {"w": p["w"].copy()}
    b = Adam(q, lr=0.1)
    b.load_state_arrays(a.state_arrays())
    assert b.t == 3
    a.step({"w": np.arange(3.0)})
    b.step({"w": np.arange(3.0)})
    np.testing.assert_array_equal(p["w"], q["w"])


def test_missing_gradient_is_an_error():
    with pytest.raises(KeyError, match="no gradient"):
        SGD({"w": np.ones(2)}, lr=0.1).step({})


def test_schedules_shapes():
    s = StepLR(1.0, step_size=10, gamma=0.5)
    assert s(0) == 1.0 and s(9) == 1.0 and s(10) == 0.5 and s(25) == 0.25
    c = CosineWarmup(1.0, total_steps=100, warmup_steps=10, min_lr=0.1)
    assert c(0) == pytest.approx(0.1) and c(9) == pytest.approx(1.0)
    assert c(55) == pytest.approx(0.55) and c(100) == pytest.approx(0.1)
    lrs = [c(i) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    o = OneCycle(1.0, total_steps=100, pct_start=0.3)
    assert o(0) == pytest.approx(1 / 25)
    assert max(o(i) for i in range(100)) == pytest.approx(1.0, rel=1e-3)
    assert o(99) == pytest.approx(1 / 25 / 1e4)
    assert math.isclose(max(range(100), key=o), 29, abs_tol=1)
