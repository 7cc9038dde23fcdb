"""Drawn minicnn models for the interop tests (ONNX export, PyTorch round trip): every
layer type, in valid but otherwise arbitrary stacks, with non-trivial batch-norm
parameters and running statistics (fresh ones are the identity and would hide a swap)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

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

ACTIVATIONS = st.sampled_from([None, "relu"])


def conv_output_size(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


def randomize_batchnorm(model: Sequential, rng: np.random.Generator) -> Sequential:
    """Give every BatchNorm2D random gamma, beta, running mean and variance, in place."""
    for layer in model.layers:
        if isinstance(layer, BatchNorm2D):
            c = layer.num_features
            layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
            layer.params["beta"][...] = rng.standard_normal(c)
            layer.buffers["running_mean"][...] = rng.standard_normal(c)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    return model


@st.composite
def layer_stacks(draw, dtype=np.float64) -> tuple[Sequential, tuple[int, int, int]]:
    """(model in eval mode, one sample's input shape (C, H, W)): 1-3 conv blocks (conv with
    any kernel 1-3, stride 1-2, padding 0/1/"valid"/"same", bias or not, a fused ReLU or not;
    optionally batch norm, ReLU, max-pool and dropout after it), then global average
    pooling or flatten, then 1-2 dense layers."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(5, 10)), draw(st.integers(5, 10))
    shape = (c, h, w)
    layers: list = []
    for _ in range(draw(st.integers(1, 3))):
        k, stride = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        padding = draw(st.sampled_from([0, 1, "valid", "same"] if k % 2 else [0, 1, "valid"]))
        pad = (k - 1) // 2 if padding == "same" else 0 if padding == "valid" else padding
        assume(conv_output_size(h, k, stride, pad) > 0 and conv_output_size(w, k, stride, pad) > 0)
        f = draw(st.integers(1, 4))
        layers.append(Conv2D(c, f, k, stride=stride, padding=padding, bias=draw(st.booleans()),
                             activation=draw(ACTIVATIONS)))
        c, h, w = f, conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
        if draw(st.booleans()):
            layers.append(BatchNorm2D(c, eps=draw(st.sampled_from([1e-5, 1e-3])),
                                      activation=draw(ACTIVATIONS)))
        if draw(st.booleans()):
            layers.append(ReLU())
        if min(h, w) >= 2 and draw(st.booleans()):
            pk = draw(st.integers(2, min(h, w, 3)))
            ps = draw(st.integers(1, pk))
            layers.append(MaxPool2D(pk, ps))
            h, w = (h - pk) // ps + 1, (w - pk) // ps + 1
        if draw(st.booleans()):
            layers.append(Dropout(0.25))
    if draw(st.booleans()):
        layers.append(GlobalAvgPool2D())
        n = c
    else:
        layers.append(Flatten())
        n = c * h * w
    if draw(st.booleans()):
        hidden = draw(st.integers(1, 6))
        layers += [Dense(n, hidden), ReLU()]
        n = hidden
    layers.append(Dense(n, draw(st.integers(1, 5))))
    seed = draw(st.integers(0, 2**31 - 1))
    model = Sequential(layers, rng=seed).astype(dtype)
    return randomize_batchnorm(model, np.random.default_rng(seed)).eval(), shape
