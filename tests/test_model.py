"""What users rely on from Sequential: live named arrays, modes, summary, and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minicnn
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
from minicnn.optim import SGD, Adam


def tiny_cnn(seed=0, classes=7):
    return minicnn.Sequential([
        Conv2D(1, 8, 3, padding="same"), BatchNorm2D(8), ReLU(), MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1), BatchNorm2D(16), ReLU(), GlobalAvgPool2D(),
        Dropout(0.1), Dense(16, classes),
    ], rng=seed)


def test_named_parameters_are_live_and_mirrored():
    model = tiny_cnn()
    params, grads = model.parameters(), model.gradients()
    assert set(params) == set(grads)
    assert {"0.W", "0.b", "1.gamma", "1.beta", "9.W", "9.b"} <= set(params)
    assert set(model.buffers()) == {"1.running_mean", "1.running_var", "5.running_mean",
                                    "5.running_var"}
    params["9.W"][...] = 0.0  # writing through the dict changes the model
    params["9.b"][...] = 5.0
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    model.eval()
    np.testing.assert_array_equal(model.forward(x), 5.0)
    assert model.layers[9].params["b"] is params["9.b"]


def test_seed_reproduces_initialisation_and_dropout():
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    a, b = tiny_cnn(seed=3), tiny_cnn(seed=3)
    for k in a.parameters():
        np.testing.assert_array_equal(a.parameters()[k], b.parameters()[k])
    np.testing.assert_array_equal(a.forward(x), b.forward(x))  # same dropout masks
    assert not np.array_equal(tiny_cnn(seed=4).parameters()["0.W"], a.parameters()["0.W"])


def test_backward_releases_saved_activations_and_needs_a_new_forward():
    """Like autograd, backward frees what each layer kept for it; a second backward without
    a forward is an error, not a silent reuse of stale or missing activations."""
    model = tiny_cnn().astype(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8))
    loss = minicnn.SoftmaxCrossEntropy()
    loss(model.forward(x), np.array([0, 1, 2, 3]))
    held = [(i, name) for i, layer in enumerate(model.layers) for name in layer.saved
            if getattr(layer, name, None) is not None]
    assert held, "forward kept nothing for backward"
    dlogits = loss.backward()
    model.backward(dlogits)
    assert all(getattr(layer, name) is None
               for layer in model.layers for name in layer.saved)
    with pytest.raises(RuntimeError, match="forward first"):
        model.backward(dlogits)
    model.forward(x)
    model.backward(dlogits)  # a new forward makes backward possible again


def test_backward_overwrites_gradients():
    model = tiny_cnn().astype(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8))
    loss = minicnn.SoftmaxCrossEntropy()
    model.layers[8].p = 0.0
    for _ in range(2):
        loss(model.forward(x), np.array([0, 1, 2, 3]))
        model.backward(loss.backward())
        first = {k: v.copy() for k, v in model.gradients().items()}
    loss(model.forward(x), np.array([0, 1, 2, 3]))
    model.backward(loss.backward())
    for k, v in model.gradients().items():
        np.testing.assert_allclose(v, first[k], rtol=1e-10, atol=1e-12)


def test_train_eval_modes():
    model = tiny_cnn()
    assert model.training and all(layer.training for layer in model.layers)
    model.eval()
    assert not model.training and not any(layer.training for layer in model.layers)
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))  # deterministic
    stats = {k: v.copy() for k, v in model.buffers().items()}
    model.forward(x)
    for k, v in model.buffers().items():  # eval must not touch running statistics
        np.testing.assert_array_equal(v, stats[k])
    model.train()
    model.forward(x)
    assert not np.array_equal(model.buffers()["1.running_mean"], stats["1.running_mean"])


def test_summary_reports_shapes_params_and_macs():
    model = minicnn.Sequential([Conv2D(1, 4, 3), ReLU(), MaxPool2D(2), Flatten(),
                                Dense(4 * 23 * 23, 7)], rng=0)
    text = model.summary((1, 48, 48), print_fn=None)
    assert "(4, 46, 46)" in text and "(4, 23, 23)" in text and "(7,)" in text
    conv_macs = 4 * 46 * 46 * 9
    dense_macs = 4 * 23 * 23 * 7
    assert f"{conv_macs:,}" in text and f"{conv_macs + dense_macs:,}" in text
    assert f"{model.num_parameters():,}" in text
    assert model.num_parameters() == 4 * 9 + 4 + 4 * 23 * 23 * 7 + 7


def test_astype_casts_everything():
    model = tiny_cnn().astype(np.float64)
    for d in (model.parameters(), model.gradients(), model.buffers()):
        assert all(v.dtype == np.float64 for v in d.values())
    out = model.forward(np.zeros((2, 1, 8, 8)))
    assert out.dtype == np.float64


def test_first_loss_is_about_ln7():
    """With He init and balanced labels the untrained network guesses uniformly."""
    model = tiny_cnn(seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((140, 1, 12, 12)).astype(np.float32)
    labels = np.repeat(np.arange(7), 20)
    loss = minicnn.SoftmaxCrossEntropy()(model.forward(x), labels)
    assert abs(loss - math.log(7)) < 0.25


@pytest.mark.parametrize("make_opt", [
    lambda p: Adam(p, lr=1e-2),
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
])
def test_tiny_network_overfits_20_samples(make_opt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 1, 8, 8)).astype(np.float32)
    y = np.arange(20) % 7
    model = minicnn.Sequential([
        Conv2D(1, 8, 3, padding="same"), BatchNorm2D(8), ReLU(), MaxPool2D(2), Flatten(),
        Dense(8 * 4 * 4, 32), ReLU(), Dense(32, 7),
    ], rng=0)
    opt = make_opt(model.parameters())
    loss_fn = minicnn.SoftmaxCrossEntropy()
    for _ in range(150):
        loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step(model.gradients())
    model.eval()
    assert (model.forward(x).argmax(1) == y).mean() == 1.0


def test_rejects_non_layers_and_bad_configs():
    with pytest.raises(TypeError, match="not a minicnn Layer"):
        minicnn.Sequential([Conv2D(1, 2, 3), "relu"])
    with pytest.raises(ValueError, match="odd kernel"):
        Conv2D(1, 2, 4, padding="same")
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="expects"):
        Dense(3, 2).forward(np.zeros((1, 4), np.float32))


def test_predict_proba_restores_mode():
    model = tiny_cnn()
    p = model.predict_proba(np.zeros((5, 1, 8, 8), np.float32), batch_size=2)
    assert p.shape == (5, 7) and np.allclose(p.sum(1), 1) and model.training


def test_fold_batchnorm_gives_the_same_outputs_with_fewer_layers():
    from minicnn.fuse import fold_batchnorm
    from minicnn.layers import (
        BatchNorm2D,
        Conv2D,
        Dense,
        Dropout,
        GlobalAvgPool2D,
        MaxPool2D,
        ReLU,
    )

    rng = np.random.default_rng(0)
    model = minicnn.Sequential([
        Conv2D(1, 4, 3, padding="same", bias=False), BatchNorm2D(4), ReLU(), MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1), BatchNorm2D(6), ReLU(), GlobalAvgPool2D(), Dropout(0.3),
        Dense(6, 3)], rng=1, metadata={"name": "t"})
    for layer in model.layers:  # non-trivial statistics and affine parameters
        if isinstance(layer, BatchNorm2D):
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2, layer.num_features)
            layer.params["gamma"][...] = rng.uniform(0.5, 2, layer.num_features)
            layer.params["beta"][...] = rng.standard_normal(layer.num_features)
    model.layers[4].params["b"][...] = rng.standard_normal(6)
    before = {k: v.copy() for k, v in model.parameters().items()}
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    expected = model.eval().forward(x)
    unfused = fold_batchnorm(model, relu=False)
    assert [type(layer).__name__ for layer in unfused.layers] == [
        "Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "GlobalAvgPool2D", "Dropout", "Dense"]
    folded = fold_batchnorm(model)
    assert not folded.training and folded.metadata == {"name": "t"}
    assert [type(layer).__name__ for layer in folded.layers] == [
        "Conv2D", "MaxPool2D", "Conv2D", "GlobalAvgPool2D", "Dropout", "Dense"]
    assert folded.layers[0].activation == folded.layers[2].activation == "relu"
    for fewer in (unfused, folded):
        np.testing.assert_allclose(fewer.forward(x), expected, rtol=1e-5, atol=1e-5)
    for k, v in model.parameters().items():  # the original is untouched
        np.testing.assert_array_equal(v, before[k])
    # a ReLU straight after a convolution (no batch norm) is fused too, bias or none
    plain = minicnn.Sequential([Conv2D(1, 3, 3, bias=False), ReLU(), Conv2D(3, 2, 1), ReLU(),
                                GlobalAvgPool2D()], rng=2)
    fused = fold_batchnorm(plain)
    assert [(type(layer).__name__, getattr(layer, "activation", None))
            for layer in fused.layers] == [
        ("Conv2D", "relu"), ("Conv2D", "relu"), ("GlobalAvgPool2D", None)]
    assert "b" not in fused.layers[0].params
    np.testing.assert_allclose(fused.forward(x), plain.eval().forward(x), rtol=1e-6, atol=1e-6)


def test_batchnorm_with_fused_relu_equals_batchnorm_then_relu_and_folds():
    """BatchNorm2D(activation="relu") computes, differentiates and updates its running
    statistics like BatchNorm2D followed by ReLU, in training and in eval mode, and
    fold_batchnorm moves its ReLU into the convolution (even with relu=False: it is part
    of the layer's function)."""
    from minicnn.fuse import fold_batchnorm

    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 6, 5)) * 2 + 0.3
    dout = rng.standard_normal(x.shape)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    fused, bn, relu = BatchNorm2D(3, activation="relu"), BatchNorm2D(3), ReLU()
    for layer in (fused, bn):
        layer.params = {"gamma": gamma.copy(), "beta": beta.copy()}
    for mode in ("train", "eval"):
        for layer in (fused, bn, relu):
            layer.training = mode == "train"
        out = fused.forward(x)
        np.testing.assert_allclose(out, relu.forward(bn.forward(x)), rtol=1e-12, atol=1e-12)
        dx = fused.backward(dout)
        ref_dx = bn.backward(relu.backward(dout))
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
        for k in ("gamma", "beta"):
            np.testing.assert_allclose(fused.grads[k], bn.grads[k], rtol=1e-10, atol=1e-12)
        for k in ("running_mean", "running_var"):
            np.testing.assert_array_equal(fused.buffers[k], bn.buffers[k])
    assert fused.config()["activation"] == "relu" and "activation" not in bn.config()
    with pytest.raises(ValueError, match="activation"):
        BatchNorm2D(3, activation="tanh")

    model = minicnn.Sequential([Conv2D(1, 3, 3, padding="same", bias=False),
                                BatchNorm2D(3, activation="relu"), GlobalAvgPool2D()], rng=3)
    model.layers[1].buffers["running_mean"][...] = rng.standard_normal(3)
    model.layers[1].params["beta"][...] = rng.standard_normal(3)  # some outputs negative
    xs = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    expected = model.eval().forward(xs)
    for relu_flag in (True, False):
        folded = fold_batchnorm(model, relu=relu_flag)
        assert [(type(layer).__name__, getattr(layer, "activation", None))
                for layer in folded.layers] == [("Conv2D", "relu"), ("GlobalAvgPool2D", None)]
        np.testing.assert_allclose(folded.forward(xs), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 2, 7, 7), (3, 2, 5, 6), (2, 3, 40, 40)])
def test_conv_with_fused_relu_equals_conv_then_relu(shape):
    """Conv2D(activation="relu") computes and differentiates like Conv2D followed by ReLU,
    for one-image GEMM chunks (40x40) and many-image ones, with and without a bias."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    for bias in (True, False):
        fused = Conv2D(shape[1], 4, 3, padding=1, bias=bias, activation="relu")
        conv, relu = Conv2D(shape[1], 4, 3, padding=1, bias=bias), ReLU()
        fused.params = {k: rng.standard_normal(v.shape) for k, v in fused.params.items()}
        conv.params = {k: v.copy() for k, v in fused.params.items()}
        out = fused.forward(x)
        expected = relu.forward(conv.forward(x))
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        assert (out == 0).any() and (out > 0).any()
        dout = rng.standard_normal(out.shape)
        dx = fused.backward(dout)
        np.testing.assert_allclose(dx, conv.backward(relu.backward(dout)), rtol=1e-12, atol=1e-12)
        for k in fused.params:
            np.testing.assert_allclose(fused.grads[k], conv.grads[k], rtol=1e-12, atol=1e-12)
    assert fused.config()["activation"] == "relu" and "activation" not in conv.config()
    with pytest.raises(ValueError, match="activation"):
        Conv2D(1, 1, 3, activation="tanh")


@pytest.mark.parametrize("name", ["im2col", "winograd"])
def test_conv_reuses_its_column_buffer_without_leaking_between_steps(name):
    """Conv2D keeps its im2col columns (Winograd: its transformed input tiles) in one
    buffer across training steps (the engine's, per weight array); a step's gradients
    must depend on that step's input alone, for one-image and many-image chunks. (The
    algorithm forced: the cost model runs layers this thin as direct loops, which keep
    nothing.)"""
    from minicnn.engine.algorithm import algorithm

    with algorithm(name):
        _check_column_reuse()


@pytest.mark.parametrize("name", ["im2col", "winograd"])
def test_a_second_forward_with_the_same_weights_does_not_corrupt_the_first_backward(name):
    """Two forwards through the same weights before either backward (weights shared by two
    calls): the second takes over the kept buffer, so the first backward must recompute
    its columns or tiles instead of reading the second input's."""
    from minicnn.engine import conv as engine_conv
    from minicnn.engine.algorithm import algorithm
    from minicnn.functional import conv as reference

    rng = np.random.default_rng(4)
    x1, x2 = (rng.standard_normal((4, 3, 10, 10)) for _ in range(2))
    w, b = rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    with algorithm(name):
        out1, cache1 = engine_conv.conv2d_forward(x1, w, b, 1, 1)
        engine_conv.conv2d_forward(x2, w, b, 1, 1)
        assert cache1.choice.name == name and cache1.cols is not None
        dout = rng.standard_normal(out1.shape)
        dx, dw, db = engine_conv.conv2d_backward(dout, cache1)
    rdx, rdw, rdb = reference.conv2d_backward(dout, reference.conv2d_forward(x1, w, b, 1, 1)[1])
    np.testing.assert_allclose(dx, rdx, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dw, rdw, rtol=1e-9, atol=1e-9)


def _check_column_reuse():
    rng = np.random.default_rng(3)
    for shape in [(3, 2, 40, 40), (6, 4, 5, 5)]:  # 1 image per chunk, then many
        x1, x2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        used = Conv2D(shape[1], 5, 3, padding=1)
        fresh = Conv2D(shape[1], 5, 3, padding=1)
        fresh.params = {k: v.copy() for k, v in used.params.items()}
        used.forward(x1)
        buffer = next(iter(used.cache.cols.values()))
        out = used.forward(x2)
        assert np.shares_memory(next(iter(used.cache.cols.values())), buffer)  # written again
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dx = used.backward(dout)
        np.testing.assert_array_equal(out, fresh.forward(x2))
        np.testing.assert_array_equal(dx, fresh.backward(dout))
        np.testing.assert_array_equal(used.grads["W"], fresh.grads["W"])
