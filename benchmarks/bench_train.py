"""Case "train": one training step (forward + backward + Adam, float32) in images/s, for
each network of the zoo (``benchmarks/zoo.py``: the project's models and the networks of
issue 16, each at its own input size and batch; the smoke run uses batch ``cfg.batch``).

Both frameworks train the same architecture with the same initial weights on the same
random batch (N, C, H, W) with integer labels: minicnn's Sequential with
SoftmaxCrossEntropy and Adam(lr=1e-3), against ``torch.nn`` built by
``benchmarks.torch_models.torch_sequential`` with ``F.cross_entropy`` and
``torch.optim.Adam(lr=1e-3)``. Neither computes the input gradient of the first layer,
as in a real training loop. Figure: batch / (median seconds per step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.common import Config, Row, get_torch, measure, rate_row

GROUP = "train"
TARGET = 1.0  # at least PyTorch's throughput


def make_batch(batch: int, seed: int = 0, shape: tuple[int, int, int] = (1, 48, 48),
               classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, classes, size=batch).astype(np.int64)
    return x, y


def build_model(name: str, seed: int = 0):
    """A zoo network (``benchmarks/zoo.py``) or an emotion architecture, by name."""
    from benchmarks.zoo import net

    return net(name).build(seed)


def minicnn_step(model) -> Callable[[np.ndarray, np.ndarray], float]:
    """A closure ``step(x, y)`` doing one training step of ``model``; returns the loss."""
    from minicnn import SoftmaxCrossEntropy
    from minicnn.optim import Adam

    model.train()
    loss_fn = SoftmaxCrossEntropy()
    opt = Adam(model.parameters(), lr=1e-3)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        loss = loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step(model.gradients())
        return loss

    return step


def torch_step(model) -> Callable[[np.ndarray, np.ndarray], float]:
    """The same ``step(x, y)`` in PyTorch, on a torch copy of ``model`` (same weights)."""
    from benchmarks.torch_models import torch_sequential

    torch = get_torch()
    net = torch_sequential(model)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    cross_entropy = torch.nn.functional.cross_entropy

    def step(x: np.ndarray, y: np.ndarray) -> float:
        opt.zero_grad(set_to_none=True)
        loss = cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def run(cfg: Config) -> list[Row]:
    torch = get_torch()
    from benchmarks.zoo import net

    rows = []
    for name in cfg.zoo:
        spec = net(name)
        batch = cfg.batch if cfg.smoke else spec.batch
        x, y = make_batch(batch, shape=spec.input_shape, classes=spec.classes)
        ours = minicnn_step(build_model(name))
        ours_s = measure(lambda: ours(x, y), cfg, number=cfg.train_steps)  # noqa: B023
        theirs = None
        if torch is not None:
            step = torch_step(build_model(name))
            theirs_s = measure(lambda: step(x, y), cfg, number=cfg.train_steps)  # noqa: B023
            theirs = batch / theirs_s
        rows.append(rate_row(GROUP, f"train step {name} (batch {batch})",
                             batch / ours_s, theirs, "img/s", TARGET,
                             note=f"{ours_s * 1e3:.0f} ms/step"))
    return rows
