"""Case "kernels": the three tiers (naive loops, NumPy, Numba) of im2col, col2im and
max-pool forward/backward, as time and effective memory bandwidth.

Effective bandwidth = (bytes the kernel must read + bytes it must write) / time, counting
each input array read once and each output written once:

    im2col      read x (N, C, H, W)                  write cols (C*KH*KW, N*OH*OW)
    col2im      read cols                            write dx (N, C, H, W)
    maxpool fwd read x                               write out + argmax (int32)
    maxpool bwd read dout + argmax                   write dx

The baseline is ``np.copyto`` of the same total traffic (B/2 bytes copied = B/2 read +
B/2 written), timed in the same run: it is what "as fast as memory allows" means on this
machine. Ratio = kernel GB/s / copy GB/s (target for Numba im2col and col2im: >= 0.5).

The naive tier is Python loops, so it runs only on a TINY shape (labelled "tiny"), where
the other tiers and the copy are timed too for a like-for-like comparison. The Numba
im2col/col2im write into a preallocated output, as ``engine.conv`` uses them.

The bandwidth target applies to the real-size rows only. A tiny call moves 23 kB, which a
copy does in about a microsecond; any call that starts a parallel Numba region takes
longer than that just to wake its threads, so the tiny rows measure call overhead, not
bandwidth, and carry no target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np

from benchmarks.common import Config, Row, measure, rate_row

GROUP = "kernels"
TARGET = 0.5  # Numba im2col/col2im: at least half the copy bandwidth


def _shapes(cfg: Config) -> dict[str, tuple]:
    """(N, C, H, W) per kernel family and size class."""
    if cfg.smoke:
        return {"conv": (1, 8, 16, 16), "pool": (2, 8, 16, 16),
                "conv_tiny": (1, 2, 6, 6), "pool_tiny": (1, 2, 6, 6)}
    # conv: layer 2 of the default model on 8 images (a 21 MB column matrix: out of cache)
    # pool: the first max-pool of the default model at the training batch
    return {"conv": (8, 32, 48, 48), "pool": (cfg.batch, 32, 48, 48),
            "conv_tiny": (1, 4, 12, 12), "pool_tiny": (1, 4, 12, 12)}


def _auto_measure(fn: Callable[[], object], cfg: Config) -> float:
    """``measure`` with enough calls per repeat (>= ~20 ms) to time microsecond kernels."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = 1 if cfg.smoke else max(1, int(0.02 / once))
    return measure(fn, cfg, number=number)


def _copy_seconds(nbytes: int, cfg: Config) -> float:
    """Seconds for np.copyto moving ``nbytes`` of traffic (nbytes/2 read, nbytes/2 written)."""
    n = max(1, nbytes // 2 // 4)
    src = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    dst = np.empty_like(src)
    return _auto_measure(lambda: np.copyto(dst, src), cfg)


def _cases(shape_conv, shape_pool, tiers):
    """(name, tier, bytes, closure) for every kernel and tier on the given shapes."""
    from minicnn import kernels
    from minicnn.kernels import output_hw

    rng = np.random.default_rng(0)
    k, stride, pad = 3, 1, 1
    N, C, H, W = shape_conv
    OH, OW = output_hw(H, W, k, k, stride, pad)
    x = rng.standard_normal(shape_conv, dtype=np.float32)
    cols = rng.standard_normal((C * k * k, N * OH * OW), dtype=np.float32)
    cols_out = np.empty_like(cols)
    dx_out = np.empty_like(x)
    im_bytes = x.nbytes + cols.nbytes

    xp = rng.standard_normal(shape_pool, dtype=np.float32)
    out, argmax = kernels.maxpool_forward(xp, 2, 2, 2, tier="numpy")
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    pool_fwd_bytes = xp.nbytes + out.nbytes + argmax.nbytes
    pool_bwd_bytes = dout.nbytes + argmax.nbytes + xp.nbytes

    def im2col(tier):
        if tier == "numba":  # into a preallocated buffer, as the engine uses it
            return kernels.im2col_into(x, k, k, stride, pad, cols_out, tier=tier)
        return kernels.im2col(x, k, k, stride, pad, tier=tier)

    def col2im(tier):
        out = dx_out if tier == "numba" else None
        return kernels.col2im(cols, shape_conv, k, k, stride, pad, tier=tier, out=out)

    def pool_fwd(tier):
        return kernels.maxpool_forward(xp, 2, 2, 2, tier=tier)

    def pool_bwd(tier):
        return kernels.maxpool_backward(dout, argmax, shape_pool, tier=tier)

    kinds = (("im2col", im2col, im_bytes), ("col2im", col2im, im_bytes),
             ("maxpool fwd", pool_fwd, pool_fwd_bytes), ("maxpool bwd", pool_bwd, pool_bwd_bytes))
    jobs = [(name, tier, nbytes, partial(fn, tier)) for tier in tiers
            for name, fn, nbytes in kinds]
    return jobs


def _label(name: str, shape_conv, shape_pool, tiny: bool) -> str:
    shape = shape_pool if name.startswith("maxpool") else shape_conv
    window = " k2 s2" if name.startswith("maxpool") else " k3 p1"
    size = "x".join(map(str, shape)) + window
    return f"[tiny {size}]" if tiny else size


def run(cfg: Config) -> list[Row]:
    from minicnn import kernels

    shapes = _shapes(cfg)
    fast = ["numpy", "numba"] if kernels.numba_available() else ["numpy"]
    rows = []
    for tiny, tiers in ((False, fast), (True, ["naive", *fast])):
        sc = shapes["conv_tiny" if tiny else "conv"]
        sp = shapes["pool_tiny" if tiny else "pool"]
        copy_cache: dict[int, float] = {}
        for name, tier, nbytes, fn in _cases(sc, sp, tiers):
            t = _auto_measure(fn, cfg)
            if nbytes not in copy_cache:
                copy_cache[nbytes] = _copy_seconds(nbytes, cfg)
            gbs, copy_gbs = nbytes / t / 1e9, nbytes / copy_cache[nbytes] / 1e9
            target = (TARGET if tier == "numba" and name in ("im2col", "col2im") and not tiny
                      else None)
            rows.append(rate_row(GROUP, f"{name} {tier} {_label(name, sc, sp, tiny)}", gbs,
                                 copy_gbs, "GB/s", target,
                                 note=f"{t * 1e3:.3g} ms, {nbytes / 1e6:.3g} MB moved"))
    return rows
