"""Optimizers that update a model's parameter arrays IN PLACE, keyed by dotted name.

    opt = Adam(model.parameters(), lr=1e-3)
    ...; model.backward(dlogits); opt.step(model.gradients())

Updating in place keeps the optimizer and the model pointing at the same arrays (loading
weights with ``model.load_weights`` copies into them too). The formulas follow
``torch.optim`` exactly so the two can be compared step by step:

    SGD   : g = grad + wd * p;  buf = momentum * buf + g  (first step: buf = g)
            p -= lr * (g + momentum * buf  if nesterov else  buf)
    Adam  : g = grad + wd * p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
            p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW : as Adam with wd = 0 in g, plus decoupled decay p *= 1 - lr * wd (Loshchilov &
            Hutter 2019)

``no_decay`` lists parameter names exempt from weight decay (biases and batch-norm
scales are commonly exempted).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from minicnn.backends import get_backend
from minicnn.kernels.optim import adam_update
from minicnn.schedules import Constant, CosineWarmup, OneCycle, Restart, StepLR

__all__ = ["SGD", "Adam", "AdamW", "Constant", "CosineWarmup", "OneCycle", "Optimizer",
           "Restart", "StepLR"]


class Optimizer:
    """The base of SGD, Adam and AdamW: ``params`` maps names to the model's LIVE arrays
    (``model.parameters()``); ``step(grads)`` updates them in place from the gradients of
    the same names (``model.gradients()``). ``lr`` may be changed between steps (see
    ``minicnn.schedules``); ``state_arrays()`` / ``load_state_arrays()`` save and restore
    the per-parameter state for a checkpoint."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, weight_decay: float = 0.0,
                 no_decay: Iterable[str] = ()) -> None:
        if lr < 0:
            raise ValueError(f"learning rate must be non-negative, got {lr}")
        self.params = dict(params)
        self.lr = lr
        self.weight_decay = weight_decay
        self.no_decay = set(no_decay)
        self.t = 0  # number of steps taken
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.params}

    def _decay(self, name: str) -> float:
        return 0.0 if name in self.no_decay else self.weight_decay

    def step(self, grads: dict[str, np.ndarray]) -> None:
        missing = set(self.params) - set(grads)
        if missing:
            raise KeyError(f"no gradient for parameter(s) {sorted(missing)}")
        self.t += 1
        for name, p in self.params.items():
            self._update(name, p, grads[name], self.state[name])

    def _update(self, name, p, g, state) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- checkpointing
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Flat {"<param>/<slot>": array} plus the step count, for an .npz checkpoint."""
        out = {f"{name}/{slot}": arr for name, s in self.state.items() for slot, arr in s.items()}
        out["__t__"] = np.array(self.t)
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.t = int(arrays["__t__"])
        for name in self.params:
            self.state[name] = {}
        for key, arr in arrays.items():
            if key == "__t__":
                continue
            name, slot = key.rsplit("/", 1)
            if name not in self.params:
                raise KeyError(f"optimizer state for unknown parameter {name!r}")
            if arr.shape != self.params[name].shape:
                raise ValueError(f"optimizer state {key!r} has shape {arr.shape}, expected "
                                 f"{self.params[name].shape}")
            self.state[name][slot] = arr.astype(self.params[name].dtype)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay,
    as ``torch.optim.SGD`` (see the module docstring for the update).

    lr : step size; momentum : 0 for plain SGD, e.g. 0.9 for heavy-ball momentum;
    nesterov : look-ahead momentum (needs momentum > 0); weight_decay : L2 penalty added to
    the gradient; no_decay : parameter names exempt from it (e.g. biases).
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, no_decay: Iterable[str] = ()) -> None:
        super().__init__(params, lr, weight_decay, no_decay)
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov

    def _update(self, name, p, g, state):
        wd = self._decay(name)
        if wd:
            g = g + wd * p
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with the textbook bias correction, as ``torch.optim.Adam``
    (see the module docstring for the update).

    lr : step size (1e-3 is the usual start); betas : decay rates of the running mean of
    the gradient and of its square; eps : added to the denominator for stability;
    weight_decay : L2 penalty added to the gradient (for decoupled decay use AdamW);
    no_decay : parameter names exempt from it.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 no_decay: Iterable[str] = ()) -> None:
        super().__init__(params, lr, weight_decay, no_decay)
        self.betas, self.eps = tuple(betas), eps

    def _update(self, name, p, g, state):
        b1, b2 = self.betas
        wd = self._decay(name)
        if not state:
            state["m"] = np.zeros_like(p)
            state["v"] = np.zeros_like(p)
        # the fast backend: the same update in one compiled pass (``kernels/optim.py``)
        if get_backend() == "fast" and adam_update(
                p, g, state["m"], state["v"], self.lr, b1, b2, self.eps, 1 - b1**self.t,
                1 - b2**self.t, wd, self.decoupled):
            return
        if wd and self.decoupled:
            p *= 1 - self.lr * wd
        elif wd:
            g = g + wd * p
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        bias1 = 1 - b1**self.t
        bias2 = 1 - b2**self.t
        denom = np.sqrt(v / bias2)
        denom += self.eps
        p -= (self.lr / bias1) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay; PyTorch's default weight_decay=1e-2."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2,
                 no_decay: Iterable[str] = ()) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, no_decay)
