"""Every kernel tier agrees with the naive reference; im2col and col2im are adjoint."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn import kernels
from minicnn.kernels import conv_output_size

FAST = ("numpy", "numba")


@st.composite
def conv_case(draw):
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    H = draw(st.integers(1, 9))
    W = draw(st.integers(1, 9))
    KH = draw(st.integers(1, 4))
    KW = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    assume(conv_output_size(H, KH, stride, padding) > 0)
    assume(conv_output_size(W, KW, stride, padding) > 0)
    seed = draw(st.integers(0, 2**31 - 1))
    return (N, C, H, W), KH, KW, stride, padding, np.random.default_rng(seed)


@st.composite
def same_conv_case(draw):
    """Stride 1 with an output as large as the input (K = 2*padding + 1), which the Numba
    im2col copies with one run per image and row; conv_case draws it rarely. Includes
    planes smaller than the kernel, where some taps never land on the image."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    H = draw(st.integers(1, 9))
    W = draw(st.integers(1, 9))
    padding = draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    K = 2 * padding + 1
    return (N, C, H, W), K, K, 1, padding, np.random.default_rng(seed)


@given(st.one_of(conv_case(), same_conv_case()), st.sampled_from([np.float32, np.float64]))
def test_im2col_tiers_match_naive(case, dtype):
    shape, KH, KW, s, p, rng = case
    x = rng.standard_normal(shape).astype(dtype)
    ref = kernels.im2col(x, KH, KW, s, p, tier="naive")
    for tier in FAST:
        got = kernels.im2col(x, KH, KW, s, p, tier=tier)
        assert got.dtype == dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref, err_msg=tier)


@given(st.one_of(conv_case(), same_conv_case()))
def test_col2im_tiers_match_naive(case):
    shape, KH, KW, s, p, rng = case
    N, C, H, W = shape
    OH, OW = kernels.output_hw(H, W, KH, KW, s, p)
    cols = rng.standard_normal((C * KH * KW, N * OH * OW))
    ref = kernels.col2im(cols, shape, KH, KW, s, p, tier="naive")
    for tier in FAST:
        got = kernels.col2im(cols, shape, KH, KW, s, p, tier=tier)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=tier)


@given(conv_case(), st.sampled_from(("naive",) + FAST))
def test_adjoint_identity(case, tier):
    """<im2col(x), y> == <x, col2im(y)>: col2im is exactly the transpose of im2col."""
    shape, KH, KW, s, p, rng = case
    x = rng.standard_normal(shape)
    cols = kernels.im2col(x, KH, KW, s, p, tier=tier)
    y = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * y)
    rhs = np.sum(x * kernels.col2im(y, shape, KH, KW, s, p, tier=tier))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@st.composite
def pool_case(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    assume(H >= k and W >= k)
    seed = draw(st.integers(0, 2**31 - 1))
    return (N, C, H, W), k, stride, np.random.default_rng(seed)


@given(pool_case(), st.booleans())
def test_maxpool_tiers_match_naive(case, with_ties):
    shape, k, s, rng = case
    x = rng.standard_normal(shape)
    if with_ties:  # few distinct values: ties everywhere, all tiers must pick the same one
        x = np.round(x)
    out, arg = kernels.maxpool_forward(x, k, k, s, tier="naive")
    dout = rng.standard_normal(out.shape)
    dx = kernels.maxpool_backward(dout, arg, shape, tier="naive")
    for tier in FAST:
        out2, arg2 = kernels.maxpool_forward(x, k, k, s, tier=tier)
        np.testing.assert_array_equal(out2, out, err_msg=tier)
        np.testing.assert_array_equal(arg2, arg, err_msg=tier)
        dx2 = kernels.maxpool_backward(dout, arg2, shape, tier=tier)
        np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12, err_msg=tier)


@pytest.mark.parametrize("tier", ("naive",) + FAST)
def test_maxpool_tie_goes_to_first_maximum(tier):
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])  # three equal maxima in one 2x2 window
    out, arg = kernels.maxpool_forward(x, 2, 2, 2, tier=tier)
    assert out[0, 0, 0, 0] == 3.0
    assert arg[0, 0, 0, 0] == 1  # flat index of (0, 1): the first 3.0 in row-major order
    dx = kernels.maxpool_backward(np.ones_like(out), arg, x.shape, tier=tier)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_im2col_into_reuses_buffer():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    buf = np.empty((27, 2 * 25), dtype=np.float32)
    out = kernels.im2col_into(x, 3, 3, 1, 1, out=buf)
    assert out is buf
    np.testing.assert_array_equal(buf, kernels.im2col(x, 3, 3, 1, 1, tier="naive"))


def test_tier_selection_and_errors():
    assert kernels.get_tier() in kernels.TIERS
    old = kernels.get_tier()
    try:
        kernels.set_tier("numpy")
        assert kernels.get_tier() == "numpy"
        with pytest.raises(ValueError, match="unknown kernel tier"):
            kernels.set_tier("cuda")
    finally:
        kernels.set_tier(old)
    with pytest.raises(ValueError, match="does not fit"):
        kernels.im2col(np.zeros((1, 1, 2, 2)), 3, 3, 1, 0)


@st.composite
def nchw_case(draw):
    shape = tuple(draw(st.integers(1, 5)) for _ in range(4))
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, np.random.default_rng(seed)


@given(nchw_case(), st.sampled_from([np.float32, np.float64]))
def test_channel_moments_match_reference(case, dtype):
    shape, rng = case
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)  # offset mean: tests the centring
    x64 = x.astype(np.float64)
    ref_mean, ref_var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for tier in ("naive",) + FAST:
        mean, var = kernels.channel_moments(x, tier=tier)
        assert mean.dtype == dtype and var.dtype == dtype
        np.testing.assert_allclose(mean, ref_mean, rtol=tol, atol=tol, err_msg=tier)
        np.testing.assert_allclose(var, ref_var, rtol=tol, atol=tol, err_msg=tier)


@given(nchw_case(), st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans())
def test_channel_sums_match_reference(case, dtype, gated, centred):
    shape, rng = case
    dout = rng.standard_normal(shape).astype(dtype)
    y = (rng.standard_normal(shape) + 3).astype(dtype)
    center = rng.standard_normal(shape[1]).astype(dtype) + 3 if centred else None
    # with a fused ReLU, dout counts only where the ReLU's output (many zeros) is positive
    relu_out = np.maximum(rng.standard_normal(shape), 0).astype(dtype) if gated else None
    d64, y64 = dout.astype(np.float64), y.astype(np.float64)
    if gated:
        d64 = np.where(relu_out > 0, d64, 0)
    if centred:
        y64 = y64 - center.astype(np.float64).reshape(1, -1, 1, 1)
    ref_s, ref_sx = d64.sum(axis=(0, 2, 3)), (d64 * y64).sum(axis=(0, 2, 3))
    # float32: the products' rounding, at the size of the sum of their magnitudes
    tol = 1e-4 if dtype == np.float32 else 1e-12
    floor = tol * float(np.abs(d64 * y64).sum(axis=(0, 2, 3)).max(initial=1.0))
    for tier in ("naive",) + FAST:
        s, sx = kernels.channel_sums(dout, y, relu_out, tier=tier, center=center)
        assert s.dtype == dtype and sx.dtype == dtype
        np.testing.assert_allclose(s, ref_s, rtol=tol, atol=tol, err_msg=tier)
        np.testing.assert_allclose(sx, ref_sx, rtol=tol, atol=floor, err_msg=tier)


@given(nchw_case(), st.sampled_from([np.float32, np.float64]))
def test_relu_forward_matches_reference(case, dtype):
    shape, rng = case
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = [np.nan, -np.inf, np.inf]  # kept as np.maximum does
    ref = np.maximum(x, 0)
    for tier in ("naive",) + FAST:
        out = kernels.relu_forward(x, tier=tier)
        assert out.dtype == dtype and out is not x
        np.testing.assert_array_equal(out, ref, err_msg=tier)


@given(nchw_case(), st.sampled_from([np.float32, np.float64]))
def test_relu_backward_matches_reference(case, dtype):
    shape, rng = case
    dout = rng.standard_normal(shape).astype(dtype)
    out = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # ReLU outputs, many zeros
    ref = np.where(out > 0, dout, 0)
    for tier in ("naive",) + FAST:
        dx = kernels.relu_backward(dout, out, tier=tier)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, ref, err_msg=tier)


@given(nchw_case(), st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans())
def test_channel_affine_kernels_match_reference(case, dtype, relu, centred):
    shape, rng = case
    C = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    a, b, c = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    center = rng.standard_normal(C).astype(dtype) if centred else None
    relu_out = np.maximum(rng.standard_normal(shape), 0).astype(dtype) if relu else None

    def per_channel(v):
        return v.astype(np.float64).reshape(1, -1, 1, 1)

    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    g, beta = (rng.standard_normal(C).astype(dtype) for _ in range(2))
    ref_out = (x64 - per_channel(a)) * per_channel(b) * per_channel(g) + per_channel(beta)
    if relu:  # channel_normalize's fused ReLU; channel_affine2 gates x by relu_out
        ref_out = np.maximum(ref_out, 0)
        x64 = np.where(relu_out > 0, x64, 0)
    if centred:
        y64 = y64 - per_channel(center)
    ref2 = x64 * per_channel(a) + y64 * per_channel(b) + per_channel(c)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for tier in ("naive",) + FAST:
        out = kernels.channel_normalize(x, a, b, g, beta, relu=relu, tier=tier)
        got2 = kernels.channel_affine2(x, a, y, b, c, relu_out, tier=tier, center=center)
        assert out.dtype == got2.dtype == dtype
        np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol, err_msg=tier)
        np.testing.assert_allclose(got2, ref2, rtol=tol, atol=tol, err_msg=tier)


def test_channel_normalize_relu_keeps_nan():
    x = np.array([np.nan, -1.0, 2.0, np.inf], dtype=np.float32).reshape(1, 1, 2, 2)
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    for tier in ("naive",) + FAST:
        out = kernels.channel_normalize(x, zero, one, one, zero, relu=True, tier=tier)
        np.testing.assert_array_equal(out.ravel(), [np.nan, 0, 2, np.inf], err_msg=tier)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_regroup_add_bias_tiers_agree_with_the_definition(with_bias, relu):
    rng = np.random.default_rng(5)
    n, F, P = 3, 4, 7
    y = rng.standard_normal((F, n * P)).astype(np.float32)
    bias = rng.standard_normal(F).astype(np.float32) if with_bias else None
    expected = np.stack([y[:, i * P:(i + 1) * P] for i in range(n)])  # (n, F, P)
    if with_bias:
        expected = expected + bias.reshape(1, F, 1)
    if relu:
        expected = np.where(expected > 0, expected, 0)
    for tier in ("numpy", "numba"):
        out = np.full((n, F, P), np.nan, dtype=np.float32)
        kernels.regroup_add_bias(y, bias, out, tier=tier, relu=relu)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 9),
       st.integers(1, 9), st.sampled_from([0, 1]), st.sampled_from([2, 3, 4]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_winograd_naive_tier_is_the_convolution(n, C, F, H, W, padding, m, bias, seed):
    """The naive tier, the formula in loops, against the reference convolution (im2col
    and one product), for every tile size, partial last tiles and paddings 0 and 1."""
    from minicnn.functional.conv import conv2d_forward
    from minicnn.kernels.winograd import winograd_conv2d_naive

    assume(min(H, W) + 2 * padding >= 3)
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, C, H, W)), rng.standard_normal((F, C, 3, 3))
    b = rng.standard_normal(F) if bias else None
    expected = conv2d_forward(x, w, b, 1, padding)[0]
    np.testing.assert_allclose(winograd_conv2d_naive(x, w, b, padding, m), expected,
                               rtol=1e-10, atol=1e-10)


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(1, 11),
       st.integers(1, 11), st.sampled_from([0, 1, 2]), st.sampled_from([2, 3, 4]),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.integers(0, 2**31 - 1))
def test_winograd_transform_tiers_agree(n, C, F, H, W, padding, m, dtype, relu, seed):
    """The Numba transforms against the NumPy tier (kernels/winograd.py), for every tile
    size, odd sizes (partial last tiles) and paddings 0 to 2; and the input transform's
    gradient against its definition, the transpose: <input(x), dV> = <x, input_grad(dV)>."""
    assume(min(H, W) + 2 * padding >= 3)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    dout = rng.standard_normal((n, F, OH, OW)).astype(dtype)
    A2, nT = (m + 2) ** 2, n * kernels.winograd.tile_count(OH, OW, m)
    M = rng.standard_normal((A2, nT, F)).astype(dtype)
    dV = rng.standard_normal((A2, nT, C)).astype(dtype)
    bias = rng.standard_normal(F).astype(dtype)
    tol = (1e-5 if m == 2 else 1e-4) if dtype == np.float32 else 1e-12
    got = {}
    for tier in ("numpy", "numba"):
        V = np.empty((A2, nT, C), dtype)
        dM = np.empty((A2, nT, F), dtype)
        out = np.empty((n, F, OH, OW), dtype)
        dx = np.full(x.shape, np.nan, dtype)
        got[tier] = (kernels.winograd_input(x, V, padding, m, tier=tier),
                     kernels.winograd_grad_output(dout, dM, m, tier=tier),
                     kernels.winograd_output(M, bias, out, relu=relu, m=m, tier=tier),
                     kernels.winograd_input_grad(dV, dx, padding, m, tier=tier))
    for ref, fast in zip(got["numpy"], got["numba"]):
        assert fast.dtype == dtype
        np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    V, dx = got["numpy"][0].astype(np.float64), got["numpy"][3].astype(np.float64)
    scale = np.abs(V).sum() * np.abs(dV).max() + 1.0
    assert abs((V * dV).sum() - (x * dx).sum()) <= tol * scale


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 3), st.sampled_from([2, 3, 4]),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.integers(0, 2**31 - 1))
def test_winograd_weight_transforms_tiers_agree(F, C, parts, m, dtype, flipped, seed):
    """The Numba weight transform (also of a strided view: flipped and transposed filters)
    and weight gradient (summing the threads' parts) against the NumPy tier's GEMMs."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((F, C, 3, 3)).astype(dtype)
    if flipped:
        w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dU = rng.standard_normal((parts, (m + 2) ** 2, F, C)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    U = kernels.winograd_weights(w, m, tier="numba")
    assert U.dtype == dtype
    np.testing.assert_allclose(U, kernels.winograd_weights(w, m, tier="numpy"),
                               rtol=tol, atol=tol)
    dw = kernels.winograd_weight_grad(dU, m, tier="numba")
    assert dw.dtype == dtype and dw.shape == (F, C, 3, 3)
    np.testing.assert_allclose(dw, kernels.winograd.winograd_weight_grad_numpy(dU.sum(axis=0), m),
                               rtol=tol, atol=tol)


def test_numba_tier_without_numba_warns_once_and_runs_numpy(monkeypatch):
    """Numba stays optional: without it the "numba" tier (the fast backend's) falls back
    to NumPy with one RuntimeWarning, and the results are NumPy's."""
    from minicnn.kernels import dispatch

    monkeypatch.setattr(dispatch, "numba", None)
    monkeypatch.setattr(dispatch, "_warned", False)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        cols = kernels.im2col(x, 3, 3, 1, 1, tier="numba")
    np.testing.assert_array_equal(cols, kernels.im2col(x, 3, 3, 1, 1, tier="naive"))
    assert dispatch.resolve("numba") == "numpy"
    assert not dispatch.numba_available()


def test_minicnn_runs_without_numba(tmp_path):
    """With Numba absent (its import fails), minicnn imports, warns that the fast backend
    runs NumPy kernels, and trains a network to the reference backend's numbers."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "no_numba.py"
    script.write_text(textwrap.dedent('''
        import sys, warnings
        sys.modules["numba"] = None  # import numba -> ImportError
        import numpy as np
        import minicnn
        from minicnn.layers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, MaxPool2D
        model = minicnn.Sequential([Conv2D(1, 4, 3, padding="same"),
                                    BatchNorm2D(4, activation="relu"), MaxPool2D(2),
                                    GlobalAvgPool2D(), Dense(4, 3)], rng=0)
        x = np.random.default_rng(0).standard_normal((4, 1, 12, 12)).astype(np.float32)
        y = np.arange(4) % 3
        loss_fn = minicnn.SoftmaxCrossEntropy()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast = loss_fn(model.forward(x), y)
            chosen = model.layers[0].cache.choice.name
            model.backward(loss_fn.backward())
        with minicnn.backend("reference"):
            reference = loss_fn(model.forward(x), y)
        assert any("numba is not installed" in str(w.message) for w in caught), caught
        assert abs(fast - reference) < 1e-5, (fast, reference)
        # direct loops are left out uncompiled; forced, they run the NumPy tier
        assert chosen != "direct", chosen
        from minicnn.engine.algorithm import algorithm
        with algorithm("direct"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forced = loss_fn(model.forward(x), y)
            assert model.layers[0].cache.choice.name == "direct"
            model.backward(loss_fn.backward())
        assert abs(forced - reference) < 1e-5, (forced, reference)
        print("ok")
    '''))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 9),
       st.integers(1, 9), st.integers(1, 5), st.integers(0, 4),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_direct_convolution_tiers_agree_with_im2col(n, C, F, H, W, K, padding, dtype,
                                                    relu, bias, seed):
    """kernels/direct.py, every tier: the output against im2col + GEMM, the weight gradient
    against cols @ dout, and dx (the direct convolution of dout with the flipped filters)
    against col2im; 3x3 (nine taps a pass; the weight gradient three filters and a row
    of taps a pass), 5x5 (a row of five taps a pass) and other sizes (a tap a pass), F
    not a multiple of 2 or 3 (filters left over)."""
    KH = KW = K
    assume(padding < K)
    assume(H + 2 * padding >= KH and W + 2 * padding >= KW)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    OH, OW = conv_output_size(H, KH, 1, padding), conv_output_size(W, KW, 1, padding)
    cols = kernels.im2col(x, KH, KW, 1, padding, tier="naive")
    want = (w.reshape(F, -1) @ cols).reshape(F, n, OH, OW).transpose(1, 0, 2, 3)
    if bias:
        want = want + b.reshape(1, F, 1, 1)
    if relu:
        want = np.maximum(want, 0)
    dout = rng.standard_normal((n, F, OH, OW)).astype(dtype)
    d2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    want_dw = (d2 @ cols.T).reshape(w.shape)
    want_dx = kernels.col2im(w.reshape(F, -1).T @ d2, x.shape, KH, KW, 1, padding, tier="naive")
    tol = 1e-4 if dtype == np.float32 else 1e-12
    flipped = kernels.direct.flip_filters(w)
    for tier in ("naive", "numpy", "numba"):
        out = kernels.direct.direct_conv(x, w, b, padding, relu=relu, tier=tier)
        dw = kernels.direct.direct_weight_grad(x, dout, KH, KW, padding, tier=tier)
        dx = kernels.direct.direct_conv(dout, flipped, None, KH - 1 - padding, tier=tier)
        for got, ref in ((out, want), (dw, want_dw), (dx, want_dx)):
            assert got.dtype == dtype and got.shape == ref.shape, tier
            np.testing.assert_allclose(got, ref, rtol=tol,
                                       atol=tol * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("name, call", [
    ("channel_moments", lambda k, a, t: k.channel_moments(a, tier=t)),
    ("channel_sums", lambda k, a, t: k.channel_sums(a, a, a, tier=t)),
    ("channel_normalize", lambda k, a, t: k.channel_normalize(a, *[a[0, :, 0, 0]] * 4, tier=t)),
    ("channel_affine2", lambda k, a, t: k.channel_affine2(a, a[0, :, 0, 0], a, a[0, :, 0, 0],
                                                          a[0, :, 0, 0], a, tier=t)),
    ("relu_forward", lambda k, a, t: k.relu_forward(a, tier=t)),
    ("relu_backward", lambda k, a, t: k.relu_backward(a, a, tier=t)),
])
def test_the_naive_tier_runs_the_naive_loops(monkeypatch, name, call):
    """tier="naive" reaches the ``*_naive`` function (not the NumPy tier under its name)."""
    from minicnn.kernels import activation, batchnorm

    module = activation if name.startswith("relu") else batchnorm
    calls = []
    real = getattr(module, f"{name}_naive")
    monkeypatch.setattr(module, f"{name}_naive", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    call(kernels, a, "naive")
    assert calls == [1]
    call(kernels, a, "numpy")
    assert calls == [1]
