"""Kernel dispatcher: one entry point per kernel, three interchangeable tiers.

    backend "naive"  loops that read like the maths (the reference; slow)
    backend "numpy"  vectorised NumPy on strided views
    backend "numba"  compiled, parallel loops (the default when Numba imports)

Pick a tier globally with ``set_backend`` or per call with ``backend=``. If Numba is not
installed the dispatcher warns once and falls back to NumPy.
"""

from __future__ import annotations

import os
import warnings

# Numba's OpenMP workers busy-wait after each parallel kernel by default. Between our
# kernels OpenBLAS runs its own threads for the GEMMs, and on a small machine the spinning
# OpenMP threads steal its cores (measured: 2.7x slower training steps on 2 cores). Passive
# waiting hands the cores back at once. Must be set before the OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from minicnn.kernels import im2col as _im  # noqa: E402
from minicnn.kernels import pool as _pool  # noqa: E402
from minicnn.kernels import winograd as _wg  # noqa: E402
from minicnn.kernels.im2col import conv_output_size, output_hw  # noqa: E402

try:
    import numba as _numba

    from minicnn.kernels import numba_kernels as _nb
except ImportError:  # pragma: no cover - exercised only without numba
    _nb = None

# A Numba kernel whose largest array is smaller than this runs on the calling thread alone.
# Waking the other threads of Numba's pool (they sleep between kernels: OMP_WAIT_POLICY,
# above) measured 40-80 us on 2 cores, longer than such a kernel's whole work: for one
# 48x48 face's im2col at 64x24x24 (1.3 MB), 107 us on 2 threads against 46 us on one;
# at 5-10 MB two threads win. One face through the default model calls about 20 kernels.
SERIAL_BYTES = 2 * 2**20


def _run(kernel, nbytes: int, *args):
    """kernel(*args), on one thread when ``nbytes`` (its largest array) < SERIAL_BYTES."""
    threads = _numba.get_num_threads()
    if nbytes >= SERIAL_BYTES or threads == 1:
        return kernel(*args)
    _numba.set_num_threads(1)  # per calling thread, so other threads are not affected
    try:
        return kernel(*args)
    finally:
        _numba.set_num_threads(threads)

BACKENDS = ("naive", "numpy", "numba")
_backend = "numba" if _nb is not None else "numpy"
_warned = False

__all__ = [
    "BACKENDS", "channel_affine2", "channel_moments", "channel_normalize", "channel_sums",
    "col2im", "conv_output_size",
    "get_backend", "im2col", "im2col_into",
    "maxpool_backward", "maxpool_forward", "numba_available", "output_hw", "regroup_add_bias",
    "relu_backward", "relu_forward",
    "set_backend", "winograd_grad_output", "winograd_input", "winograd_output",
    "winograd_weight_grad", "winograd_weights",
]


def numba_available() -> bool:
    return _nb is not None


def set_backend(name: str) -> None:
    """Select the kernel tier used when a call passes no ``backend``."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {BACKENDS}")
    _backend = name


def get_backend() -> str:
    return _backend


def _resolve(backend: str | None) -> str:
    global _warned
    name = _backend if backend is None else backend
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {BACKENDS}")
    if name == "numba" and _nb is None:
        if not _warned:
            warnings.warn("numba is not installed; minicnn kernels fall back to NumPy",
                          RuntimeWarning, stacklevel=3)
            _warned = True
        return "numpy"
    return name


def im2col(x: np.ndarray, KH: int, KW: int, stride: int = 1, padding: int = 0,
           backend: str | None = None) -> np.ndarray:
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW). Layout documented in kernels/im2col.py."""
    name = _resolve(backend)
    if name == "naive":
        return _im.im2col_naive(x, KH, KW, stride, padding)
    if name == "numpy":
        return _im.im2col_numpy(x, KH, KW, stride, padding)
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    return _run(_nb.im2col_into, cols.nbytes, np.ascontiguousarray(x), KH, KW, stride, padding,
                OH, OW, cols)


def im2col_into(x: np.ndarray, KH: int, KW: int, stride: int, padding: int,
                out: np.ndarray, backend: str | None = None) -> np.ndarray:
    """Like ``im2col`` but writes into a preallocated ``out`` (reused across steps)."""
    name = _resolve(backend)
    if name != "numba":
        out[...] = im2col(x, KH, KW, stride, padding, backend=name)
        return out
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    return _run(_nb.im2col_into, out.nbytes, np.ascontiguousarray(x), KH, KW, stride, padding,
                OH, OW, out)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], KH: int, KW: int,
           stride: int = 1, padding: int = 0, backend: str | None = None,
           out: np.ndarray | None = None) -> np.ndarray:
    """cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows."""
    name = _resolve(backend)
    if name == "naive":
        dx = _im.col2im_naive(cols, x_shape, KH, KW, stride, padding)
    elif name == "numpy":
        dx = _im.col2im_numpy(cols, x_shape, KH, KW, stride, padding)
    else:
        N, C, H, W = x_shape
        OH, OW = output_hw(H, W, KH, KW, stride, padding)
        target = out if out is not None else np.empty(x_shape, dtype=cols.dtype)
        return _run(_nb.col2im_into, cols.nbytes, np.ascontiguousarray(cols), KH, KW, stride,
                    padding, OH, OW, target)
    if out is not None:
        out[...] = dx
        return out
    return dx


def regroup_add_bias(y: np.ndarray, bias: np.ndarray | None, out: np.ndarray,
                     backend: str | None = None, relu: bool = False) -> np.ndarray:
    """out (n, F, P) = y (F, n*P) with its columns regrouped by image, plus bias (F,) (None:
    no bias), then max(., 0) if ``relu``. This is the step from a conv chunk's GEMM result to
    NCHW."""
    n, F, P = out.shape
    if _resolve(backend) == "numba" and y.flags.c_contiguous and out.flags.c_contiguous:
        b = np.zeros(F, dtype=out.dtype) if bias is None else bias.astype(out.dtype, copy=False)
        return _run(_nb.regroup_add_bias, out.nbytes, y, b, out, relu)
    yt = y.reshape(F, n, P).transpose(1, 0, 2)
    if bias is None:
        np.copyto(out, yt)
    else:
        np.add(yt, bias.reshape(1, F, 1), out=out)
    if relu:
        np.maximum(out, 0, out=out)
    return out


def maxpool_forward(x: np.ndarray, KH: int, KW: int, stride: int,
                    backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (out (N, C, OH, OW), argmax int32 (N, C, OH, OW))."""
    name = _resolve(backend)
    if name == "naive":
        return _pool.maxpool_forward_naive(x, KH, KW, stride)
    if name == "numpy":
        return _pool.maxpool_forward_numpy(x, KH, KW, stride)
    N, C, H, W = x.shape
    OH, OW = output_hw(H, W, KH, KW, stride, 0)
    return _run(_nb.maxpool_forward, x.nbytes, np.ascontiguousarray(x), KH, KW, stride, OH, OW)


def maxpool_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int],
                     backend: str | None = None) -> np.ndarray:
    """Route dout (N, C, OH, OW) to the argmax positions: dx (N, C, H, W)."""
    name = _resolve(backend)
    if name == "naive":
        return _pool.maxpool_backward_naive(dout, argmax, x_shape)
    if name == "numpy":
        return _pool.maxpool_backward_numpy(dout, argmax, x_shape)
    dx_bytes = int(np.prod(x_shape)) * dout.itemsize
    return _run(_nb.maxpool_backward, dx_bytes, np.ascontiguousarray(dout), argmax,
                x_shape[2], x_shape[3])


def relu_forward(x: np.ndarray, backend: str | None = None) -> np.ndarray:
    """max(x, 0), a new array of x's shape and dtype (NaN stays NaN)."""
    if _resolve(backend) == "numba" and x.flags.c_contiguous:
        return _run(_nb.relu_forward, x.nbytes, x)
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, out: np.ndarray, backend: str | None = None) -> np.ndarray:
    """dx = dout where the ReLU output is positive, else 0 (same shape and dtype as dout)."""
    if _resolve(backend) == "numba" and dout.flags.c_contiguous and out.flags.c_contiguous:
        return _run(_nb.relu_backward, dout.nbytes, dout, out)
    return dout * (out > 0)


def channel_moments(x: np.ndarray, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (mean (C,), biased variance (C,)) over N, H, W, in x's dtype."""
    if _resolve(backend) == "numba":
        mean, var = _run(_nb.channel_moments, x.nbytes, np.ascontiguousarray(x))
        return mean.astype(x.dtype), var.astype(x.dtype)
    mean = x.mean(axis=(0, 2, 3))
    xc = x - mean.reshape(1, -1, 1, 1)
    return mean, np.einsum("nchw,nchw->c", xc, xc) / (x.size // x.shape[1])


def channel_sums(dout: np.ndarray, xhat: np.ndarray, relu_out: np.ndarray | None = None,
                 backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """dout, xhat (N, C, H, W) -> (sum(g), sum(g * xhat)), each (C,) over N, H, W, where
    g = dout, or dout where ``relu_out`` > 0 (a ReLU fused after batch norm: ``relu_out``
    is its output)."""
    if _resolve(backend) == "numba":
        gate = xhat if relu_out is None else np.ascontiguousarray(relu_out)
        s, sx = _run(_nb.channel_sums, dout.nbytes, np.ascontiguousarray(dout),
                     np.ascontiguousarray(xhat), gate, relu_out is not None)
        return s.astype(dout.dtype), sx.astype(dout.dtype)
    if relu_out is not None:
        dout = dout * (relu_out > 0)
    return dout.sum(axis=(0, 2, 3)), np.einsum("nchw,nchw->c", dout, xhat)


def channel_normalize(x: np.ndarray, center: np.ndarray, scale: np.ndarray, gamma: np.ndarray,
                      beta: np.ndarray, relu: bool = False,
                      backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm's forward maps for x (N, C, H, W) and per-channel (C,) factors:
    xhat = (x - center) * scale and out = xhat * gamma + beta (``relu``: max(that, 0)),
    returned as (xhat, out)."""
    center, scale, gamma, beta = (v.astype(x.dtype, copy=False)
                                  for v in (center, scale, gamma, beta))
    if _resolve(backend) == "numba":
        return _run(_nb.channel_normalize, x.nbytes, np.ascontiguousarray(x), center, scale,
                    gamma, beta, relu)
    xhat = x - center.reshape(1, -1, 1, 1)
    xhat *= scale.reshape(1, -1, 1, 1)
    out = xhat * gamma.reshape(1, -1, 1, 1)
    out += beta.reshape(1, -1, 1, 1)
    if relu:
        np.maximum(out, 0, out=out)
    return xhat, out


def channel_affine2(x: np.ndarray, x_scale: np.ndarray, y: np.ndarray, y_scale: np.ndarray,
                    shift: np.ndarray, relu_out: np.ndarray | None = None,
                    backend: str | None = None) -> np.ndarray:
    """x * x_scale + y * y_scale + shift for x, y (N, C, H, W) and per-channel (C,) factors;
    with ``relu_out``, x counts only where relu_out > 0 (as in ``channel_sums``)."""
    x_scale, y_scale, shift = (v.astype(x.dtype, copy=False) for v in (x_scale, y_scale, shift))
    if _resolve(backend) == "numba":
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        gate = y if relu_out is None else np.ascontiguousarray(relu_out)
        return _run(_nb.channel_affine2, x.nbytes, x, x_scale, y, y_scale, shift, gate,
                    relu_out is not None)
    if relu_out is not None:
        x = x * (relu_out > 0)
    out = x * x_scale.reshape(1, -1, 1, 1)
    out += y * y_scale.reshape(1, -1, 1, 1)
    out += shift.reshape(1, -1, 1, 1)
    return out


def winograd_weights(w: np.ndarray, m: int = 2, backend: str | None = None) -> np.ndarray:
    """w (F, C, 3, 3) -> U (alpha^2, C, F): the Winograd F(m x m, 3x3) transform of every
    filter (``kernels/winograd.py``). The naive tier is NumPy's."""
    if _resolve(backend) == "numba":
        return _run(_nb.winograd_weights, w.nbytes * (m + 2) ** 2 // 9, w,
                    _wg.filter_transform(m))
    return _wg.winograd_weights(w, m)


def winograd_weight_grad(dU: np.ndarray, m: int = 2, backend: str | None = None) -> np.ndarray:
    """dU (alpha^2, F, C), or (parts, alpha^2, F, C) to be summed over the parts ->
    dw (F, C, 3, 3): the weight gradient from its Winograd transform."""
    parts = dU if dU.ndim == 4 else dU[None]
    if _resolve(backend) == "numba":
        return _run(_nb.winograd_weight_grad, parts.nbytes, np.ascontiguousarray(parts),
                    _wg.filter_transform(m))
    return _wg.winograd_weight_grad(parts.sum(axis=0), m)


def winograd_input(x: np.ndarray, out: np.ndarray, padding: int = 1, m: int = 2,
                   backend: str | None = None) -> np.ndarray:
    """x (n, C, H, W) -> out (alpha^2, n*TH*TW, C): Winograd F(m x m, 3x3)'s input
    transform (m = 2, 3 or 4, alpha = m + 2) of every tile of x zero-padded by ``padding``
    (0, 1 or 2), the tiles covering the 3x3 convolution's output,
    (H + 2*padding - 2) x (W + 2*padding - 2) (``kernels/winograd.py``). The naive tier is
    NumPy's."""
    if _resolve(backend) == "numba" and out.flags.c_contiguous:
        return _nb.winograd_input(np.ascontiguousarray(x), out, padding, m)
    out[...] = _wg.winograd_input_numpy(x, padding, m)
    return out


def winograd_output(M: np.ndarray, bias: np.ndarray | None, out: np.ndarray,
                    relu: bool = False, m: int = 2, backend: str | None = None) -> np.ndarray:
    """M (alpha^2, n*TH*TW, F) -> out (n, F, H, W): the output transform of every tile,
    plus bias (F,) (None: none), then max(., 0) if ``relu``."""
    if _resolve(backend) == "numba" and M.flags.c_contiguous and out.flags.c_contiguous:
        F = out.shape[1]
        b = np.zeros(F, dtype=out.dtype) if bias is None else bias.astype(out.dtype, copy=False)
        return _nb.winograd_output(M, b, relu, out, m)
    return _wg.winograd_output_numpy(M, bias, relu, out, m)


def winograd_grad_output(dout: np.ndarray, out: np.ndarray, m: int = 2,
                         backend: str | None = None) -> np.ndarray:
    """dout (n, F, H, W) -> out (alpha^2, n*TH*TW, F): the transform of dL/dout that the
    Winograd weight gradient needs (``kernels/winograd.py``)."""
    if _resolve(backend) == "numba" and out.flags.c_contiguous:
        return _nb.winograd_grad_output(np.ascontiguousarray(dout), out, m)
    out[...] = _wg.winograd_grad_output_numpy(dout, m)
    return out
