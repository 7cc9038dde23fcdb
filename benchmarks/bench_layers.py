"""Case "layers": Conv2D and MaxPool2D forward and backward, one row per distinct shape in
the training-step models (batch ``cfg.batch``), against ``torch.nn.functional``.

minicnn: ``engine.conv2d_forward`` / ``conv2d_backward`` (im2col + GEMM, chunked) and
``maxpool2d_forward`` / ``maxpool2d_backward`` (Numba kernels). PyTorch: ``F.conv2d`` and
``F.max_pool2d`` forward with autograd recording (as in training), and backward as
``torch.autograd.grad`` of that output (``retain_graph=True`` so it can be repeated). The
first layer of a model never needs its input gradient, so for it neither side computes dx.
Figure: median milliseconds per call; ratio = torch ms / minicnn ms.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from benchmarks.common import Config, Row, get_torch, measure, time_row

GROUP = "layers"


class ConvShape(NamedTuple):
    C: int
    H: int
    W: int
    F: int
    k: int
    stride: int
    pad: int
    bias: bool
    first: bool  # the model's first layer: no input gradient

    def label(self) -> str:
        s = f"{self.C}x{self.H}x{self.W}->{self.F} k{self.k}"
        if self.stride != 1:
            s += f" s{self.stride}"
        return s + f" p{self.pad}" + (" (no dx)" if self.first else "")


class PoolShape(NamedTuple):
    C: int
    H: int
    W: int
    k: int
    stride: int

    def label(self) -> str:
        return f"{self.C}x{self.H}x{self.W} k{self.k} s{self.stride}"


def model_shapes(names) -> tuple[list[ConvShape], list[PoolShape]]:
    """Distinct conv and max-pool shapes (per sample) of the named emotion models."""
    from emotion.models import build
    from minicnn.layers import Conv2D, MaxPool2D

    convs: list[ConvShape] = []
    pools: list[PoolShape] = []
    for name in names:
        shape = (1, 48, 48)
        for i, layer in enumerate(build(name, rng=0).layers):
            if isinstance(layer, Conv2D):
                s = ConvShape(*shape, layer.out_channels, layer.kernel_size, layer.stride,
                              layer.pad, layer.bias, i == 0)
                if s not in convs:
                    convs.append(s)
            elif isinstance(layer, MaxPool2D):
                p = PoolShape(*shape, layer.kernel_size, layer.stride)
                if p not in pools:
                    pools.append(p)
            shape = layer.output_shape(shape)
    return convs, pools


def conv_arrays(s: ConvShape, batch: int, seed: int = 0):
    """x (N, C, H, W), w (F, C, k, k), b (F,) or None, dout (N, F, OH, OW), float32."""
    from minicnn.kernels import output_hw

    rng = np.random.default_rng(seed)
    OH, OW = output_hw(s.H, s.W, s.k, s.k, s.stride, s.pad)
    x = rng.standard_normal((batch, s.C, s.H, s.W), dtype=np.float32)
    w = rng.standard_normal((s.F, s.C, s.k, s.k), dtype=np.float32) * 0.1
    b = rng.standard_normal(s.F, dtype=np.float32) if s.bias else None
    dout = rng.standard_normal((batch, s.F, OH, OW), dtype=np.float32)
    return x, w, b, dout


# minicnn conv timings are shared with the "gemm" case: (shape, batch, mode) -> (fwd, bwd)
_conv_times: dict[tuple, tuple[float, float]] = {}


def minicnn_conv_times(s: ConvShape, cfg: Config) -> tuple[float, float]:
    """Median seconds of minicnn's conv forward and backward for shape ``s``."""
    key = (s, cfg.batch, cfg.mode)
    if key not in _conv_times:
        from minicnn.engine import conv2d_backward, conv2d_forward

        x, w, b, dout = conv_arrays(s, cfg.batch)
        fwd = measure(lambda: conv2d_forward(x, w, b, s.stride, s.pad), cfg)
        _, cache = conv2d_forward(x, w, b, s.stride, s.pad)
        bwd = measure(lambda: conv2d_backward(dout, cache, need_dx=not s.first,
                                              need_db=b is not None), cfg)
        _conv_times[key] = (fwd, bwd)
    return _conv_times[key]


def torch_conv_times(s: ConvShape, cfg: Config) -> tuple[float, float]:
    torch = get_torch()
    conv2d = torch.nn.functional.conv2d
    x, w, b, dout = (None if a is None else torch.from_numpy(a)
                     for a in conv_arrays(s, cfg.batch))
    x.requires_grad_(not s.first)
    w.requires_grad_(True)
    if b is not None:
        b.requires_grad_(True)
    params = [t for t in (x, w, b) if t is not None and t.requires_grad]
    fwd = measure(lambda: conv2d(x, w, b, stride=s.stride, padding=s.pad), cfg)
    out = conv2d(x, w, b, stride=s.stride, padding=s.pad)
    bwd = measure(lambda: torch.autograd.grad(out, params, dout, retain_graph=True), cfg)
    return fwd, bwd


def pool_arrays(p: PoolShape, batch: int, seed: int = 0):
    from minicnn.kernels import output_hw

    rng = np.random.default_rng(seed)
    OH, OW = output_hw(p.H, p.W, p.k, p.k, p.stride, 0)
    x = rng.standard_normal((batch, p.C, p.H, p.W), dtype=np.float32)
    dout = rng.standard_normal((batch, p.C, OH, OW), dtype=np.float32)
    return x, dout


def minicnn_pool_times(p: PoolShape, cfg: Config) -> tuple[float, float]:
    from minicnn.engine import maxpool2d_backward, maxpool2d_forward

    x, dout = pool_arrays(p, cfg.batch)
    fwd = measure(lambda: maxpool2d_forward(x, p.k, p.stride), cfg)
    _, cache = maxpool2d_forward(x, p.k, p.stride)
    bwd = measure(lambda: maxpool2d_backward(dout, cache), cfg)
    return fwd, bwd


def torch_pool_times(p: PoolShape, cfg: Config) -> tuple[float, float]:
    torch = get_torch()
    max_pool2d = torch.nn.functional.max_pool2d
    x, dout = (torch.from_numpy(a) for a in pool_arrays(p, cfg.batch))
    x.requires_grad_(True)
    fwd = measure(lambda: max_pool2d(x, p.k, p.stride), cfg)
    out = max_pool2d(x, p.k, p.stride)
    bwd = measure(lambda: torch.autograd.grad(out, [x], dout, retain_graph=True), cfg)
    return fwd, bwd


def run(cfg: Config) -> list[Row]:
    has_torch = get_torch() is not None
    convs, pools = model_shapes(cfg.models)
    rows = []
    jobs = [("conv", s, minicnn_conv_times, torch_conv_times) for s in convs]
    jobs += [("maxpool", p, minicnn_pool_times, torch_pool_times) for p in pools]
    for kind, shape, ours_fn, theirs_fn in jobs:
        ours = ours_fn(shape, cfg)
        theirs = theirs_fn(shape, cfg) if has_torch else (None, None)
        for d, direction in enumerate(("fwd", "bwd")):
            rows.append(time_row(
                GROUP, f"{kind} {direction} {shape.label()}", ours[d] * 1e3,
                None if theirs[d] is None else theirs[d] * 1e3, "ms"))
    return rows
