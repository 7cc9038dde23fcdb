"""The layer base class and the registry used to rebuild a model from its JSON spec."""

from __future__ import annotations

from typing import Any

import numpy as np

LAYER_TYPES: dict[str, type[Layer]] = {}


class Layer:
    """A layer: ``forward`` computes and keeps a cache, ``backward`` uses it.

    * ``params`` and ``grads`` are mirrored dicts with the same keys ("W", "b", ...).
      ``backward`` OVERWRITES ``grads``; it never accumulates, so there is nothing to zero.
    * ``buffers`` hold state that is saved but not trained (batch-norm running statistics).
    * ``training`` switches train/eval behaviour (dropout, batch norm).
    * Shapes passed to ``output_shape``/``macs`` exclude the batch axis, e.g. (C, H, W).
    * ``config()`` returns the JSON-able constructor arguments, so a saved model can be
      rebuilt with ``type(layer)(**config)``.
    * ``saved`` names the attributes in which ``forward`` keeps what ``backward`` needs
      (activations, masks); ``release()`` drops them.
    """

    saved: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.rng: np.random.Generator = np.random.default_rng()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_TYPES[cls.__name__] = cls

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Return dL/dx for dL/dout and fill ``grads``. ``need_dx=False`` lets a layer skip
        the input gradient (the model's first layer); it may then return None."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop what ``forward`` kept for ``backward`` (see ``saved``): the memory goes back
        at once instead of at the next forward. ``Sequential.backward`` calls it on each
        layer once its gradients are done, as autograd frees saved tensors."""
        for name in self.saved:
            setattr(self, name, None)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """(Re)initialise parameters from ``rng``; layers without parameters do nothing."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of one forward pass for one sample."""
        return 0

    def config(self) -> dict[str, Any]:
        return {}

    def astype(self, dtype: np.dtype) -> None:
        for d in (self.params, self.grads, self.buffers):
            for k, v in d.items():
                d[k] = v.astype(dtype)

    def _zero_grads(self) -> None:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
