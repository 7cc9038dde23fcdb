"""Parameter-free shape and activation layers: ReLU and Flatten."""

from __future__ import annotations

import math

from minicnn.backends import ops
from minicnn.layers.base import Layer


class ReLU(Layer):
    """max(0, x), elementwise, on input of any shape."""

    saved = ("out",)

    def forward(self, x):
        self.check_input(x)
        self.ops = ops()  # the active backend's functions, kept for backward
        out, self.out = self.ops.relu_forward(x)
        return out

    def backward(self, dout, need_dx=True):
        return self.ops.relu_backward(dout, self.out)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C-order (the same order as PyTorch's flatten)."""

    def forward(self, x):
        self.check_input(x)
        self.x_shape = x.shape
        # the feature count spelled out: reshape(N, -1) is ambiguous for an empty batch
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout, need_dx=True):
        return dout.reshape(self.x_shape)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)
