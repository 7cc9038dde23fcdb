"""Learning-rate schedules: callables mapping a step number (0-based) to a learning rate.

The training loop sets ``optimizer.lr = schedule(step)`` before each step (``OneCycle``
shows the loop). Each schedule has a ``config()`` so a checkpoint can record it.
"""

from __future__ import annotations

import math


class Constant:
    """The same learning rate at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def __call__(self, step: int) -> float:
        return self.lr

    def config(self) -> dict:
        return {"name": "constant", "lr": self.lr}


class StepLR:
    """lr * gamma ** (step // step_size), like ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr, self.step_size, self.gamma = lr, step_size, gamma

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)

    def config(self) -> dict:
        return {"name": "step", "lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


class CosineWarmup:
    """Linear warm-up from ~0 to ``lr`` over ``warmup_steps``, then a half cosine down to
    ``min_lr`` at ``total_steps`` (Loshchilov & Hutter 2017, SGDR without restarts)."""

    def __init__(self, lr: float, total_steps: int, warmup_steps: int = 0,
                 min_lr: float = 0.0) -> None:
        if total_steps <= warmup_steps:
            raise ValueError("total_steps must exceed warmup_steps")
        self.lr, self.total, self.warmup, self.min_lr = lr, total_steps, warmup_steps, min_lr

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / (self.total - self.warmup))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * t))

    def config(self) -> dict:
        return {"name": "cosine", "lr": self.lr, "total_steps": self.total,
                "warmup_steps": self.warmup, "min_lr": self.min_lr}


class OneCycle:
    """Smith's one-cycle policy with cosine phases, as ``torch.optim.lr_scheduler.OneCycleLR``
    (three_phase=False): from max_lr/div_factor up to max_lr over pct_start of the steps,
    then down to max_lr/(div_factor*final_div_factor).

    Drive an optimizer with it by setting its ``lr`` before every step, for exactly
    ``total_steps`` steps (epochs * batches per epoch)::

        schedule = OneCycle(max_lr=0.01, total_steps=epochs * steps_per_epoch)
        for step in range(schedule.total):
            opt.lr = schedule(step)
            ...  # forward, backward
            opt.step(model.gradients())

    (It does not change momentum, unlike PyTorch's cycle_momentum.)
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> None:
        self.max_lr, self.total, self.pct_start = max_lr, total_steps, pct_start
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.initial = max_lr / div_factor
        self.final = self.initial / final_div_factor
        self.peak_step = float(pct_start * total_steps) - 1

    @staticmethod
    def _cos(start: float, end: float, t: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * t) + 1)

    def __call__(self, step: int) -> float:
        if step <= self.peak_step:
            return self._cos(self.initial, self.max_lr, step / self.peak_step)
        t = (step - self.peak_step) / (self.total - 1 - self.peak_step)
        return self._cos(self.max_lr, self.final, min(1.0, t))

    def config(self) -> dict:
        return {"name": "onecycle", "max_lr": self.max_lr, "total_steps": self.total,
                "pct_start": self.pct_start, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor}


class Restart:
    """``first`` for its ``first_steps`` steps, then ``second`` from its own step 0: a warm
    restart (Loshchilov & Hutter 2017), a second learning-rate cycle on the weights the
    first one trained. The optimizer's state is the caller's to reset at ``first_steps``."""

    def __init__(self, first, first_steps: int, second) -> None:
        self.first, self.first_steps, self.second = first, first_steps, second

    def __call__(self, step: int) -> float:
        if step < self.first_steps:
            return self.first(step)
        return self.second(step - self.first_steps)

    def config(self) -> dict:
        return {"name": "restart", "first": self.first.config(),
                "first_steps": self.first_steps, "second": self.second.config()}
