"""The engine's per-layer algorithm choice (``minicnn.engine.algorithm``): what the cost
model decides on the shapes it was set against, and forcing an algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import engine
from minicnn.engine import algorithm as A


def test_only_3x3_stride_1_padding_0_or_1_convolutions_may_run_as_winograd():
    with A.algorithm("winograd"):
        assert A.choose(64, 64, 64, 3, 3, 1, 1, 24, 24).name == "winograd"
        assert A.choose(64, 64, 64, 3, 3, 1, 0, 22, 22).name == "winograd"
        for shape in [(5, 5, 1, 2), (3, 3, 2, 1), (3, 3, 1, 2), (1, 1, 1, 0)]:
            KH, KW, stride, padding = shape
            assert A.choose(64, 64, 64, KH, KW, stride, padding, 24, 24).name == "im2col"


def test_the_cost_model_keeps_the_measured_decisions_on_the_default_model():
    """The shipped ``wide`` model, training at batch 64: the first layer (one input
    channel) by direct loops, every other layer by Winograd, 4x4 tiles on 24x24 and 12x12
    outputs, 3x3 tiles on 6x6 ones; one face (batch 1): the first layer direct, the others
    im2col (benchmarks/README.md, "Performance chapter")."""
    layers = [(1, 40, 48), (40, 80, 24), (80, 80, 24), (80, 160, 12), (160, 160, 12),
              (160, 320, 6), (320, 320, 6)]
    training = [tuple(A.choose(64, C, F, 3, 3, 1, 1, S, S)) for C, F, S in layers]
    assert training == [("direct", 0)] + [("winograd", 4)] * 4 + [("winograd", 3)] * 2
    one = [A.choose(1, C, F, 3, 3, 1, 1, S, S).name for C, F, S in layers]
    assert one == ["direct"] + ["im2col"] * 6


def test_few_channels_run_direct_or_as_im2col_and_many_as_winograd():
    """At batch 64, 3x3 "same": with 8 or 16 channels the tile transforms cost more than
    Winograd's GEMMs save (vggbn's 16 -> 16 at 48x48 measured 1.9x slower forward +
    backward than im2col), and direct loops beat im2col's copies and thin GEMMs; 16 -> 32
    at 24x24 is a tie between the three; from 32 channels Winograd wins
    (benchmarks/README.md)."""
    for C, F, S in [(8, 8, 48), (16, 16, 48), (16, 16, 24), (1, 16, 48), (1, 32, 48)]:
        assert A.choose(64, C, F, 3, 3, 1, 1, S, S).name == "direct", (C, F, S)
    assert A.choose(64, 16, 32, 3, 3, 1, 1, 24, 24).name == "im2col"
    # SimpleConvNet's 1 -> 30 5x5 "valid" at batch 100: rows of five taps beat K = 25 columns
    assert A.choose(100, 1, 30, 5, 5, 1, 0, 24, 24).name == "direct"
    for C, F, S in [(32, 32, 48), (32, 64, 16), (48, 48, 24), (64, 128, 8), (128, 128, 6)]:
        assert A.choose(64, C, F, 3, 3, 1, 1, S, S).name == "winograd", (C, F, S)


def test_7x7_kernels_run_as_im2col_as_measured():
    """Direct loops run a 7-wide kernel a pass a tap (not a row of taps, as for 5 wide),
    slower than im2col on every 7x7 layer measured, a first layer's included
    (benchmarks/README.md, "Pointwise 1x1 convolutions")."""
    for C, F, S in [(3, 16, 32), (1, 16, 48), (8, 8, 24), (16, 32, 16), (64, 64, 8)]:
        assert A.choose(64, C, F, 7, 7, 1, 3, S, S).name == "im2col", (C, F, S)


def test_cost_estimates_grow_with_the_work():
    assert A.im2col_seconds(64, 32, 32, 3, 3, 24, 24) > A.im2col_seconds(8, 32, 32, 3, 3, 24, 24)
    assert A.winograd_seconds(64, 32, 32, 24, 24, 4) > A.winograd_seconds(8, 32, 32, 24, 24, 4)
    assert A.direct_seconds(64, 32, 32, 3, 3, 24, 24) > A.direct_seconds(8, 32, 32, 3, 3, 24, 24)


def test_only_stride_1_square_convolutions_with_padding_below_the_kernel_run_direct():
    with A.algorithm("direct"):
        assert A.choose(8, 4, 4, 3, 3, 1, 1, 9, 9).name == "direct"
        assert A.choose(8, 4, 4, 5, 5, 1, 4, 13, 13).name == "direct"
        for KH, KW, stride, padding in [(3, 3, 2, 1), (3, 3, 1, 3), (3, 5, 1, 1)]:
            assert A.choose(8, 4, 4, KH, KW, stride, padding, 9, 9).name == "im2col"


def test_1x1_convolutions_run_pointwise_on_large_maps_and_as_im2col_on_small_ones():
    """At batch 64 one GEMM an image on the input itself beats im2col's copies where an
    image has many pixels, and loses where it has few (its GEMMs are then short, and the
    weight gradient is added up once an image); measured in benchmarks/README.md."""
    for C, F, S in [(64, 64, 24), (16, 16, 48), (32, 128, 12), (128, 32, 12), (64, 256, 12)]:
        assert A.choose(64, C, F, 1, 1, 1, 0, S, S).name == "pointwise", (C, F, S)
    for C, F, S in [(128, 128, 3), (128, 128, 4), (512, 512, 4), (512, 512, 6)]:
        assert A.choose(64, C, F, 1, 1, 1, 0, S, S).name == "im2col", (C, F, S)
    # only stride 1 and no padding: otherwise an image's input is not its column matrix
    for stride, padding in [(2, 0), (1, 1)]:
        with A.algorithm("pointwise"):
            assert A.choose(64, 64, 64, 1, 1, stride, padding, 24, 24).name == "im2col"


@pytest.mark.parametrize("spec", ["im2col", "direct", "winograd", "winograd:2", "winograd:3",
                                  "winograd:4", "pointwise", "auto"])
def test_each_forced_algorithm_runs_and_gives_the_reference_output(spec):
    from minicnn import functional as F

    name, _, tile = spec.partition(":")
    rng = np.random.default_rng(0)
    k, p = (1, 0) if name == "pointwise" else (3, 1)
    x, w = rng.standard_normal((3, 8, 9, 9)), rng.standard_normal((6, 8, k, k))
    with A.algorithm(name, int(tile) if tile else None):
        out, cache = engine.conv2d_forward(x, w, None, 1, p)
    if name != "auto":
        assert cache.choice.name == name
    if tile:
        assert cache.choice.tile == int(tile)
    np.testing.assert_allclose(out, F.conv2d_forward(x, w, None, 1, p)[0], atol=1e-10)
    assert A.get_algorithm() == ("auto", None)  # restored after the block


def test_the_environment_variable_spelling_is_checked():
    assert A._parse("winograd:4") == ("winograd", 4)
    assert A._parse("im2col") == ("im2col", None)
    for bad in ("fft", "winograd:5", "im2col:x"):
        with pytest.raises(ValueError, match="unknown convolution algorithm"):
            A._parse(bad)


def test_choices_are_remembered_per_shape_and_forced_algorithm():
    """``choose`` remembers its answer per shape; forcing an algorithm is part of the key,
    and ``forget_choices`` drops what was remembered (after changing a constant)."""
    A.forget_choices()
    args = (64, 16, 16, 3, 3, 1, 1, 48, 48)
    assert A.choose(*args).name == "direct"
    with A.algorithm("winograd", 2):
        assert tuple(A.choose(*args)) == ("winograd", 2)
    assert A.choose(*args).name == "direct"
    old = A.DIRECT
    try:
        A.DIRECT = 1e9  # direct loops 20 times slower
        assert A.choose(*args).name == "direct"  # still the remembered answer
        A.forget_choices()
        assert A.choose(*args).name == "im2col"
    finally:
        A.DIRECT = old
        A.forget_choices()


def spy_on_timings(monkeypatch, fastest):
    """Measure mode's timings scripted: each candidate timed is recorded (as (name, tile))
    in the returned list, and ``fastest`` takes 0.1 s, every other 1 s."""
    from minicnn.engine import conv as engine_conv

    timed, running = [], []
    real_forward = engine_conv._forward

    def forward(*args):
        running.append(tuple(args[-1]))
        return real_forward(*args)

    def fake_seconds(run):
        run()
        timed.append(running[-1])
        return 0.1 if running[-1] == fastest else 1.0

    monkeypatch.setattr(engine_conv, "_forward", forward)
    monkeypatch.setattr(engine_conv, "_seconds", fake_seconds)
    return timed


def test_measure_mode_keeps_the_fastest_candidate_per_shape(monkeypatch):
    """``set_algorithm("measure")``: the first call of a shape times every candidate
    (twice) and keeps the fastest; later calls of that shape reuse it without timing;
    another shape is timed afresh; ``forget_choices`` drops what was measured."""
    from minicnn import functional as F

    timed = spy_on_timings(monkeypatch, fastest=("winograd", 3))
    A.forget_choices()
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 8, 9, 9)), rng.standard_normal((6, 8, 3, 3))
    try:
        with A.algorithm("measure"):
            out, cache = engine.conv2d_forward(x, w, None, 1, 1)
            assert cache.choice == ("winograd", 3)
            want = {("im2col", 0), ("winograd", 2), ("winograd", 3), ("winograd", 4),
                    ("direct", 0)} if A.dispatch.numba_available() else \
                {("im2col", 0), ("winograd", 2), ("winograd", 3), ("winograd", 4)}
            assert set(timed) == want and len(timed) == 2 * len(want)
            engine.conv2d_forward(x, w, None, 1, 1)  # the same shape: no timing
            assert len(timed) == 2 * len(want)
            engine.conv2d_forward(x[:2], w, None, 1, 1)  # another batch: timed afresh
            assert len(timed) == 4 * len(want)
            np.testing.assert_allclose(out, F.conv2d_forward(x, w, None, 1, 1)[0],
                                       atol=1e-10)
            assert A.get_algorithm() == ("measure", None)  # restored after each timing
        assert A.measured
        A.forget_choices()
        assert not A.measured
    finally:
        A.forget_choices()


def test_measure_mode_trains_like_the_reference():
    """Every layer of a small network under real measurement gives the reference's
    outputs and gradients (the timing passes leave no trace in the results)."""
    import minicnn
    from benchmarks.bench_train import make_batch
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, GlobalAvgPool2D, ReLU

    def net():
        return Sequential([Conv2D(3, 8, 3, padding="same"), ReLU(), Conv2D(8, 8, 1), ReLU(),
                           Conv2D(8, 4, 5, padding="same"), GlobalAvgPool2D(),
                           Dense(4, 3)], rng=0).astype(np.float64)

    x, _ = make_batch(4, shape=(3, 10, 10), classes=3)
    x = x.astype(np.float64)
    results = []
    A.forget_choices()
    try:
        for name, mode in (("reference", "auto"), ("fast", "measure")):
            model = net()
            with minicnn.backend(name), A.algorithm(mode):
                out = model.forward(x)
                model.backward(np.ones_like(out))
            results.append((out, model.gradients()))
        assert len(A.measured) == 3  # one shape a conv layer
    finally:
        A.forget_choices()
    (want, want_g), (got, got_g) = results
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for k in want_g:
        np.testing.assert_allclose(got_g[k], want_g[k], rtol=1e-9, atol=1e-12)


def test_measure_is_an_algorithm_name_and_the_model_still_answers_under_it():
    assert A._parse("measure") == ("measure", None)
    with A.algorithm("measure"):  # what the cost model would pick (bench_choice asks it)
        assert A.choose(64, 16, 16, 3, 3, 1, 1, 48, 48).name == "direct"
        assert A.choose(64, 64, 64, 1, 1, 1, 0, 24, 24).name == "pointwise"


def test_eval_mode_reuses_winograds_weight_transform_while_the_weights_keep_their_values():
    import gc

    from minicnn import functional as F
    from minicnn.engine import workspace

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 8, 9, 9)), rng.standard_normal((6, 8, 3, 3))
    calls = []
    real = engine.conv.kernels.winograd_weights

    def counting(w_, m):
        calls.append(m)
        return real(w_, m)

    engine.conv.kernels.winograd_weights = counting
    try:
        with A.algorithm("winograd", 2):
            for _ in range(3):
                out, _ = engine.conv2d_forward(x, w, None, 1, 1, training=False)
            assert calls == [2]  # made once, then reused
            np.testing.assert_allclose(out, F.conv2d_forward(x, w, None, 1, 1)[0], atol=1e-10)
            w[0, 0, 1, 1] += 1.0  # trained in place between evaluations: transformed again
            out, _ = engine.conv2d_forward(x, w, None, 1, 1, training=False)
            assert calls == [2, 2]
            np.testing.assert_allclose(out, F.conv2d_forward(x, w, None, 1, 1)[0], atol=1e-10)
            engine.conv2d_forward(x, w, None, 1, 1)  # training: always transformed afresh
            engine.conv2d_forward(x, w, None, 1, 1)
            assert calls == [2, 2, 2, 2]
    finally:
        engine.conv.kernels.winograd_weights = real
    key = (id(w), 2)
    assert key in workspace._transforms
    del w, _  # the weights and the last ConvCache, which holds them
    gc.collect()
    assert key not in workspace._transforms  # the entry goes with its array


@pytest.mark.parametrize("m", [2, 3, 4])
def test_winograd_backward_uses_forwards_weight_transform(monkeypatch, m):
    """Backward's dV = dM U^T takes forward's transform U, transposed, instead of making
    the transform of the swapped filters again."""
    from minicnn import functional as F

    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((5, 4, 10, 10)), rng.standard_normal((7, 4, 3, 3))
    dout = rng.standard_normal((5, 7, 10, 10))
    calls = []
    real = engine.conv.kernels.winograd_weights
    monkeypatch.setattr(engine.conv.kernels, "winograd_weights",
                        lambda w_, m_: calls.append(w_.shape) or real(w_, m_))
    with A.algorithm("winograd", m):
        _, cache = engine.conv2d_forward(x, w, None, 1, 1)
        dx, dw, _ = engine.conv2d_backward(dout, cache)
    assert calls == [w.shape]  # forward's, and no other
    ref_dx, ref_dw, _ = F.conv2d_backward(dout, F.conv2d_forward(x, w, None, 1, 1)[1])
    np.testing.assert_allclose(dx, ref_dx, atol=1e-9)
    np.testing.assert_allclose(dw, ref_dw, atol=1e-9)


def test_measure_mode_in_eval_times_the_forward_only(monkeypatch):
    """Under ``set_algorithm("measure")`` a model in eval mode times each candidate's
    forward alone (no backward will follow), and remembers the pick apart from training's;
    in "auto" nothing is timed, in either mode."""
    from minicnn import Sequential
    from minicnn.engine import conv as engine_conv
    from minicnn.layers import Conv2D

    backward = []
    timed = spy_on_timings(monkeypatch, fastest=("winograd", 2))
    real_backward = engine_conv.conv2d_backward
    monkeypatch.setattr(engine_conv, "conv2d_backward",
                        lambda *a, **k: backward.append(1) or real_backward(*a, **k))
    A.forget_choices()
    model = Sequential([Conv2D(8, 8, 3, padding="same")], rng=0)
    x = np.random.default_rng(0).standard_normal((2, 8, 12, 12)).astype(np.float32)
    try:
        model.eval()
        model.forward(x)
        assert timed == []  # auto: the cost model
        with A.algorithm("measure"):
            model.forward(x)
            assert model.layers[0].cache.choice == ("winograd", 2) and timed
            assert backward == [] and [k[-1] for k in A.measured] == [False]
            model.train()
            model.forward(x)
            assert backward and sorted(k[-1] for k in A.measured) == [False, True]
    finally:
        A.forget_choices()


def test_an_empty_batch_runs_through_every_kind_of_convolution():
    """N = 0 gives empty outputs and zero weight gradients, as the reference does, for the
    layers the cost model would send to pointwise, direct or Winograd at larger batches."""
    from minicnn import functional as F

    for C, F_, k, p in [(8, 4, 1, 0), (1, 8, 3, 1), (32, 32, 3, 1), (3, 8, 5, 2)]:
        x = np.zeros((0, C, 12, 12), np.float32)
        w = np.ones((F_, C, k, k), np.float32)
        for training in (True, False):
            out, cache = engine.conv2d_forward(x, w, None, 1, p, training=training)
            want, ref_cache = F.conv2d_forward(x, w, None, 1, p)
            assert out.shape == want.shape == (0, F_, 12, 12)
            dout = np.zeros_like(out)
            dx, dw, _ = engine.conv2d_backward(dout, cache)
            assert dx.shape == x.shape and dw.shape == w.shape and not dw.any()
