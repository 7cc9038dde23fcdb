"""Network architectures by name.

``default``: model v1, designed for training on 2 CPU cores (shipped until v2).

    stage  size   layers                                               MACs (per face)
    1      48x48  conv3x3 1->32,                      max-pool 2          0.7 M
    2      24x24  conv3x3 32->64,   conv3x3 64->64,   max-pool 2         31.9 M
    3      12x12  conv3x3 64->128,  conv3x3 128->128, max-pool 2         31.9 M
    4       6x6   conv3x3 128->256, conv3x3 256->256, max-pool 2         31.9 M
    head   3x3    global average pool -> dropout 0.3 -> dense 256->7
    total         1.17 M parameters (4.7 MB float32), 96 M multiply-accumulates

``wide``: the network of models v2 to v5 (v5 ships) and the one ``python -m emotion.train``
trains by default on FER2013: the same shape 1.25x wider (40-80-160-320: 1.82 M
parameters, 150 M MACs, 1.56x the compute). v2 (35 epochs with the photo faults, 100
minutes on 2 cores) scored 67.46% on PublicTest with flip TTA; v5, three warm restarts
later, 69.49% with flip and 69.82% with ten crops (see the model card).

Every conv is followed by batch norm and ReLU (so convs carry no bias: batch norm's beta
plays that role); the ReLU is the batch norm's fused ``activation="relu"``. (The shipped
weights were trained with a separate ReLU layer after each batch norm, the same function;
their file keeps that layer list, so they load unchanged.) Why this shape: FER2013 faces
are small and aligned, so stacks of 3x3 convs (VGG, Simonyan & Zisserman 2015) are the
strongest simple family on it (Khaireddin & Chen 2021 reach 73% with a wider VGG).
Doubling the width at each halving keeps the MACs even across stages, and the first stage
has a single conv because at 48x48 a second one would cost as much as a whole stage (21 M
MACs) for little gain. Batch norm lets a high learning rate converge in the few epochs
two cores allow. The global-average-pool head was chosen by measurement: with a flatten +
dense head (as in the reference notebook) the net sat at the majority-class rate (25%)
for the first epochs, with PyTorch too, while the pooled head reached 44% training
accuracy after 240 steps.
What each model scored and how long it trained is in emotion/weights/MODEL_CARD.md.

``deep``: ``wide`` with a third conv at 12x12 (160->160): 2.05 M parameters, 183 M MACs,
1.22x ``wide``'s compute. An experiment (see the model card): the one command's runs of
``wide`` end at 67.6-68.2% without TTA whatever their length, so the next step is depth.

``seed``: the reference notebook's Keras CNN, for comparison: four 3x3 "valid" convs of
128, 256, 512 and 512 filters (ReLU), each followed by max-pool 2 and dropout 0.4, then
dense 512 and 256 (ReLU, dropout 0.4 and 0.3) and dense 7, with Keras's Glorot-uniform
initialisation. 4.2 M parameters, 218 M MACs. About 8.5 minutes an epoch on 2 cores; 10
epochs with v1's recipe reach 49.96% on PublicTest (see the model card).
Here each conv's max-pool comes before its ReLU: the same function with the same gradients
(ReLU is monotone, so it commutes with max), and ReLU then touches a quarter of the values.

``small``: a fast model for the synthetic quickstart and tests (24 k parameters, 5.7 M MACs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from minicnn import Sequential
from minicnn.init import glorot_uniform
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

NUM_CLASSES = 7


def _conv_bn_relu(c_in: int, c_out: int) -> list:
    # the ReLU fused into the batch norm (one pass over the map fewer each way; see
    # minicnn.functional.batchnorm): the same function as a separate ReLU layer
    return [Conv2D(c_in, c_out, 3, padding="same", bias=False),
            BatchNorm2D(c_out, activation="relu")]


def vgg(widths=(32, 64, 128, 256), convs_per_stage=(1, 2, 2, 2), dropout=0.3,
        rng=None) -> Sequential:
    """VGG-style stages of conv-BN-ReLU blocks, each stage ending in a 2x2 max-pool, then
    global average pooling, dropout and one dense layer to the 7 classes."""
    layers, c = [], 1
    for w, n in zip(widths, convs_per_stage):
        for _ in range(n):
            layers += _conv_bn_relu(c, w)
            c = w
        layers.append(MaxPool2D(2))
    layers += [GlobalAvgPool2D(), Dropout(dropout), Dense(c, NUM_CLASSES)]
    return Sequential(layers, rng=rng)


def default(rng=None) -> Sequential:
    return vgg((32, 64, 128, 256), convs_per_stage=(1, 2, 2, 2), dropout=0.3, rng=rng)


def wide(rng=None) -> Sequential:
    return vgg((40, 80, 160, 320), convs_per_stage=(1, 2, 2, 2), dropout=0.3, rng=rng)


def deep(rng=None) -> Sequential:
    return vgg((40, 80, 160, 320), convs_per_stage=(1, 2, 3, 2), dropout=0.3, rng=rng)


def seed(rng=None) -> Sequential:
    layers, c, size = [], 1, 48
    for w in (128, 256, 512, 512):
        # max-pool before ReLU: the same function (ReLU is monotone, so it commutes with
        # max) and the same gradients, with ReLU on a quarter of the values (the first
        # conv's output alone is 64 x 128 x 46 x 46 floats at batch 64)
        layers += [Conv2D(c, w, 3, padding=0), MaxPool2D(2), ReLU(), Dropout(0.4)]
        c, size = w, (size - 2) // 2
    layers += [Flatten(), Dense(c * size * size, 512), ReLU(), Dropout(0.4),
               Dense(512, 256), ReLU(), Dropout(0.3), Dense(256, NUM_CLASSES)]
    model = Sequential(layers, rng=rng)
    # Keras's default initialiser (Glorot uniform), as in the reference notebook. With
    # minicnn's He-normal default, this net has no batch norm to rescale, and six
    # inverted dropouts multiply the second moment by 1/(1 - p) each in training: the
    # first training losses measured above 40 and the run sat at the majority class.
    for layer in model.layers:
        if isinstance(layer, (Conv2D, Dense)):
            W = layer.params["W"]
            receptive = math.prod(W.shape[2:])  # k*k for a conv, 1 for a dense layer
            W[...] = glorot_uniform(W.shape, W.shape[1] * receptive, W.shape[0] * receptive,
                                    model.rng)
    return model


def small(rng=None) -> Sequential:
    return vgg((16, 32, 64), convs_per_stage=(1, 1, 1), dropout=0.1, rng=rng)


ARCHITECTURES: dict[str, Callable[..., Sequential]] = {
    "default": default, "wide": wide, "deep": deep, "seed": seed, "small": small,
}


def build(name: str, rng: np.random.Generator | int | None = None) -> Sequential:
    """A freshly initialised model of the named architecture."""
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from "
                         f"{', '.join(ARCHITECTURES)}") from None
    return factory(rng=rng)
