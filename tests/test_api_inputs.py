"""minicnn's public API on inputs a user gets wrong: each is refused with a message naming the
layer and what it expected, or handled correctly (empty batches, square tuple kernels);
initialisers and what Sequential(rng=...) does to weights set by hand; the batch iterator,
the accuracy helper and the help() texts."""

from __future__ import annotations

import pydoc

import numpy as np
import pytest

import minicnn
from minicnn import init
from minicnn.data import batch_indices, batches
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
from minicnn.metrics import accuracy
from minicnn.optim import SGD, Adam


def small(rng=0):
    return minicnn.Sequential([Conv2D(1, 2, 3, padding="same"), BatchNorm2D(2), ReLU(),
                               MaxPool2D(2), Flatten(), Dense(2 * 4 * 4, 3)], rng=rng)


def batch(n=4, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((n, 1, 8, 8)).astype(dtype)


# ------------------------------------------------------------------------- input checks
def test_batch_without_channel_axis_names_the_layer_and_the_fix():
    with pytest.raises(ValueError, match=r"Conv2D\(.*expects input \(N, 1, H, W\).*x\[:, None\]"):
        small().forward(batch()[:, 0])


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.bool_, np.float16])
def test_non_float32_64_input_is_a_type_error_naming_the_layer(dtype):
    with pytest.raises(TypeError, match=r"Conv2D\(.*float32 or float64"):
        small().forward(batch().astype(dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.bool_])
def test_batchnorm_refuses_integer_input_instead_of_truncating(dtype):
    with pytest.raises(TypeError, match=r"BatchNorm2D\(num_features=2.*float32 or float64"):
        BatchNorm2D(2).forward(np.ones((2, 2, 3, 3), dtype=dtype))


def test_float64_batch_into_float32_model_is_refused_with_the_cast_to_make():
    model = small()
    with pytest.raises(TypeError, match=r"float32 parameters but got float64 input.*"
                                        r"x\.astype\(np\.float32\)"):
        model.forward(batch(dtype=np.float64))
    assert model.astype(np.float64).forward(batch(dtype=np.float64)).dtype == np.float64


def test_dense_reports_feature_mismatch_and_missing_flatten():
    with pytest.raises(ValueError, match=r"Dense\(in_features=10.*expects input \(N, 10\)"):
        Dense(10, 2).forward(np.zeros((3, 12), np.float32))


def test_conv_accepts_a_square_tuple_kernel_and_refuses_other_shapes():
    conv = Conv2D(1, 2, (3, 3))
    assert conv.kernel_size == 3 and conv.params["W"].shape == (2, 1, 3, 3)
    assert conv.config() == Conv2D(1, 2, 3).config()
    with pytest.raises(ValueError, match="only square kernels"):
        Conv2D(1, 2, (3, 5))


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2D(1, 1e3, 3), r"Conv2D: out_channels must be an int, got 1000\.0"),
    (lambda: Conv2D(1, 2, 3, stride=0), "Conv2D: stride must be >= 1"),
    (lambda: Conv2D(1, 10**12, 3), "more than the 134,217,728 one layer may have"),
    (lambda: Dense("4", 2), "Dense: in_features must be an int"),
    (lambda: Dense(4, 2, init="xavier"), "unknown init 'xavier'"),
    (lambda: BatchNorm2D(4, momentum=2), r"BatchNorm2D: momentum must be in \[0.0, 1.0\]"),
    (lambda: MaxPool2D(2.0), "MaxPool2D: kernel_size must be an int"),
    (lambda: Dropout("0.5"), "Dropout: p .* must be a number"),
])
def test_bad_layer_arguments_name_the_layer_and_argument(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_empty_batch_flattens_and_predicts_an_empty_result():
    assert Flatten().forward(np.zeros((0, 2, 3, 3), np.float32)).shape == (0, 18)
    probs = small().predict_proba(np.zeros((0, 1, 8, 8), np.float32))
    assert probs.shape == (0, 3) and probs.dtype == np.float32


# ----------------------------------------------------------------------------- summary
def test_summary_of_a_batch_shape_says_to_drop_the_batch_axis():
    with pytest.raises(ValueError, match=r"layer 0 Conv2D.*takes \(1, H, W\) per sample, but "
                                         r"the input is \(16, 1, 8, 8\); .*without the batch"):
        small().summary((16, 1, 8, 8), print_fn=None)


def test_summary_names_the_first_layer_that_does_not_fit():
    # Deep Learning from Scratch's SimpleConvNet with a wrong Dense size: 30*12*12 = 4320
    model = minicnn.Sequential([Conv2D(1, 30, 5), ReLU(), MaxPool2D(2), Flatten(),
                                Dense(4000, 100), ReLU(), Dense(100, 10)], rng=0)
    with pytest.raises(ValueError, match=r"layer 4 Dense\(in_features=4000.*takes \(4000,\) "
                                         r"per sample, but layer 3 gives \(4320,\)"):
        model.summary((1, 28, 28), print_fn=None)
    with pytest.raises(ValueError, match=r"layer 0 Conv2D.*does not fit the input is \(1, 3, 3\)"):
        model.summary((1, 3, 3), print_fn=None)
    no_flatten = minicnn.Sequential([Conv2D(1, 2, 3), Dense(8, 2)], rng=0)
    with pytest.raises(ValueError, match=r"put a Flatten\(\) before it"):
        no_flatten.output_shape((1, 4, 4))
    assert small().output_shape((1, 8, 8)) == (3,)


# ------------------------------------------------------------------------------- loss
def test_loss_refuses_integer_logits():
    with pytest.raises(TypeError, match="logits must be a float32 or float64"):
        minicnn.SoftmaxCrossEntropy()(np.zeros((2, 3), np.int64), np.array([0, 1]))


def test_loss_refuses_class_weights_of_the_wrong_length_or_sign():
    loss = minicnn.SoftmaxCrossEntropy(class_weights=np.ones(4))
    with pytest.raises(ValueError, match="4 class_weights for 3 classes"):
        loss(np.zeros((2, 3), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        minicnn.SoftmaxCrossEntropy(class_weights=[1.0, -1.0, 1.0])


def test_weightless_batches_give_zero_loss_and_gradient_not_nan():
    loss = minicnn.SoftmaxCrossEntropy()
    assert loss(np.zeros((0, 3), np.float32), np.zeros(0, np.int64)) == 0.0
    assert loss.backward().shape == (0, 3)
    weighted = minicnn.SoftmaxCrossEntropy(class_weights=[0.0, 1.0, 1.0])
    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    assert weighted(logits, np.zeros(4, np.int64)) == 0.0
    assert not weighted.backward().any()
    assert weighted(logits, np.array([0, 1, 2, 0])) > 0  # a batch with weight is unchanged


# --------------------------------------------------------------------- initialisation
def test_init_argument_chooses_the_initialiser():
    rng = np.random.default_rng(0)
    glorot = Dense(300, 100, init="glorot_uniform")
    glorot.initialize(rng)
    limit = np.sqrt(6 / 400)
    assert np.abs(glorot.params["W"]).max() <= limit
    assert np.abs(glorot.params["W"]).max() > 0.95 * limit
    conv = Conv2D(1, 30, 5, init=init.normal(0.01))
    assert conv.params["W"].std() == pytest.approx(0.01, rel=0.1)
    assert not Conv2D(1, 4, 3, init=None).params["W"].any()
    custom = Dense(3, 2, init=lambda shape, fan_in, fan_out, rng: np.full(shape, fan_in))
    assert (custom.params["W"] == 3).all() and custom.params["W"].dtype == np.float32
    with pytest.raises(ValueError, match="init returned shape"):
        Dense(3, 2, init=lambda shape, fan_in, fan_out, rng: np.zeros(3))


def test_sequential_rng_keeps_weights_set_by_hand_and_draws_the_rest():
    set_by_hand = Dense(4, 2)
    set_by_hand.params["W"][...] = 0.5          # written into
    replaced = Dense(2, 2)
    replaced.params["W"] = np.eye(2, dtype=np.float32)  # assigned
    fresh = Dense(2, 2)
    drawn_at_construction = fresh.params["W"].copy()
    zeros = Dense(2, 2, init=None)
    model = minicnn.Sequential([set_by_hand, replaced, fresh, zeros], rng=0)
    assert (model.layers[0].params["W"] == 0.5).all()
    assert (model.layers[1].params["W"] == np.eye(2)).all()
    assert not zeros.params["W"].any()
    # the fresh layer was drawn again, from the seed: the same model built again with the
    # same seed gets the same weights there
    twin_by_hand, twin_replaced = Dense(4, 2), Dense(2, 2)
    twin_by_hand.params["W"][...] = 0.5
    twin_replaced.params["W"] = np.eye(2, dtype=np.float32)
    twin = minicnn.Sequential([twin_by_hand, twin_replaced, Dense(2, 2), Dense(2, 2, init=None)],
                              rng=0)
    assert not np.array_equal(fresh.params["W"], drawn_at_construction)
    np.testing.assert_array_equal(fresh.params["W"], twin.layers[2].params["W"])
    assert not fresh.parameters_set() and set_by_hand.parameters_set()


def test_sequential_seed_reproduces_the_same_model():
    a, b = small(rng=3), small(rng=3)
    for k, v in a.parameters().items():
        np.testing.assert_array_equal(v, b.parameters()[k])


# ------------------------------------------------------------------ batches and metrics
def test_batches_cover_every_sample_once_reproducibly():
    x, y = np.arange(10)[:, None] * np.ones((1, 3)), np.arange(10)
    parts = list(batches(x, y, batch_size=4, rng=0))
    assert [len(xb) for xb, _ in parts] == [4, 4, 2]
    assert sorted(np.concatenate([yb for _, yb in parts]).tolist()) == list(range(10))
    for xb, yb in parts:
        np.testing.assert_array_equal(xb[:, 0], yb)
    again = list(batches(x, y, batch_size=4, rng=np.random.default_rng(0)))
    assert all((a[1] == b[1]).all() for a, b in zip(parts, again))
    assert [len(i) for i in batch_indices(10, 4, shuffle=False, drop_last=True)] == [4, 4]
    assert np.concatenate(list(batches(x, batch_size=3, shuffle=False)))[:, 0].tolist() == \
        list(range(10))
    with pytest.raises(ValueError, match="needs an rng"):
        next(batches(x, y, 4))
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        next(batches(x, y[:9], 4, rng=0))


def test_accuracy_from_scores_or_labels():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert accuracy(scores, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(np.array([1, 1]), np.array([1, 0])) == 0.5
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.zeros((0, 2)), np.zeros(0))


def test_a_textbook_loop_with_the_public_api_learns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64)
    model = minicnn.Sequential([Conv2D(1, 4, 3, padding="same", init="glorot_uniform"), ReLU(),
                                GlobalAvgPool2D(), Dense(4, 2)], rng=0)
    loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.05)
    for _ in range(15):
        for xb, yb in batches(x, y, batch_size=16, rng=rng):
            loss_fn(model.forward(xb), yb)
            model.backward(loss_fn.backward(), need_input_grad=False)
            opt.step(model.gradients())
    assert accuracy(model.predict_proba(x), y) > 0.8


# ------------------------------------------------------------------------------ help()
@pytest.mark.parametrize("obj, words", [
    (Dense, "Fully connected"), (Dropout, "DROPPED"), (Adam, "Kingma"),
    (SGD, "Stochastic gradient descent"), (minicnn.Sequential.forward, "Run the layers"),
    (minicnn.Sequential.spec, "architecture as JSON"), (minicnn.load, "Sequential.save"),
    (minicnn.optim.OneCycle, "opt.lr = schedule(step)"),
])
def test_help_describes_the_public_api(obj, words):
    text = pydoc.render_doc(obj)
    assert words in text
    assert "# ---" not in text  # pydoc shows the comment above a function without a docstring
    assert "save_model" not in (obj.__doc__ or "")
