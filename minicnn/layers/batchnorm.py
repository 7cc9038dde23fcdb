"""BatchNorm2D layer with PyTorch's conventions (momentum 0.1, eps 1e-5, unbiased running
variance, running statistics in eval mode). The maths is in ``functional.batchnorm``."""

from __future__ import annotations

import math

import numpy as np

from minicnn.backends import ops
from minicnn.layers.base import Layer, check_size, float_arg, int_arg


class BatchNorm2D(Layer):
    """Batch norm over each channel of (N, C, H, W). gamma, beta, running_mean and
    running_var: (C,).

    ``activation="relu"`` applies a ReLU to the output: the same function as a separate
    ``ReLU`` layer after it. The engine does it inside batch norm's own passes, with no
    un-rectified map or gated gradient allocated (``engine.batchnorm``); the maths is in
    ``functional.batchnorm``.
    """

    saved = ("cache",)
    sample_ndim = 3

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5,
                 activation: str | None = None) -> None:
        super().__init__()
        num_features = int_arg("BatchNorm2D", "num_features", num_features)
        momentum = float_arg("BatchNorm2D", "momentum", momentum, 0.0, 1.0)
        eps = float_arg("BatchNorm2D", "eps", eps, 0.0, math.inf)
        if eps == 0:
            raise ValueError("BatchNorm2D: eps must be > 0 (it keeps 1/sqrt(var + eps) finite)")
        if activation not in (None, "relu"):
            raise ValueError(f"BatchNorm2D: activation must be None or 'relu', got "
                             f"{activation!r}")
        check_size("BatchNorm2D", [(num_features,)] * 4)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.activation = activation
        self.initialize(np.random.default_rng())
        self.cache = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        C = self.num_features
        self.params["gamma"] = np.ones(C, dtype=np.float32)
        self.params["beta"] = np.zeros(C, dtype=np.float32)
        self.buffers["running_mean"] = np.zeros(C, dtype=np.float32)
        self.buffers["running_var"] = np.ones(C, dtype=np.float32)
        self._zero_grads()

    def forward(self, x):
        self.check_input(x)
        self.ops = ops()  # the active backend's functions, kept for backward (its cache)
        out, self.cache = self.ops.batchnorm2d_forward(
            x, self.params["gamma"], self.params["beta"], self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps, self.training,
            relu=self.activation == "relu")
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["gamma"], self.grads["beta"] = self.ops.batchnorm2d_backward(
            dout, self.cache)
        return dx

    def sample_size(self):
        return self.num_features

    def macs(self, input_shape):
        return int(np.prod(input_shape))  # one multiply-add per value in eval mode

    def config(self):
        cfg = {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}
        if self.activation is not None:  # only then: older weights files have no such key
            cfg["activation"] = self.activation
        return cfg
