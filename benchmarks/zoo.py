"""The networks of the training-step zoo (issue 16), written as a new user would with the
README's layer API, each with the input and batch it is timed at:

    default        the project's model (emotion.models)            batch 64, 1x48x48
    vggbn          VGG-BN widths 16-32-64-128, two 3x3 convs (with bias) + batch norm + ReLU
                   a stage, 2x2 max-pools, flatten, dense 256, ReLU, dense 7
                                                                   batch 64, 1x48x48
    simpleconvnet  Deep Learning from Scratch ch. 7: conv 30 5x5 valid, ReLU, 2x2 pool,
                   dense 100, ReLU, dense 10                       batch 100, 1x28x28
    s2bn           conv 3x3 stride 2 32, conv 64, conv 64 stride 2, conv 128 (each with
                   batch norm and ReLU), global average pool, dense 10
                                                                   batch 64, 3x32x32
    seed           the reference notebook's CNN (emotion.models)   batch 64, 1x48x48
    nin            Network in Network (Lin et al. 2014, as in Dive into Deep Learning):
                   blocks of a 3x3 conv and two 1x1 convs (each with ReLU) of 32, 64 and
                   128 channels, each block ending in a 2x2 max-pool; dropout 0.5, a last
                   block to the 10 classes, global average pool     batch 64, 3x32x32
    lenet5         LeNet-5 as it is usually written today: conv 6 5x5 "same", ReLU, 2x2
                   max-pool, conv 16 5x5 valid, ReLU, 2x2 max-pool, dense 120, ReLU,
                   dense 84, ReLU, dense 10                        batch 64, 1x28x28
    cifarkeras     the Keras CIFAR-10 example: conv 32 "same", conv 32 valid, max-pool,
                   dropout 0.25, conv 64 "same", conv 64 valid, max-pool, dropout 0.25,
                   dense 512, ReLU, dropout 0.5, dense 10 (3x3 convs, each with ReLU)
                                                                   batch 32, 3x32x32
    small          a small FER model (emotion.models), for smoke runs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Net(NamedTuple):
    build: Callable  # rng -> minicnn.Sequential
    input_shape: tuple[int, int, int]  # (C, H, W) of one sample
    batch: int
    classes: int


def _emotion(name: str) -> Callable:
    def build(rng):
        from emotion.models import build as build_emotion

        return build_emotion(name, rng=rng)
    return build


def vgg_bn(rng):
    from minicnn import Sequential
    from minicnn.layers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU

    layers, c = [], 1
    for width in (16, 32, 64, 128):
        for _ in range(2):
            layers += [Conv2D(c, width, 3, padding="same"), BatchNorm2D(width), ReLU()]
            c = width
        layers.append(MaxPool2D(2))
    layers += [Flatten(), Dense(128 * 3 * 3, 256), ReLU(), Dense(256, 7)]
    return Sequential(layers, rng=rng)


def simple_conv_net(rng):
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    return Sequential([Conv2D(1, 30, 5, padding="valid"), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(30 * 12 * 12, 100), ReLU(), Dense(100, 10)], rng=rng)


def stride2_bn(rng):
    from minicnn import Sequential
    from minicnn.layers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, ReLU

    layers, c = [], 3
    for width, stride in ((32, 2), (64, 1), (64, 2), (128, 1)):
        layers += [Conv2D(c, width, 3, stride=stride, padding=1), BatchNorm2D(width), ReLU()]
        c = width
    return Sequential(layers + [GlobalAvgPool2D(), Dense(128, 10)], rng=rng)


def network_in_network(rng):
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dropout, GlobalAvgPool2D, MaxPool2D, ReLU

    def block(c_in, c_out):
        return [Conv2D(c_in, c_out, 3, padding="same"), ReLU(), Conv2D(c_out, c_out, 1),
                ReLU(), Conv2D(c_out, c_out, 1), ReLU()]

    layers, c = [], 3
    for width in (32, 64, 128):
        layers += block(c, width) + [MaxPool2D(2)]
        c = width
    return Sequential(layers + [Dropout(0.5)] + block(c, 10) + [GlobalAvgPool2D()], rng=rng)


def lenet5(rng):
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    return Sequential([Conv2D(1, 6, 5, padding="same"), ReLU(), MaxPool2D(2),
                       Conv2D(6, 16, 5, padding="valid"), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(16 * 5 * 5, 120), ReLU(), Dense(120, 84), ReLU(),
                       Dense(84, 10)], rng=rng)


def cifar_keras(rng):
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

    return Sequential([Conv2D(3, 32, 3, padding="same"), ReLU(), Conv2D(32, 32, 3), ReLU(),
                       MaxPool2D(2), Dropout(0.25),
                       Conv2D(32, 64, 3, padding="same"), ReLU(), Conv2D(64, 64, 3), ReLU(),
                       MaxPool2D(2), Dropout(0.25), Flatten(), Dense(64 * 6 * 6, 512), ReLU(),
                       Dropout(0.5), Dense(512, 10)], rng=rng)


ZOO: dict[str, Net] = {
    "default": Net(_emotion("default"), (1, 48, 48), 64, 7),
    "vggbn": Net(vgg_bn, (1, 48, 48), 64, 7),
    "simpleconvnet": Net(simple_conv_net, (1, 28, 28), 100, 10),
    "s2bn": Net(stride2_bn, (3, 32, 32), 64, 10),
    "seed": Net(_emotion("seed"), (1, 48, 48), 64, 7),
    "nin": Net(network_in_network, (3, 32, 32), 64, 10),
    "small": Net(_emotion("small"), (1, 48, 48), 64, 7),
    "lenet5": Net(lenet5, (1, 28, 28), 64, 10),
    "cifarkeras": Net(cifar_keras, (3, 32, 32), 32, 10),
}


def net(name: str) -> Net:
    """The zoo entry of ``name``; any other emotion architecture at 1x48x48, batch 64."""
    return ZOO.get(name) or Net(_emotion(name), (1, 48, 48), 64, 7)
