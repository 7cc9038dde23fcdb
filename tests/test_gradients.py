"""Hand-written backward passes against central-difference numerical gradients, in float64.

The checks run on the reference path (``minicnn.functional``, and whole networks under
``minicnn.backend("reference")``); the engine's Winograd convolution and its kept or
recomputed columns are checked here too, and tests/test_backend_equality.py proves every
other engine path equal to the reference.

Every check weights the output by a random upstream gradient ``dout`` (so the whole
Jacobian-vector product is checked, not just a sum) and asserts the relative error
max|a - b| / max(1e-8, |a| + |b|) is below 1e-6. Kinks are avoided rather than excused:
ReLU inputs are drawn away from 0 and max-pool inputs are unique and well separated, so
a perturbation of h = 1e-6 never changes which branch is taken.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from winograd_helpers import runs_as_winograd, winograd_everywhere
from winograd_helpers import target_columns as chunk_columns

import minicnn
from minicnn import engine
from minicnn import functional as F
from minicnn.engine import conv as conv_module
from minicnn.gradcheck import numerical_gradient, rel_error
from minicnn.kernels import conv_output_size
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

TOL = 1e-6
LINEAR_H = 1e-2  # step for functions linear in the perturbed argument (exact differences)
seeds = st.integers(0, 2**31 - 1)


def unique_values(rng, shape, gap=1e-3):
    """Distinct values at least ``gap`` apart, shuffled: no ties, no kinks under h=1e-6."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap + rng.uniform(0, gap / 10)).reshape(shape) - n * gap / 2


def away_from_zero(rng, shape, margin=1e-2):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x)


def assert_conv_gradients(f, inputs, dout, cache, grads, ops=F):
    """(dx, dw, db) against the numerical derivative of f() with respect to (x, w, b), and
    the same dw from a backward without dx (by ``ops``: functional or engine)."""
    # conv is linear in each of x, w, b: central differences are exact for any h, and a
    # large h keeps round-off far below the smallest gradient entries
    for analytic, var in zip(grads, inputs):
        assert rel_error(analytic, numerical_gradient(f, var, dout, h=LINEAR_H)) < TOL
    none_dx, dw2, _ = ops.conv2d_backward(dout, cache, need_dx=False)
    assert none_dx is None
    np.testing.assert_allclose(dw2, grads[1])


@st.composite
def conv_params(draw):
    N, C, F_ = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    k = draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 2))
    assume(conv_output_size(H, k, stride, padding) > 0)
    assume(conv_output_size(W, k, stride, padding) > 0)
    return (N, C, H, W), (F_, C, k, k), stride, padding, draw(seeds)


@given(conv_params())
def test_conv2d_gradients(params):
    x_shape, w_shape, stride, padding, seed = params
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = F.conv2d_forward(x, w, b, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)

    def f():
        return F.conv2d_forward(x, w, b, stride, padding)[0]

    assert_conv_gradients(f, (x, w, b), dout, cache, (dx, dw, db))
    dx3, dw3, none_db = F.conv2d_backward(dout, cache, need_db=False)
    assert none_db is None
    np.testing.assert_allclose(dx3, dx)
    np.testing.assert_allclose(dw3, dw)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 10),
       st.integers(1, 10), st.sampled_from([0, 1]), st.sampled_from([2, 3, 4, None]),
       st.sampled_from([1, 4096]), seeds)
def test_winograd_conv2d_gradients(N, C, F_, H, W, padding, tile, target_columns, seed):
    """The engine's 3x3, stride 1 convolutions, "same" (padding 1) and "valid" (padding 0),
    as Winograd F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3) (and the cost model's mix for
    forward and dx; sizes that are no multiple of the tile included: their last tiles are
    cut): the reference convolution's output, and gradients that pass the numerical check."""
    assume(min(H, W) + 2 * padding >= 3)
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal((N, C, H, W)), rng.standard_normal((F_, C, 3, 3)),
               rng.standard_normal(F_))
    expected = F.conv2d_forward(x, w, b, 1, padding)[0]
    with chunk_columns(target_columns), winograd_everywhere(tile=tile):  # 1: an image a chunk
        assert runs_as_winograd(N, C, F_, H, W, padding)
        out, cache = engine.conv2d_forward(x, w, b, 1, padding)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = engine.conv2d_backward(dout, cache)

        def f():  # the numerical derivative, taken through the reference: the Winograd
            # forward's rounding (1e-14) on taps that only meet the padding would otherwise
            # pass for gradient where the true one is exactly 0
            return F.conv2d_forward(x, w, b, 1, padding)[0]

        assert_conv_gradients(f, (x, w, b), dout, cache, (dx, dw, db), ops=engine)


@given(conv_params(), st.sampled_from([1, 4096]))
def test_conv2d_cached_columns_match_recomputed(params, target_columns):
    """The engine keeping im2col columns for backward gives the same gradients as
    recomputing them, and so does a cache whose kept columns a later forward with the same
    weights took over."""
    x_shape, w_shape, stride, padding, seed = params
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    old = conv_module.CACHE_COLUMNS_BYTES
    try:
        grads = []
        with chunk_columns(target_columns), winograd_everywhere(False):
            for budget in (0, 2**30):  # recompute, then keep
                conv_module.CACHE_COLUMNS_BYTES = budget
                out, cache = engine.conv2d_forward(x, w, b, stride, padding)
                assert (cache.cols is None) == (budget == 0)
                grads.append(engine.conv2d_backward(np.ones_like(out), cache))
            engine.conv2d_forward(rng.standard_normal(x_shape), w, b, stride, padding)
            grads.append(engine.conv2d_backward(np.ones_like(out), cache))  # taken over
        for recomputed, kept, taken in zip(*grads):
            np.testing.assert_array_equal(kept, recomputed)
            np.testing.assert_array_equal(taken, recomputed)
    finally:
        conv_module.CACHE_COLUMNS_BYTES = old


def test_conv2d_matches_direct_definition():
    """The GEMM result equals the convolution written as a sum (cross-correlation)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    out, _ = F.conv2d_forward(x, w, b, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros_like(out)
    for oh in range(out.shape[2]):
        for ow in range(out.shape[3]):
            patch = xp[:, :, 2 * oh:2 * oh + 3, 2 * ow:2 * ow + 2]
            ref[:, :, oh, ow] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7),
       st.integers(1, 3), st.integers(1, 3), seeds)
def test_maxpool_gradients(N, C, H, W, k, stride, seed):
    assume(H >= k and W >= k)
    rng = np.random.default_rng(seed)
    x = unique_values(rng, (N, C, H, W))
    out, cache = F.maxpool2d_forward(x, k, stride)
    dout = rng.standard_normal(out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    # piecewise linear; h stays well inside the 1e-3 gap between values
    num = numerical_gradient(lambda: F.maxpool2d_forward(x, k, stride)[0], x, dout, h=1e-4)
    assert rel_error(dx, num) < TOL


@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), seeds)
def test_dense_gradients(N, D, M, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((N, D)), rng.standard_normal((M, D)), rng.standard_normal(M)
    out, cache = F.dense_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.dense_backward(dout, cache, w)

    def f():
        return F.dense_forward(x, w, b)[0]

    for analytic, var in ((dx, x), (dw, w), (db, b)):
        assert rel_error(analytic, numerical_gradient(f, var, dout, h=LINEAR_H)) < TOL


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds)
def test_relu_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    out, cache = F.relu_forward(x)
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient(lambda: F.relu_forward(x)[0], x, dout, h=1e-3)  # < the margin
    assert rel_error(F.relu_backward(dout, cache), num) < TOL


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.floats(0.0, 0.9), seeds)
def test_dropout_gradients_and_scaling(shape, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)

    def f():  # the same Generator seed gives the same mask on every call
        return F.dropout_forward(x, p, np.random.default_rng(seed))[0]

    out, mask = F.dropout_forward(x, p, np.random.default_rng(seed))
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient(f, x, dout, h=LINEAR_H)
    assert rel_error(F.dropout_backward(dout, mask), num) < TOL
    if mask is not None:  # inverted dropout: survivors scaled by exactly 1/(1-p)
        assert set(np.unique(mask)) <= {0.0, 1.0 / (1.0 - p)}
    evaluated, _ = F.dropout_forward(x, p, np.random.default_rng(seed), training=False)
    assert evaluated is x


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.booleans(), st.booleans(), seeds)
def test_batchnorm_gradients(N, C, H, W, training, relu, seed):
    assume(N * H * W >= 4)  # with 2 values xhat is exactly +-1 and dx is ~eps: all noise
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)) * 2 + 0.5
    # |gamma| >= 0.5: a tiny gamma makes a channel's dx ~1e-6, below the round-off floor
    gamma = rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)
    beta = rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)

    def f(fused=relu):  # running stats are copied so the check does not drift them
        return F.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), 0.1, 1e-5,
                                     training, relu=fused)[0]

    # the fused ReLU's kink: central differences across it measure neither side
    assume(not relu or np.abs(f(fused=False)).min() > 1e-3)
    out, cache = F.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), 0.1, 1e-5,
                                       training, relu=relu)
    if relu:
        np.testing.assert_array_equal(out, np.maximum(f(fused=False), 0))
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = F.batchnorm2d_backward(dout, cache)
    # The differences are taken in extended precision (np.longdouble), as offsets from the
    # unperturbed output: entries of dx that cancel to ~1e-7 (a fused ReLU's gating makes
    # them) are below the round-off of a float64 difference of O(1) outputs.
    wide = [v.astype(np.longdouble) for v in (x, gamma, beta, rm, rv)]

    def f_wide():
        return F.batchnorm2d_forward(*wide[:3], wide[3].copy(), wide[4].copy(), 0.1, 1e-5,
                                     training, relu=relu)[0]

    base = f_wide()
    for analytic, var in zip((dx, dgamma, dbeta), wide):
        num = numerical_gradient(lambda: f_wide() - base, var, dout, h=1e-5)
        assert rel_error(analytic, num) < TOL


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), seeds)
def test_global_avgpool_gradients(N, C, H, W, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    out, shape = F.global_avgpool_forward(x)
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient(lambda: F.global_avgpool_forward(x)[0], x, dout, h=LINEAR_H)
    assert rel_error(F.global_avgpool_backward(dout, shape), num) < TOL


@given(st.integers(1, 5), st.integers(2, 7), st.floats(0.0, 0.5), st.booleans(), seeds)
def test_softmax_cross_entropy_gradients(N, K, smoothing, weighted, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K))  # saturated softmax makes gradients ~1e-9: noise
    labels = rng.integers(0, K, N)
    weights = rng.uniform(0.2, 3.0, K) if weighted else None
    loss, dlogits = F.softmax_cross_entropy(logits, labels, smoothing, weights)
    num = numerical_gradient(
        lambda: F.softmax_cross_entropy(logits, labels, smoothing, weights)[0], logits, h=1e-5)
    assert np.isfinite(loss)
    assert rel_error(dlogits, num) < TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 5e4]])
    loss, d = F.softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest_approx(np.log(2) / 2)


def pytest_approx(v):
    import pytest

    return pytest.approx(v, rel=1e-9, abs=1e-12)


def far_from_kinks(model, x, seed, margin=2e-4):
    """True when no ReLU input lies within ``margin`` of 0 and no max-pool window has a
    runner-up within ``margin`` of a positive maximum. Near such a kink a finite difference
    straddles two linear pieces and measures neither: those draws are rejected, not
    excused."""
    model.layers[4].rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, ReLU) and np.min(np.abs(x)) < margin:
            return False
        if isinstance(layer, MaxPool2D):
            k, s = layer.kernel_size, layer.stride
            N, C, H, W = x.shape
            OH, OW = (H - k) // s + 1, (W - k) // s + 1
            for oh in range(OH):
                for ow in range(OW):
                    win = np.sort(x[:, :, oh * s:oh * s + k, ow * s:ow * s + k].reshape(N, C, -1))
                    if win.shape[-1] < 2:
                        continue
                    # a tie between two zeros that a ReLU produced is harmless: both
                    # sides of the difference see gradient 0
                    top, gap = win[..., -1], win[..., -1] - win[..., -2]
                    if np.any((gap < margin) & (top > 0)):
                        return False
        x = layer.forward(x)
    return True


@given(seeds, st.sampled_from([("reference", 4096), ("fast", 1), ("fast", 4096)]))
def test_whole_network_gradients(seed, how):
    """Backprop through a small network with every layer type matches numerical gradients
    for the input and for every parameter: on the reference backend, and on the fast one
    with chunks of one image or of several."""
    backend, target_columns = how
    model = minicnn.Sequential([
        Conv2D(2, 3, 3, padding="same", bias=False), BatchNorm2D(3), ReLU(), MaxPool2D(2),
        Dropout(0.3), Conv2D(3, 4, 2, stride=1), ReLU(), Flatten(), Dense(4 * 2 * 2, 5),
    ], rng=seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 6, 6))
    labels = rng.integers(0, 5, 2)
    loss_fn = minicnn.SoftmaxCrossEntropy(label_smoothing=0.1)

    def loss_value():
        model.layers[4].rng = np.random.default_rng(seed)  # the same dropout mask each time
        return loss_fn(model.forward(x), labels)

    with minicnn.backend(backend), chunk_columns(target_columns):
        assume(far_from_kinks(model, x, seed))
        loss_value()
        dx = model.backward(loss_fn.backward())
        grads = {k: v.copy() for k, v in model.gradients().items()}
        # A scalar loss of O(1) differenced with h = 1e-5 carries ~1e-11 of round-off and
        # truncation error. The per-op tests hold every element to 1e-6; through eight
        # layers some gradient entries are ~1e-5 small, where that noise alone is 1e-6
        # relative, so here the error is measured norm-wise: ||a - b|| / (||a|| + ||b||).
        checks = {"x": (dx, numerical_gradient(loss_value, x, h=1e-5))}
        for name, p in model.parameters().items():
            checks[name] = (grads[name], numerical_gradient(loss_value, p, h=1e-5))
        for name, (analytic, numeric) in checks.items():
            err = np.linalg.norm(analytic - numeric) / max(
                1e-12, np.linalg.norm(analytic) + np.linalg.norm(numeric))
            assert err < 1e-8, f"{name}: norm-wise relative error {err:.2e}"


def test_global_avgpool_layer_and_flatten_shapes():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    gap, flat = GlobalAvgPool2D(), Flatten()
    assert gap.forward(x).shape == (2, 3) and gap.output_shape((3, 4, 5)) == (3,)
    assert flat.forward(x).shape == (2, 60) and flat.backward(np.ones((2, 60))).shape == x.shape
