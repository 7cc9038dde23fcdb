"""Inverted dropout layer. The identity in eval mode; masks come from ``self.rng``, which
``Sequential`` sets to the model's Generator."""

from __future__ import annotations

from minicnn.functional.dropout import dropout_backward, dropout_forward
from minicnn.layers.base import Layer


class Dropout(Layer):
    saved = ("mask",)

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.mask = None

    def forward(self, x):
        out, self.mask = dropout_forward(x, self.p, self.rng, self.training)
        return out

    def backward(self, dout, need_dx=True):
        return dropout_backward(dout, self.mask)

    def config(self):
        return {"p": self.p}
