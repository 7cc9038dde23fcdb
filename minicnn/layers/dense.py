"""Dense (fully connected) layer with PyTorch's weight layout W: (out_features, in_features)."""

from __future__ import annotations

import numpy as np

from minicnn.functional.dense import dense_backward, dense_forward
from minicnn.init import he_normal
from minicnn.layers.base import Layer


class Dense(Layer):
    saved = ("x",)

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.reset_parameters(np.random.default_rng())
        self.x = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        self.params["W"] = he_normal((self.out_features, self.in_features),
                                     fan_in=self.in_features, rng=rng)
        self.params["b"] = np.zeros(self.out_features, dtype=np.float32)
        self._zero_grads()

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense expects (N, {self.in_features}) input, got {x.shape}")
        out, self.x = dense_forward(x, self.params["W"], self.params["b"])
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["W"], self.grads["b"] = dense_backward(dout, self.x, self.params["W"])
        return dx

    def output_shape(self, input_shape):
        return (self.out_features,)

    def macs(self, input_shape):
        return self.in_features * self.out_features

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}
