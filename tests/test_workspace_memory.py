"""``engine.workspace.keep_freed_memory``: glibc keeps a training step's freed activations
for the next step instead of returning them to the system, so a step does not fault in
fresh pages (simpleconvnet at batch 100: about 3500-4000 page faults a step without it)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

STEPS = """
import resource, numpy as np, minicnn
from minicnn.engine import workspace
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.optim import Adam
model = minicnn.Sequential([Conv2D(1, 30, 5), ReLU(), MaxPool2D(2), Flatten(),
                            Dense(30 * 12 * 12, 100), ReLU(), Dense(100, 10)], rng=0)
x = np.random.default_rng(0).standard_normal((100, 1, 28, 28)).astype(np.float32)
y = np.arange(100) % 10
loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters())
def step():
    loss_fn(model.forward(x), y)
    model.backward(loss_fn.backward(), need_input_grad=False)
    opt.step(model.gradients())
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(workspace.KEPT_FREED_MEMORY, (after - before) / 4)
"""


def faults_per_step(**env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", STEPS], env={**environ, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_training_steps_reuse_freed_memory_and_the_policy_can_be_declined():
    kept, faults = faults_per_step(MINICNN_KEEP_FREED_MEMORY="1")
    assert kept and faults < 1000, faults
    declined, _ = faults_per_step(MINICNN_KEEP_FREED_MEMORY="0")
    assert not declined
