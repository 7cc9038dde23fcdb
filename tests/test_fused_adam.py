"""The fast backend's Adam update (``kernels/optim.py``, one compiled pass) against
``optim.Adam``'s textbook NumPy passes (the reference backend): the same parameters and
moments, bit for bit in float32, over several steps, for Adam and AdamW, with and without
weight decay."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from minicnn.kernels import numba_available
from minicnn.kernels.optim import adam_update
from minicnn.optim import Adam, AdamW


def run(backend, cls, dtype, wd, steps=4):
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((7, 5, 3)).astype(dtype),
              "b": rng.standard_normal(600_000).astype(dtype)}  # above SERIAL_BYTES: threads
    opt = cls(params, lr=3e-2, weight_decay=wd, no_decay=["b"])
    with minicnn.backend(backend):
        for _ in range(steps):
            opt.step({k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()})
    return params, opt.state


@pytest.mark.skipif(not numba_available(), reason="needs numba")
@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adam_equals_the_textbook_update(cls, wd, dtype):
    fast, fast_state = run("fast", cls, dtype, wd)
    ref, ref_state = run("reference", cls, dtype, wd)
    for k in ref:
        np.testing.assert_array_equal(fast[k], ref[k])
        for slot in ("m", "v"):
            np.testing.assert_array_equal(fast_state[k][slot], ref_state[k][slot])


def test_the_fused_update_declines_what_it_cannot_run_in_one_pass():
    p = np.zeros((4, 4), np.float32)
    args = (1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001)
    assert not adam_update(p, p.T, p.copy(), p.copy(), *args)  # a transposed gradient
    assert not adam_update(p, p.astype(np.float64), p.copy(), p.copy(), *args)
    assert not adam_update(p, p, p.copy(), p.copy(), *args, tier="numpy")
    if numba_available():  # and runs what it can
        assert adam_update(p, p.copy(), p.copy(), p.copy(), *args, tier="numba")
