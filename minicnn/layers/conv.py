"""Conv2D layer: a thin class over the active backend's conv2d (``functional.conv`` or
``engine.conv``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minicnn.backends import ops
from minicnn.init import check_init, draw
from minicnn.kernels import output_hw
from minicnn.layers.base import Layer, check_size, int_arg


class Conv2D(Layer):
    """2-D convolution over NCHW input. W: (out_channels, in_channels, k, k), b: (out_channels,).

    ``kernel_size`` is an int k or a square (k, k) (only square kernels are supported).
    ``padding`` is an int, "valid" (0) or "same" (odd kernels only: pads (k - 1) // 2 on
    every side, so stride 1 keeps H and W). Output size:
    OH = (H + 2 * pad - k) // stride + 1, and the same for OW.
    ``init`` chooses the weights' initialiser (``minicnn.init``: "he_normal", the default,
    "glorot_uniform", ``init.normal(std)``, a callable, or None for zeros); biases start at
    zero.

    ``activation="relu"`` applies a ReLU to the output: the same function as a separate
    ``ReLU`` layer after it, which the engine applies in the pass that adds the bias.
    ``minicnn.fuse.fold_batchnorm`` uses it for inference.
    """

    saved = ("cache", "out")

    sample_ndim = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | str = 0, bias: bool = True,
                 activation: str | None = None, init: str | Callable | None = "he_normal",
                 ) -> None:
        super().__init__()
        if isinstance(kernel_size, (tuple, list)):
            if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1]:
                raise ValueError(f"Conv2D: only square kernels are supported; kernel_size "
                                 f"must be an int k or (k, k), got {kernel_size!r}")
            kernel_size = kernel_size[0]
        in_channels = int_arg("Conv2D", "in_channels", in_channels)
        out_channels = int_arg("Conv2D", "out_channels", out_channels)
        kernel_size = int_arg("Conv2D", "kernel_size", kernel_size)
        stride = int_arg("Conv2D", "stride", stride)
        if activation not in (None, "relu"):
            raise ValueError(f"Conv2D: activation must be None or 'relu', got {activation!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Conv2D: bias must be True or False, got {bias!r}")
        if padding == "same":
            if kernel_size % 2 == 0:
                raise ValueError("Conv2D: padding='same' needs an odd kernel_size")
            pad = (kernel_size - 1) // 2
        elif padding == "valid":  # no padding, as PyTorch names it
            pad = 0
        elif isinstance(padding, str):
            raise ValueError(f"Conv2D: padding must be a non-negative int, 'same' or 'valid', "
                             f"got {padding!r}")
        else:
            pad = padding = int_arg("Conv2D", "padding", padding, minimum=0)
        check_init(init, "Conv2D")
        check_size("Conv2D", [(out_channels, in_channels, kernel_size, kernel_size)])
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.pad = kernel_size, stride, padding, pad
        self.bias, self.activation, self.init = bool(bias), activation, init
        self.initialize(np.random.default_rng())
        self.cache = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        k, C, F = self.kernel_size, self.in_channels, self.out_channels
        self.params["W"] = draw(self.init, (F, C, k, k), C * k * k, F * k * k, rng, repr(self))
        if self.bias:
            self.params["b"] = np.zeros(F, dtype=np.float32)
        self._zero_grads()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self.ops = ops()  # the active backend's functions, kept for backward
        out, self.cache = self.ops.conv2d_forward(x, self.params["W"], self.params.get("b"),
                                                  self.stride, self.pad,
                                                  relu=self.activation == "relu",
                                                  training=self.training)
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

    def sample_size(self):
        return self.in_channels

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
