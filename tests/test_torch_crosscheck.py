"""Cross-checks against PyTorch (optional: skipped when torch is not installed).

Forward and backward of each layer and of a whole network must match ``torch.nn`` in
float64 to 1e-9 relative; 20 steps of Adam and SGD with momentum must match torch.optim.
The ops are the reference path's (``minicnn.functional``, or layers under
``minicnn.backend("reference")``); the engine's Winograd convolutions and a whole network
on the fast backend are checked against torch as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from winograd_helpers import winograd_everywhere

import minicnn
from minicnn import engine
from minicnn import functional as F
from minicnn.kernels import conv_output_size
from minicnn.layers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU
from minicnn.optim import SGD, Adam, AdamW, OneCycle

torch = pytest.importorskip("torch")
nnF = torch.nn.functional
RTOL = 1e-9
seeds = st.integers(0, 2**31 - 1)


def close(a, b, rtol=RTOL, floor=0.0):
    """|a - b| <= rtol * (the largest |b|, or ``floor`` if larger: the size of the terms
    that make up b, where they may cancel to almost nothing)."""
    a, b = np.asarray(a), b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    scale = max(np.abs(b).max(initial=0.0), floor, 1e-12)
    assert a.shape == b.shape
    assert np.abs(a - b).max(initial=0.0) <= rtol * scale, np.abs(a - b).max() / scale


def t(x):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(3, 8),
       st.integers(3, 8), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), seeds,
       st.sampled_from([None, 2, 3, 4]))
def test_conv2d_matches_torch(N, C, F_, H, W, k, stride, padding, seed, winograd):
    """The reference convolution (winograd None) and, for 3x3, stride 1, padding 0 or 1, the
    engine's Winograd convolutions with 2x2, 3x3 or 4x4 output tiles, against torch."""
    assume(conv_output_size(H, k, stride, padding) > 0)
    assume(conv_output_size(W, k, stride, padding) > 0)
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((F_, C, k, k))
    b = rng.standard_normal(F_)
    ops = F if winograd is None else engine
    with winograd_everywhere(winograd is not None, tile=winograd):
        out, cache = ops.conv2d_forward(x, w, b, stride, padding)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = ops.conv2d_backward(dout, cache)
    tx, tw, tb = t(x), t(w), t(b)
    tout = nnF.conv2d(tx, tw, tb, stride=stride, padding=padding)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(dx, tx.grad)
    close(dw, tw.grad)
    close(db, tb.grad)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9),
       st.integers(1, 3), st.integers(1, 3), seeds)
def test_maxpool_matches_torch(N, C, H, W, k, stride, seed):
    assume(H >= k and W >= k)
    rng = np.random.default_rng(seed)
    x = rng.permutation(N * C * H * W).reshape(N, C, H, W).astype(np.float64)  # no ties
    out, cache = F.maxpool2d_forward(x, k, stride)
    dout = rng.standard_normal(out.shape)
    tx = t(x)
    tout = nnF.max_pool2d(tx, k, stride)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(F.maxpool2d_backward(dout, cache), tx.grad)


@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.booleans(), st.booleans(), seeds)
def test_batchnorm_matches_torch(N, C, H, W, training, relu, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)) * 3 + 1
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
    ours_rm, ours_rv = rm.copy(), rv.copy()
    out, cache = F.batchnorm2d_forward(x, gamma, beta, ours_rm, ours_rv, 0.1, 1e-5, training,
                                       relu=relu)
    dout = rng.standard_normal(out.shape)
    dx, dg, dbeta = F.batchnorm2d_backward(dout, cache)
    tx, tg, tb = t(x), t(gamma), t(beta)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    tout = nnF.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=0.1, eps=1e-5)
    if relu:  # the fused ReLU against torch's separate one
        tout = nnF.relu(tout)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    # dx sums terms of size |gamma * dout| / std; with two values per channel (N*H*W = 2)
    # they cancel exactly, and both frameworks return rounding noise (1e-9)
    std = np.sqrt((x.var(axis=(0, 2, 3)) if training else rv) + 1e-5)
    close(dx, tx.grad, floor=np.max(np.abs(gamma) / std) * np.abs(dout).max())
    close(dg, tg.grad)
    close(dbeta, tb.grad)
    close(ours_rm, trm)
    close(ours_rv, trv)


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 5), seeds)
def test_dense_matches_torch(N, D, M, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((N, D)), rng.standard_normal((M, D)), rng.standard_normal(M)
    out, cache = F.dense_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.dense_backward(dout, cache, w)
    tx, tw, tb = t(x), t(w), t(b)
    tout = nnF.linear(tx, tw, tb)
    tout.backward(torch.from_numpy(dout))
    for ours, theirs in ((out, tout), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        close(ours, theirs)


@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 0.5), st.booleans(), seeds)
def test_cross_entropy_matches_torch(N, K, smoothing, weighted, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K)) * 2
    labels = rng.integers(0, K, N)
    weights = rng.uniform(0.2, 3, K) if weighted else None
    loss, d = F.softmax_cross_entropy(logits, labels, smoothing, weights)
    tl = t(logits)
    tloss = nnF.cross_entropy(tl, torch.from_numpy(labels),
                              weight=None if weights is None else torch.from_numpy(weights),
                              label_smoothing=smoothing)
    tloss.backward()
    close(np.array(loss), tloss)
    close(d, tl.grad)


def relu_gap_pair(seed):
    """The same small network in minicnn and torch, with identical float64 weights."""
    ours = minicnn.Sequential([
        Conv2D(1, 4, 3, padding="same", bias=False), BatchNorm2D(4), ReLU(), MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1), ReLU(), GlobalAvgPool2D(), Dense(6, 5), ReLU(), Dense(5, 3),
    ], rng=seed).astype(np.float64)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
    ).double()
    mapping = {"0.W": theirs[0].weight, "1.gamma": theirs[1].weight, "1.beta": theirs[1].bias,
               "4.W": theirs[4].weight, "4.b": theirs[4].bias, "7.W": theirs[8].weight,
               "7.b": theirs[8].bias, "9.W": theirs[10].weight, "9.b": theirs[10].bias}
    with torch.no_grad():
        for name, tp in mapping.items():
            tp.copy_(torch.from_numpy(ours.parameters()[name]))
    return ours, theirs, mapping


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_whole_network_matches_torch(backend):
    with minicnn.backend(backend):
        whole_network_matches_torch()


def whole_network_matches_torch():
    ours, theirs, mapping = relu_gap_pair(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8))
    y = np.array([0, 1, 2, 1])
    loss_fn = minicnn.SoftmaxCrossEntropy(label_smoothing=0.1)
    loss = loss_fn(ours.forward(x), y)
    dx = ours.backward(loss_fn.backward())
    tx = t(x)
    tloss = nnF.cross_entropy(theirs(tx), torch.from_numpy(y), label_smoothing=0.1)
    tloss.backward()
    close(np.array(loss), tloss)
    close(dx, tx.grad)
    for name, tp in mapping.items():
        close(ours.gradients()[name], tp.grad)
    close(ours.buffers()["1.running_var"], theirs[1].running_var)
    ours.eval()
    theirs.eval()
    close(ours.forward(x), theirs(torch.from_numpy(x)))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd_momentum", "sgd_nesterov"])
def test_optimizers_match_torch_for_20_steps(name):
    with minicnn.backend("reference"):
        optimizer_matches_torch(name)


def optimizer_matches_torch(name):
    ours, theirs, mapping = relu_gap_pair(1)
    params = {n: ours.parameters()[n] for n in mapping}
    tparams = [mapping[n] for n in mapping]
    if name == "adam":
        opt = Adam(params, lr=1e-2, weight_decay=1e-3)
        topt = torch.optim.Adam(tparams, lr=1e-2, weight_decay=1e-3)
    elif name == "adamw":
        opt = AdamW(params, lr=1e-2, weight_decay=0.05)
        topt = torch.optim.AdamW(tparams, lr=1e-2, weight_decay=0.05)
    else:
        nesterov = name == "sgd_nesterov"
        opt = SGD(params, lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=1e-3)
        topt = torch.optim.SGD(tparams, lr=0.05, momentum=0.9, nesterov=nesterov,
                               weight_decay=1e-3)
    rng = np.random.default_rng(2)
    loss_fn = minicnn.SoftmaxCrossEntropy()
    for _ in range(20):
        x = rng.standard_normal((4, 1, 8, 8))
        y = rng.integers(0, 3, 4)
        loss_fn(ours.forward(x), y)
        ours.backward(loss_fn.backward())
        opt.step(ours.gradients())
        topt.zero_grad()
        nnF.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for n, tp in mapping.items():
        close(ours.parameters()[n], tp, rtol=1e-8)


def test_onecycle_matches_torch():
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=50,
                                                cycle_momentum=False)
    ours = OneCycle(0.1, total_steps=50)
    for step in range(50):
        assert ours(step) == pytest.approx(topt.param_groups[0]["lr"], rel=1e-9)
        topt.step()
        sched.step()
