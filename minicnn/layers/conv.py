"""Conv2D layer: a thin class over the active backend's conv2d (``functional.conv`` or
``engine.conv``)."""

from __future__ import annotations

import numpy as np

from minicnn.backends import ops
from minicnn.init import he_normal
from minicnn.kernels import output_hw
from minicnn.layers.base import Layer


class Conv2D(Layer):
    """2-D convolution over NCHW input. W: (out_channels, in_channels, k, k), b: (out_channels,).

    ``padding`` is an int, "valid" (0) or "same" (odd kernels only: pads (k - 1) // 2 on
    every side, so stride 1 keeps H and W). Weights start He-normal, biases at zero.

    ``activation="relu"`` applies a ReLU to the output in the same pass that adds the bias
    (the same function as a separate ``ReLU`` layer after it, with one pass over the
    output fewer). ``minicnn.fuse.fold_batchnorm`` uses it for inference.
    """

    saved = ("cache", "out")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, bias: bool = True, activation: str | None = None) -> None:
        super().__init__()
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        if padding == "same":
            if kernel_size % 2 == 0:
                raise ValueError("padding='same' needs an odd kernel_size")
            pad = (kernel_size - 1) // 2
        elif padding == "valid":  # no padding, as PyTorch names it
            pad = 0
        elif isinstance(padding, int) and padding >= 0:
            pad = padding
        else:
            raise ValueError(f"padding must be a non-negative int, 'same' or 'valid', got "
                             f"{padding!r}")
        if min(in_channels, out_channels, kernel_size, stride) < 1:
            raise ValueError("channels, kernel_size and stride must be positive")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.pad = kernel_size, stride, padding, pad
        self.bias, self.activation = bias, activation
        self.reset_parameters(np.random.default_rng())
        self.cache = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        k, C, F = self.kernel_size, self.in_channels, self.out_channels
        self.params["W"] = he_normal((F, C, k, k), fan_in=C * k * k, rng=rng)
        if self.bias:
            self.params["b"] = np.zeros(F, dtype=np.float32)
        self._zero_grads()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.ops = ops()  # the active backend's functions, kept for backward
        out, self.cache = self.ops.conv2d_forward(x, self.params["W"], self.params.get("b"),
                                                  self.stride, self.pad,
                                                  relu=self.activation == "relu")
        self.out = out if self.activation == "relu" else None  # for the ReLU's gradient
        return out

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if self.activation == "relu":
            dout = self.ops.relu_backward(dout, self.out)
        dx, dw, db = self.ops.conv2d_backward(dout, self.cache, need_dx=need_dx,
                                              need_db=self.bias)
        self.grads["W"] = dw
        if self.bias:
            self.grads["b"] = db
        return dx

    def output_shape(self, input_shape):
        C, H, W = input_shape
        k = self.kernel_size
        return (self.out_channels, *output_hw(H, W, k, k, self.stride, self.pad))

    def macs(self, input_shape):
        F, OH, OW = self.output_shape(input_shape)
        return F * OH * OW * self.in_channels * self.kernel_size**2

    def config(self):
        cfg = {"in_channels": self.in_channels, "out_channels": self.out_channels,
               "kernel_size": self.kernel_size, "stride": self.stride,
               "padding": self.padding, "bias": self.bias}
        if self.activation is not None:  # only then: older weights files have no such key
            cfg["activation"] = self.activation
        return cfg
