"""The layer base class, the registry used to rebuild a model from its JSON spec, and the
checks every layer makes of its arguments and its input."""

from __future__ import annotations

import math
import numbers
import zlib
from typing import Any

import numpy as np

LAYER_TYPES: dict[str, type[Layer]] = {}

# The most parameters one layer may have, checked before anything is allocated: 2**27
# (134 M, 512 MiB of float32; VGG-16's largest layer has 103 M). A typo such as
# out_channels=10**12, in code or in a weights file, then stops with a message instead of
# allocating until MemoryError.
MAX_LAYER_PARAMETERS = 2**27
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def int_arg(layer: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= minimum, or TypeError/ValueError naming the layer and argument
    (a float such as 1e12 or 3.0 is refused: sizes are counts)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value}")
    return int(value)


def float_arg(layer: str, name: str, value: Any, low: float, high: float,
              high_open: bool = False) -> float:
    """``value`` as a float in [low, high] (or [low, high) with high_open), or
    TypeError/ValueError naming the layer and argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a number, got {value!r}")
    value = float(value)
    if not (low <= value and (value < high if high_open else value <= high)):
        raise ValueError(f"{layer}: {name} must be in [{low}, {high}{')' if high_open else ']'}"
                         f", got {value}")
    return value


def check_size(layer: str, shapes: list[tuple[int, ...]]) -> None:
    """Refuse parameters of ``shapes`` adding up to more than ``MAX_LAYER_PARAMETERS``."""
    n = sum(math.prod(s) for s in shapes)
    if n > MAX_LAYER_PARAMETERS:
        raise ValueError(f"{layer}: {n:,} parameters is more than the {MAX_LAYER_PARAMETERS:,} "
                         "one layer may have (minicnn.layers.base.MAX_LAYER_PARAMETERS)")


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
    * ``forward`` starts with ``check_input(x)``: input that is not a float32/float64 array,
      not of the model's own dtype, or not of the shape the layer takes is refused with a
      TypeError/ValueError naming the layer, instead of failing deep in a kernel or
      returning a truncated integer result. ``sample_ndim`` and ``sample_size()`` say
      which shape that is.
    * ``initialize(rng)`` draws the parameters (``reset_parameters``) and remembers a
      checksum of them: ``parameters_set()`` then tells whether they have been changed
      since (assigned or written into), which ``Sequential`` uses to keep weights you set.
    """

    saved: tuple[str, ...] = ()
    # The rank of one sample (without the batch axis) the layer takes: 3 for (C, H, W),
    # 1 for (D,), None for any rank.
    sample_ndim: int | None = None

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

    def initialize(self, rng: np.random.Generator) -> None:
        """``reset_parameters(rng)`` and remember what was drawn (see ``parameters_set``)."""
        self.reset_parameters(rng)
        self._drawn = self._checksum()

    def parameters_set(self) -> bool:
        """Whether the parameters or buffers differ from what ``initialize`` last drew:
        replaced, written into, cast or trained since (False for a layer that never went
        through ``initialize``)."""
        drawn = getattr(self, "_drawn", None)
        return drawn is not None and self._checksum() != drawn

    def _checksum(self) -> tuple:
        return tuple((kind, k, v.shape, v.dtype.str, zlib.crc32(np.ascontiguousarray(v)))
                     for kind, d in (("p", self.params), ("b", self.buffers))
                     for k, v in sorted(d.items()))

    # -- input checks
    def sample_size(self) -> int | None:
        """The size the first axis of a sample must have (channels or features), if fixed."""
        return None

    def expected_sample(self) -> str:
        """One sample's shape as the layer takes it, for messages: "(1, H, W)", "(4000,)"."""
        size = self.sample_size()
        if self.sample_ndim == 3:
            return f"({size if size is not None else 'C'}, H, W)"
        if self.sample_ndim == 1:
            return f"({size if size is not None else 'D'},)"
        return "any shape"

    def accepts(self, sample_shape: tuple[int, ...]) -> bool:
        """Whether one sample of ``sample_shape`` (no batch axis) has the rank and the
        channel/feature count this layer takes."""
        if self.sample_ndim is not None and len(sample_shape) != self.sample_ndim:
            return False
        size = self.sample_size()
        return size is None or (len(sample_shape) > 0 and sample_shape[0] == size)

    def check_input(self, x: Any) -> None:
        """Refuse an input ``forward`` cannot compute on correctly (see the class docstring)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: input must be a NumPy array, got {type(x).__name__}")
        if x.dtype not in FLOAT_DTYPES:
            hint = " (8-bit images: x.astype(np.float32) / 255)" if x.dtype == np.uint8 else ""
            raise TypeError(f"{self!r}: input dtype {x.dtype} is not supported; layers compute "
                            f"in float32 or float64: convert with x.astype(np.float32){hint}")
        own = next(iter(self.params.values()), None)
        if own is not None and own.dtype != x.dtype:
            raise TypeError(f"{self!r} has {own.dtype} parameters but got {x.dtype} input; "
                            f"cast the input (x.astype(np.{own.dtype})) or the model "
                            f"(model.astype(np.{x.dtype}))")
        if x.ndim < 1 or not self.accepts(x.shape[1:]):
            hint = ""
            if self.sample_ndim == 3 and x.ndim == 3 and self.sample_size() == 1:
                hint = "; a batch of gray images needs a channel axis: x[:, None]"
            elif self.sample_ndim is not None and x.ndim == self.sample_ndim:
                hint = "; a single sample needs a batch axis: x[None]"
            inner = self.expected_sample().strip("(,)") if self.sample_ndim else "..."
            raise ValueError(f"{self!r} expects input (N, {inner}); got shape {x.shape}{hint}")

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
