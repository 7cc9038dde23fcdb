"""Inverted dropout layer. The identity in eval mode; masks come from ``self.rng``, which
``Sequential`` sets to the model's Generator."""

from __future__ import annotations

from minicnn.functional.dropout import dropout_backward, dropout_forward
from minicnn.layers.base import Layer, float_arg


class Dropout(Layer):
    """Inverted dropout: in training, each value is zeroed with probability ``p`` (the
    fraction DROPPED, as in ``torch.nn.Dropout``, not Keras's keep probability) and the
    survivors are scaled by 1 / (1 - p), so the expected activation is unchanged; in eval
    mode it is the identity. p must be in [0, 1)."""

    saved = ("mask",)

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = float_arg("Dropout", "p (the dropout probability)", p, 0.0, 1.0,
                           high_open=True)
        self.mask = None

    def forward(self, x):
        self.check_input(x)
        out, self.mask = dropout_forward(x, self.p, self.rng, self.training)
        return out

    def backward(self, dout, need_dx=True):
        return dropout_backward(dout, self.mask)

    def config(self):
        return {"p": self.p}
