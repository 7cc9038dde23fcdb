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


# Torch-free checks of the update formulas: three steps on one scalar, against the
# numbers worked out by hand (SGD) and against the published formulas written out for a
# scalar with the math module (Adam, AdamW), under both backends.
GRADS = (0.5, -0.25, 1.0)


def steps(opt_factory, backend):
    import minicnn

    p = np.array([1.0])
    opt = opt_factory({"p": p})
    path = []
    with minicnn.backend(backend):
        for g in GRADS:
            opt.step({"p": np.array([g])})
            path.append(float(p[0]))
    return path


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_sgd_momentum_and_nesterov_match_the_hand_worked_steps(backend):
    # momentum: g1 = 0.5 + 0.1 * 1 = 0.6, buf = 0.6, p = 1 - 0.1 * 0.6 = 0.94;
    # g2 = -0.25 + 0.094 = -0.156, buf = 0.54 - 0.156 = 0.384, p = 0.94 - 0.0384 = 0.9016
    heavy = steps(lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), backend)
    assert heavy[:2] == pytest.approx([0.94, 0.9016], abs=1e-12)
    # Nesterov: step 1 moves by lr * (g + 0.9 * buf) = 0.1 * 1.14; step 2: g2 = -0.25 +
    # 0.0886 = -0.1614, buf = 0.54 - 0.1614 = 0.3786, by 0.1 * (-0.1614 + 0.34074)
    nesterov = steps(lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                    weight_decay=0.1), backend)
    assert nesterov[:2] == pytest.approx([0.886, 0.868066], abs=1e-12)


def adam_scalar(lr, b1, b2, eps, wd, decoupled):
    p, m, v, path = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        path.append(p)
    return path


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize(("cls", "decoupled"), [(Adam, False), (AdamW, True)])
def test_adam_and_adamw_follow_the_published_update(backend, cls, decoupled):
    got = steps(lambda ps: cls(ps, lr=0.1, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1),
                backend)
    assert got == pytest.approx(adam_scalar(0.1, 0.8, 0.9, 1e-8, 0.1, decoupled), abs=1e-12)
    # the first step moves by lr (bias-corrected m / sqrt(v) = sign(g)), after AdamW's decay
    first = 1 - 0.1 * 0.1 - 0.1 if decoupled else 1 - 0.1
    assert got[0] == pytest.approx(first, abs=1e-7)
