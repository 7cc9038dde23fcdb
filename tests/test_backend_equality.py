"""The engine (``minicnn.set_backend("fast")``) computes what the reference
(``minicnn.functional``) computes, forward and backward, on drawn shapes: kernel sizes 1
to 7, strides 1 to 3, paddings 0, 1, 2, "same" and "valid", 1 to 256 channels, batches of
1 to 70, odd image sizes, float32 and float64; with the engine's algorithm (cost model,
im2col, direct, Winograd with each tile), GEMM chunk size and thread split drawn too.

Every drawn case is small in total work: many channels come only with a tiny image and
batch, a large batch only with few channels, a large image only with a small batch.
Tolerances are relative to the largest value compared: 1e-10 in float64 (an indexing bug
is off by O(1)) and 1e-4 in float32 (the summation orders differ; Winograd's transforms
round more, about 1e-5 with 4x4 tiles).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from winograd_helpers import target_columns

import minicnn
from minicnn import engine
from minicnn import functional as F
from minicnn.engine import conv as engine_conv
from minicnn.engine import threads
from minicnn.engine.algorithm import algorithm
from minicnn.kernels import conv_output_size
from minicnn.layers import BatchNorm2D, Conv2D, MaxPool2D, ReLU

TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
seeds = st.integers(0, 2**31 - 1)
dtypes = st.sampled_from([np.float32, np.float64])


def close(got, want, floor=0.0):
    """|got - want| <= tol * (max |want|, or ``floor`` if larger), in want's dtype's tol."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    scale = max(float(np.abs(want).max(initial=0.0)), floor, 1e-30)
    err = float(np.abs(got.astype(np.float64) - want).max(initial=0.0))
    assert err <= TOL[want.dtype] * scale, f"error {err:.3g} at scale {scale:.3g}"


def pixels(padding, k):
    """The padding in pixels, as Conv2D reads an int, "same" or "valid"."""
    return {"same": (k - 1) // 2, "valid": 0}.get(padding, padding)


@st.composite
def conv_cases(draw, winograd=False, pointwise=False):
    """(N, C, H, W), (F, C, k, k), stride, padding, dtype, seed; ``winograd``: only 3x3,
    stride 1, padding 0 or 1 ("same", "valid"), the shapes Winograd runs; ``pointwise``:
    only 1x1, stride 1, no padding (0, "same", "valid"), the shapes pointwise GEMMs run."""
    if winograd:
        k, stride, padding = 3, 1, draw(st.sampled_from([0, 1, "same", "valid"]))
    elif pointwise:
        k, stride, padding = 1, 1, draw(st.sampled_from([0, "same", "valid"]))
    else:
        k, stride = draw(st.integers(1, 7)), draw(st.integers(1, 3))
        padding = draw(st.sampled_from([0, 1, 2, "same", "valid"]))
        assume(padding != "same" or k % 2 == 1)
    span = max(1, k - 2 * pixels(padding, k))  # the smallest image a window fits
    regime = draw(st.sampled_from(["wide", "batch", "image"]))
    if regime == "wide":  # many channels, tiny image and batch
        N, C, F_, extra = draw(st.integers(1, 2)), draw(st.integers(1, 256)), \
            draw(st.integers(1, 256)), 2
    elif regime == "batch":  # up to 70 images, few channels
        N, C, F_, extra = draw(st.integers(1, 70)), draw(st.integers(1, 4)), \
            draw(st.integers(1, 4)), 4
    else:  # larger (odd) images
        N, C, F_, extra = draw(st.integers(1, 3)), draw(st.integers(1, 8)), \
            draw(st.integers(1, 8)), 16
    H, W = draw(st.integers(span, span + extra)), draw(st.integers(span, span + extra))
    return (N, C, H, W), (F_, C, k, k), stride, padding, draw(dtypes), draw(seeds)


engine_settings = st.tuples(
    st.sampled_from([("auto", None), ("im2col", None), ("direct", None), ("pointwise", None),
                     ("winograd", 2),
                     ("winograd", 3), ("winograd", 4), ("winograd", None)]),
    st.sampled_from([1, 30, 1024]),  # GEMM columns per chunk (1: an image a chunk)
    st.integers(1, 3),               # threads the batch is split between
)


def run_engine(settings, fn):
    """fn() with the engine's algorithm, chunk size and thread split forced."""
    (name, tile), columns, parts = settings
    old = threads.parallel_parts, engine_conv.MIN_SPLIT_IMAGES
    threads.parallel_parts = lambda n: max(1, min(n, parts))
    engine_conv.MIN_SPLIT_IMAGES = 1  # split even two images
    try:
        with ExitStack() as stack:
            stack.enter_context(algorithm(name, tile))
            stack.enter_context(target_columns(columns))
            return fn()
    finally:
        threads.parallel_parts, engine_conv.MIN_SPLIT_IMAGES = old


def check_conv(case, settings, relu):
    x_shape, w_shape, stride, padding, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if seed % 3 else None
    pad = pixels(padding, w_shape[2])
    want, cache = F.conv2d_forward(x, w, b, stride, pad, relu=relu)
    dout = rng.standard_normal(want.shape).astype(dtype)
    want_grads = F.conv2d_backward(dout, cache, need_db=b is not None)

    def fast():
        out, cache = engine.conv2d_forward(x, w, b, stride, pad, relu=relu)
        # a first layer's backward (no input gradient) must give the same dw and db
        no_dx = engine.conv2d_backward(dout, cache, need_dx=False, need_db=b is not None)
        return out, engine.conv2d_backward(dout, cache, need_db=b is not None), cache, no_dx

    got, got_grads, fast_cache, no_dx = run_engine(settings, fast)
    (name, _), _, _ = settings
    if name == "winograd" and w_shape[2] == 3 and stride == 1 and pad in (0, 1):
        assert fast_cache.choice.name == "winograd"  # the engine path really ran
    if name == "direct" and stride == 1 and pad < w_shape[2]:
        assert fast_cache.choice.name == "direct"
    if name == "pointwise" and w_shape[2] == 1 and stride == 1 and pad == 0:
        assert fast_cache.choice.name == "pointwise"
    close(got, want)
    for g, r in zip(got_grads, want_grads):
        assert (g is None) == (r is None)
        if r is not None:
            close(g, r)
    assert no_dx[0] is None
    close(no_dx[1], want_grads[1])
    if b is not None:
        close(no_dx[2], want_grads[2])


@given(conv_cases(), engine_settings, st.booleans())
def test_conv2d_fast_equals_reference(case, settings, relu):
    check_conv(case, settings, relu)


@given(conv_cases(winograd=True), engine_settings, st.booleans())
def test_winograd_shapes_fast_equal_reference(case, settings, relu):
    """3x3, stride 1 convolutions: every algorithm the engine may choose for them."""
    check_conv(case, settings, relu)


@given(conv_cases(pointwise=True), st.sampled_from([("pointwise", None), ("auto", None)]),
       engine_settings, st.booleans())
def test_pointwise_shapes_fast_equal_reference(case, name, settings, relu):
    """1x1, stride 1, unpadded convolutions, mostly by pointwise GEMMs (the other algorithms
    run them in ``test_conv2d_fast_equals_reference``)."""
    check_conv(case, (name,) + settings[1:], relu)


@st.composite
def nchw_cases(draw):
    regime = draw(st.sampled_from(["wide", "batch", "image"]))
    if regime == "wide":
        N, C, hw = draw(st.integers(1, 3)), draw(st.integers(1, 256)), 5
    elif regime == "batch":
        N, C, hw = draw(st.integers(1, 70)), draw(st.integers(1, 4)), 7
    else:
        N, C, hw = draw(st.integers(1, 3)), draw(st.integers(1, 8)), 25
    H, W = draw(st.integers(1, hw)), draw(st.integers(1, hw))
    return (N, C, H, W), draw(dtypes), draw(seeds)


@given(nchw_cases(), st.booleans(), st.booleans())
def test_batchnorm_fast_equals_reference(case, training, relu):
    """Output, dx, dgamma, dbeta and the running statistics; with the fused ReLU too."""
    shape, dtype, seed = case
    N, C, H, W = shape
    assume(not training or N * H * W >= 2)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma, beta = (rng.standard_normal(C).astype(dtype) for _ in range(2))
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    stats = {}
    results = {}
    for name, ops in (("reference", F), ("fast", engine)):
        stats[name] = (rm.copy(), rv.copy())
        out, cache = ops.batchnorm2d_forward(x, gamma, beta, *stats[name], 0.1, 1e-5,
                                             training, relu=relu)
        results[name] = out, cache
    want = results["reference"][0]
    # a float32 rounding difference may flip a fused ReLU's gate where the output is ~0:
    # no upstream gradient there, so both gates give the same dx
    dout = rng.standard_normal(shape).astype(dtype)
    if relu:
        pre = F.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), 0.1, 1e-5,
                                    training)[0]
        dout[np.abs(pre) < 1e-3 * max(1.0, float(np.abs(pre).max()))] = 0
    grads = {name: (F if name == "reference" else engine).batchnorm2d_backward(dout, cache)
             for name, (_, cache) in results.items()}
    close(results["fast"][0], want)
    std = np.sqrt((x.var(axis=(0, 2, 3)) if training else rv) + 1e-5)
    # dx sums terms of size |gamma * dout| / std that may cancel (see the torch checks)
    close(grads["fast"][0], grads["reference"][0],
          floor=float(np.max(np.abs(gamma) / std) * np.abs(dout).max()))
    # dgamma and dbeta: sums over N*H*W terms, compared at the size of those terms' sum
    xhat = results["reference"][1].xhat
    terms = float((np.abs(dout) * (1 + np.abs(xhat))).sum(axis=(0, 2, 3)).max())
    for got, ref in zip(grads["fast"][1:], grads["reference"][1:]):
        close(got, ref, floor=terms * 1e-2)
    for got, ref in zip(stats["fast"], stats["reference"]):
        close(got, ref)


@given(nchw_cases(), st.integers(1, 7), st.integers(1, 3), st.booleans())
def test_maxpool_and_relu_fast_equal_reference(case, k, stride, ties):
    """Max-pool (the same maxima, the same argmax on ties, the same dx) and ReLU."""
    shape, dtype, seed = case
    assume(shape[2] >= k and shape[3] >= k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    if ties:
        x = np.round(x)
    want, cache = F.maxpool2d_forward(x, k, stride)
    got, fast_cache = engine.maxpool2d_forward(x, k, stride)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fast_cache.argmax, cache.argmax)
    dout = rng.standard_normal(want.shape).astype(dtype)
    close(engine.maxpool2d_backward(dout, fast_cache), F.maxpool2d_backward(dout, cache))
    relu_ref, relu_cache = F.relu_forward(x)
    relu_fast, _ = engine.relu_forward(x)
    np.testing.assert_array_equal(relu_fast, relu_ref)
    dx = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(engine.relu_backward(dx, relu_fast),
                                  F.relu_backward(dx, relu_cache))


@given(st.integers(1, 70), st.integers(1, 300), st.integers(1, 40), st.integers(1, 3),
       st.sampled_from([0, 2**21]), dtypes, seeds)
def test_dense_fast_equals_reference(N, D, M, parts, split_macs, dtype, seed):
    """Dense forward and backward with the rows split between 1 to 3 threads (every
    product split, or only those of at least ``SPLIT_MACS``)."""
    from minicnn.engine import dense

    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((N, D), (M, D), (M,)))
    dout = rng.standard_normal((N, M)).astype(dtype)
    want = F.dense_forward(x, w, b)[0], *F.dense_backward(dout, x, w)
    old, old_split = threads.parallel_parts, dense.SPLIT_MACS
    threads.parallel_parts, dense.SPLIT_MACS = lambda n: max(1, min(n, parts)), split_macs
    try:
        got = engine.dense_forward(x, w, b)[0], *engine.dense_backward(dout, x, w)
    finally:
        threads.parallel_parts, dense.SPLIT_MACS = old, old_split
    for g, r in zip(got, want):
        close(g, r)


BACKWARDS = ("conv2d_backward", "batchnorm2d_backward", "maxpool2d_backward", "relu_backward")


@contextmanager
def refusing(module, names=BACKWARDS) -> Iterator[None]:
    """Inside the block, the functions ``names`` of ``module`` (``minicnn.functional`` or
    ``minicnn.engine``) fail when called."""
    saved = {name: getattr(module, name) for name in names}

    def refuse(*args, **kwargs):
        raise AssertionError(f"a backward ran on {module.__name__}, not on the backend of "
                             "its forward")

    for name in names:
        setattr(module, name, refuse)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(module, name, function)


@given(st.integers(1, 6), st.sampled_from([0, 1, 2, "same", "valid"]),
       st.sampled_from([1, 3, 5]), st.integers(1, 2), dtypes, seeds)
def test_layers_run_the_active_backend_and_agree(N, padding, k, stride, dtype, seed):
    """A network of Conv2D (with padding "same", "valid" or an int), fused batch norm,
    max-pool and ReLU gives the same outputs and gradients on either backend, and a
    backward finishes on the backend its forward ran on."""
    def net():
        return minicnn.Sequential([
            Conv2D(2, 5, k, stride=stride, padding=padding, activation="relu"),
            BatchNorm2D(5, activation="relu"), MaxPool2D(2), Conv2D(5, 4, 3, padding=1),
            ReLU()], rng=seed).astype(dtype)

    x = np.random.default_rng(seed).standard_normal((N, 2, 13, 13)).astype(dtype)
    results = {}
    for name in ("reference", "fast"):
        model = net()
        with minicnn.backend(name):
            assert minicnn.get_backend() == name
            out = model.forward(x)
        dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
        other = "fast" if name == "reference" else "reference"
        # the layers keep their forward's backend: the other one's backwards must not run
        with minicnn.backend(other), refusing(engine if other == "fast" else F):
            dx = model.backward(dout)
        results[name] = out, dx, model.gradients()
    (out, dx, grads), (fout, fdx, fgrads) = results["reference"], results["fast"]
    close(fout, out)
    close(fdx, dx, floor=float(np.abs(dx).max()))
    for key in grads:
        close(fgrads[key], grads[key], floor=float(np.abs(grads[key]).max()))


def test_backend_switch_covers_the_kernel_tier_and_rejects_unknown_names():
    from minicnn import kernels

    assert minicnn.get_backend() == "fast"
    with minicnn.backend("reference"):
        assert minicnn.get_backend() == "reference" and kernels.get_tier() == "numpy"
        from minicnn.backends import ops

        assert ops() is F
    assert minicnn.get_backend() == "fast"
    assert kernels.get_tier() == "numba"  # NumPy with a warning where Numba is missing
    with pytest.raises(ValueError, match="unknown backend"):
        minicnn.set_backend("gpu")
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        engine.set_algorithm("fft")


def test_conv_output_sizes_follow_the_formula():
    """The drawn cases rely on this: "same" keeps the size at stride 1, "valid" shrinks it."""
    for k in (1, 3, 5, 7):
        assert conv_output_size(9, k, 1, pixels("same", k)) == 9
        assert conv_output_size(9, k, 1, pixels("valid", k)) == 9 - k + 1


def test_conv2d_padding_valid_means_no_padding_and_survives_save_and_load(tmp_path):
    """PyTorch's ``padding="valid"``: the same layer as padding 0, saved by name."""
    from minicnn.serialize import save_model

    x = np.random.default_rng(0).standard_normal((2, 3, 9, 7)).astype(np.float32)
    model = minicnn.Sequential([Conv2D(3, 4, 5, padding="valid")], rng=0)
    zero = minicnn.Sequential([Conv2D(3, 4, 5, padding=0)], rng=0)
    np.testing.assert_array_equal(model.forward(x), zero.forward(x))
    assert model.forward(x).shape == (2, 4, 5, 3)
    assert model.layers[0].output_shape((3, 9, 7)) == (4, 5, 3)
    save_model(model, tmp_path / "valid.npz")
    loaded = minicnn.load(tmp_path / "valid.npz")
    assert loaded.layers[0].config()["padding"] == "valid"
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        Conv2D(3, 4, 5, padding="full")
