"""Dense (fully connected) layer with PyTorch's weight layout W: (out_features, in_features)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minicnn.backends import ops
from minicnn.init import check_init, draw
from minicnn.layers.base import Layer, check_size, int_arg


class Dense(Layer):
    """Fully connected layer: (N, in_features) -> (N, out_features), out = x @ W.T + b,
    with W: (out_features, in_features) and b: (out_features,) as in ``torch.nn.Linear``.

    ``init`` chooses the weights' initialiser (``minicnn.init``: "he_normal", the default,
    "glorot_uniform", ``init.normal(std)``, a callable, or None for zeros); biases start at
    zero. Put a ``Flatten`` before it to feed it feature maps.
    """

    saved = ("x",)
    sample_ndim = 1

    def __init__(self, in_features: int, out_features: int,
                 init: str | Callable | None = "he_normal") -> None:
        super().__init__()
        in_features = int_arg("Dense", "in_features", in_features)
        out_features = int_arg("Dense", "out_features", out_features)
        check_init(init, "Dense")
        check_size("Dense", [(out_features, in_features)])
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self.initialize(np.random.default_rng())
        self.x = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        self.params["W"] = draw(self.init, (self.out_features, self.in_features),
                                self.in_features, self.out_features, rng, repr(self))
        self.params["b"] = np.zeros(self.out_features, dtype=np.float32)
        self._zero_grads()

    def forward(self, x):
        self.check_input(x)
        self.ops = ops()  # the active backend's functions, kept for backward
        out, self.x = self.ops.dense_forward(x, self.params["W"], self.params["b"])
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["W"], self.grads["b"] = self.ops.dense_backward(dout, self.x,
                                                                       self.params["W"])
        return dx

    def sample_size(self):
        return self.in_features

    def output_shape(self, input_shape):
        return (self.out_features,)

    def macs(self, input_shape):
        return self.in_features * self.out_features

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}
