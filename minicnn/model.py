"""Sequential: a stack of layers with named parameters, summary, save and load."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from minicnn.layers.base import Layer


@dataclass
class Recording:
    """What one forward/backward pass of a ``Sequential`` left behind, for study tools.

    Filled inside ``with model.record() as rec:``. Index ``i`` is the model's layer ``i``:

    * ``inputs`` : the array given to ``forward`` (N, ...).
    * ``outputs[i]`` : layer i's output, i.e. its "activation" or "feature map".
    * ``output_grads[i]`` : dL/d(outputs[i]), the gradient flowing INTO layer i from above
      during ``backward`` (missing for layers the backward pass has not reached).
    * ``input_grad`` : dL/d(inputs), when ``backward`` was asked for it.

    Every array is a copy taken at the moment it passed by, so later passes (and layers that
    reuse their buffers) cannot change it. Recording costs memory and a copy per layer; it is
    meant for a few images, not for training.
    """

    inputs: np.ndarray | None = None
    outputs: list[np.ndarray] = field(default_factory=list)
    output_grads: dict[int, np.ndarray] = field(default_factory=dict)
    input_grad: np.ndarray | None = None


class Sequential:
    """Layers applied in order. The public surface other code relies on:

    * ``forward(x)`` returns logits; ``backward(dout)`` returns dx and fills every layer's
      gradients (overwriting them); ``train()`` / ``eval()`` switch mode (training first).
      Like autograd, ``backward`` frees what each layer's forward kept for it as soon as
      that layer is done (``Layer.release``), so one forward allows one backward.
    * ``parameters()``, ``gradients()`` and ``buffers()`` map dotted names
      ``"<layer index>.<name>"`` (e.g. "0.W", "1.gamma") to the LIVE arrays: writing into
      them changes the model, and an optimizer updates them in place.
    * ``rng`` (a Generator or seed) initialises the parameters and drives dropout, so one
      seed reproduces a run. Each layer is (re)initialised from it, in order, with the
      layer's own initialiser (``Conv2D(..., init=...)``; see ``minicnn.init``), EXCEPT
      a layer whose parameters or buffers you have set yourself (assigned, written into,
      cast or trained since the layer drew them; see ``Layer.parameters_set``) and a
      layer built with ``init=None``: those keep their values. So weights you set before
      building the model are never silently redrawn.
    * Input must be float32 or float64, of the parameters' dtype (a float64 batch, what
      ``x / 255.0`` gives, is refused by a float32 model with a message, as PyTorch does,
      rather than silently run at float64's slower speed): cast it with
      ``x.astype(np.float32)``. Each layer checks its input (``Layer.check_input``), so a
      wrong dtype or shape is reported with the layer's name.
    """

    def __init__(self, layers: Iterable[Layer], rng: np.random.Generator | int | None = None,
                 metadata: dict | None = None) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is {type(layer).__name__}, not a minicnn Layer")
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.metadata = dict(metadata or {})
        for layer in self.layers:
            if getattr(layer, "init", "default") is not None and not layer.parameters_set():
                layer.initialize(self.rng)
            layer.rng = self.rng
        self.training = True
        self._recording: Recording | None = None
        self._saved = False  # whether the layers hold a forward's activations for backward

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run the layers in order: x (N, C, H, W) (or whatever the first layer takes) ->
        the last layer's output, the logits (N, K) for a classifier. In training mode
        each layer keeps what its backward needs; in eval mode (``eval()``) dropout is the
        identity and batch norm uses its running statistics."""
        rec = self._recording
        if rec is not None:
            rec.inputs, rec.outputs, rec.output_grads, rec.input_grad = x.copy(), [], {}, None
        for layer in self.layers:
            x = layer.forward(x)
            if rec is not None:
                rec.outputs.append(x.copy())
        self._saved = True
        return x

    __call__ = forward

    def backward(self, dout: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate dL/dlogits; returns dL/dx (None if ``need_input_grad`` is False,
        which lets the first layer skip work the training loop never uses).

        Each layer's saved activations are released once its gradients are done, so the
        first stage's large gradients never meet the later stages' activations in memory
        (the saving is in benchmarks/README.md). A second backward needs a new forward."""
        if not self._saved:
            raise RuntimeError("backward needs a forward first (each backward releases the "
                               "activations its forward kept)")
        self._saved = False
        rec = self._recording
        for i in range(len(self.layers) - 1, -1, -1):
            if rec is not None:
                rec.output_grads[i] = dout.copy()
            dout = self.layers[i].backward(dout, need_dx=need_input_grad or i > 0)
            self.layers[i].release()
        if rec is not None and dout is not None:
            rec.input_grad = dout.copy()
        return dout

    @contextmanager
    def record(self) -> Iterator[Recording]:
        """Keep every layer's output and the gradient flowing into it, without touching the
        layers' maths::

            with model.record() as rec:
                logits = model.forward(x)
                model.backward(dscores)
            rec.outputs[3], rec.output_grads[3]   # layer 3's feature maps and dL/d(them)

        See ``Recording``. Each ``forward`` inside the block starts a fresh recording.
        """
        previous, self._recording = self._recording, Recording()
        try:
            yield self._recording
        finally:
            self._recording = previous

    def train(self) -> Sequential:
        self.training = True
        for layer in self.layers:
            layer.training = True
        return self

    def eval(self) -> Sequential:
        self.training = False
        for layer in self.layers:
            layer.training = False
        return self

    def predict_proba(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Softmax probabilities (N, K) in eval mode, ``batch_size`` samples at a time (which
        bounds the memory: a larger batch's feature maps each cost fresh memory); restores
        the mode after. N = 0 gives an empty (0, K) array."""
        from minicnn.functional.loss import softmax

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if self.layers and isinstance(x, np.ndarray) and len(x) == 0:
            self.layers[0].check_input(x)
            return np.zeros((0, *self.output_shape(x.shape[1:])), dtype=x.dtype)
        was_training = self.training
        self.eval()
        try:
            return np.concatenate([softmax(self.forward(x[i:i + batch_size]))
                                   for i in range(0, len(x), batch_size)])
        finally:
            if was_training:
                self.train()

    # ------------------------------------------------------------------ named state
    def _named(self, attr: str) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in getattr(layer, attr).items()}

    def parameters(self) -> dict[str, np.ndarray]:
        return self._named("params")

    def gradients(self) -> dict[str, np.ndarray]:
        return self._named("grads")

    def buffers(self) -> dict[str, np.ndarray]:
        return self._named("buffers")

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy values from {"param/0.W": ..., "buffer/1.running_mean": ...} into the LIVE
        arrays (in place, so an optimizer built earlier stays linked to the model)."""
        for kind, named in (("param", self.parameters()), ("buffer", self.buffers())):
            for name, arr in named.items():
                arr[...] = arrays[f"{kind}/{name}"]

    def astype(self, dtype) -> Sequential:
        """Cast every parameter, gradient and buffer (e.g. to float64 for gradient checks).
        This replaces the arrays: build the optimizer after casting."""
        for layer in self.layers:
            layer.astype(np.dtype(dtype))
        return self

    def num_parameters(self) -> int:
        return sum(v.size for v in self.parameters().values())

    # ------------------------------------------------------------------ description
    def spec(self) -> list[dict]:
        """The architecture as JSON-able data: [{"type": "Conv2D", "config": {...}}, ...],
        one entry per layer; ``minicnn.load`` rebuilds the layers from it."""
        return [{"type": type(layer).__name__, "config": layer.config()} for layer in self.layers]

    def _trace(self, input_shape: tuple[int, ...]) -> Iterator[tuple[Layer, tuple, tuple]]:
        """(layer, its input shape, its output shape) for one sample of ``input_shape``,
        layer by layer; ValueError names the first layer the shape does not fit."""
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
        if shape is None or not all(isinstance(n, (int, np.integer)) and n >= 0
                                    for n in shape):
            raise ValueError(f"input_shape must be a tuple of sizes, e.g. (1, 48, 48), got "
                             f"{input_shape!r}")
        for i, layer in enumerate(self.layers):
            given = "the input is" if i == 0 else f"layer {i - 1} gives"
            hint = ""
            if i == 0 and layer.sample_ndim is not None and len(shape) == layer.sample_ndim + 1:
                hint = "; the shape is one sample's, without the batch axis"
            elif layer.sample_ndim == 1 and len(shape) > 1:
                hint = "; put a Flatten() before it"
            if not layer.accepts(shape):
                raise ValueError(f"layer {i} {layer!r} takes {layer.expected_sample()} per "
                                 f"sample, but {given} {shape}{hint}")
            try:
                out = tuple(layer.output_shape(shape))
            except ValueError as exc:
                raise ValueError(f"layer {i} {layer!r} does not fit {given} {shape}: "
                                 f"{exc}") from None
            yield layer, shape, out
            shape = out

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape of one sample of ``input_shape`` (no batch axis, e.g.
        (1, 48, 48) -> (7,)); ValueError names the first layer that does not fit."""
        traced = list(self._trace(input_shape))
        return traced[-1][2] if traced else tuple(input_shape)

    def summary(self, input_shape: tuple[int, ...], print_fn=print) -> str:
        """Table of each layer's output shape, parameter count and multiply-accumulates for
        one sample of ``input_shape`` (without the batch axis, e.g. (1, 48, 48)). The shapes
        are traced through every layer first: ValueError names the first layer they do not
        fit (a Dense whose in_features differ from what the layer before gives)."""
        rows = [("#", "layer", "output shape", "params", "MACs")]
        total_p, total_m = 0, 0
        for i, (layer, shape_in, shape) in enumerate(self._trace(input_shape)):
            macs = layer.macs(shape_in)
            p = sum(v.size for v in layer.params.values())
            total_p, total_m = total_p + p, total_m + macs
            rows.append((str(i), repr(layer), str(shape), f"{p:,}", f"{macs:,}"))
        rows.append(("", "total", "", f"{total_p:,}", f"{total_m:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = ["  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                           for c, (cell, w) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of one forward pass for one sample of ``input_shape``."""
        return sum(layer.macs(shape_in) for layer, shape_in, _ in self._trace(input_shape))

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Atomically write weights + JSON architecture spec to ``path`` (.npz)."""
        from minicnn.serialize import save_model

        save_model(self, path, metadata)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a file saved from the SAME architecture (same layer types and configs) into
        this model's live arrays, checking it first as ``minicnn.load`` does; the file's
        metadata replaces ``self.metadata``. WeightsError names the file and the problem."""
        from minicnn.serialize import (
            SPEC_KEY,
            WeightsError,
            check_arrays,
            model_arrays,
            read_headers,
            read_npz,
            read_spec,
        )

        headers = read_headers(path)
        spec = read_spec(path, headers)
        if spec["layers"] != self.spec():
            raise WeightsError(f"{path}: saved from a different architecture than this model")
        arrays = read_npz(path, expected=model_arrays(self), headers=headers)
        arrays.pop(SPEC_KEY)
        check_arrays(path, arrays, model_arrays(self))
        self.load_arrays(arrays)
        self.metadata = dict(spec.get("metadata") or {})
