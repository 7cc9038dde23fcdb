"""2-D convolution (cross-correlation, as in every deep-learning framework) as im2col
over the whole batch and ONE matrix product; backward as two matrix products and col2im.

This is the reference a student reads first; ``minicnn.engine.conv`` computes the same
function faster (chunks, threads, reused memory, Winograd) and is tested against it.

Sizes: x (N, C, H, W), w (F, C, KH, KW), b (F,), out (N, F, OH, OW) with

    OH = (H + 2*padding - KH) // stride + 1,   OW = (W + 2*padding - KW) // stride + 1

``im2col`` (kernels/im2col.py) copies every KH x KW window of the zero-padded input into
a column: cols (C*KH*KW, N*OH*OW). With W2 = w.reshape(F, C*KH*KW), the convolution is

    out2 = W2 @ cols + b          (F, N*OH*OW), then reordered to (N, F, OH, OW)

The chain rule through that product, with dout2 = dL/dout2 (dout reordered alike):

    dW2   = dout2 @ cols.T        (each weight met every column it multiplied)
    db    = dout2 summed over its columns
    dcols = W2.T @ dout2, and dx = col2im(dcols): col2im is im2col's transpose, adding
            each column entry back to the input pixel it was copied from (a pixel in
            several windows collects all their gradients; padding's entries drop out).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.kernels.im2col import col2im_numpy, im2col_numpy, output_hw


class ConvCache(NamedTuple):
    x: np.ndarray     # (N, C, H, W) the input
    w: np.ndarray     # (F, C, KH, KW) the weights
    stride: int
    padding: int
    cols: np.ndarray  # (C*KH*KW, N*OH*OW) im2col of x


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1,
                   padding: int = 0, relu: bool = False,
                   training: bool = True) -> tuple[np.ndarray, ConvCache]:
    """Convolve a batch with F filters.

    Inputs: x (N, C, H, W); w (F, C, KH, KW); b (F,) or None (no bias); stride and
    padding (zeros on every side) in pixels; ``relu``: return max(out, 0) instead (a
    ReLU fused into the layer; its gradient is the caller's, see ``layers.Conv2D``);
    ``training``: False in eval mode, where the engine saves work (the reference computes
    the same either way).
    Returns: out (N, F, OH, OW) and the cache for ``conv2d_backward``.
    """
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if C != Cw:
        raise ValueError(f"input has {C} channels but the weights expect {Cw}")
    OH, OW = output_hw(H, W, KH, KW, stride, padding)
    cols = im2col_numpy(x, KH, KW, stride, padding)       # (C*KH*KW, N*OH*OW)
    out2 = w.reshape(F, -1) @ cols                          # (F, N*OH*OW)
    if b is not None:
        out2 += b.reshape(F, 1)
    out = np.ascontiguousarray(out2.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))
    if relu:
        np.maximum(out, 0, out=out)
    return out, ConvCache(x, w, stride, padding, cols)


def conv2d_backward(dout: np.ndarray, cache: ConvCache, need_dx: bool = True,
                    need_db: bool = True) -> tuple[np.ndarray | None, np.ndarray,
                                                   np.ndarray | None]:
    """Gradients of ``conv2d_forward`` (the derivation is in the module docstring).

    Inputs: dout (N, F, OH, OW), dL/dout; the forward's cache; ``need_dx=False`` skips
    the input gradient (a network's first layer needs none), ``need_db=False`` the bias's.
    Returns: dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None.
    """
    x, w, stride, padding, cols = cache
    F, _, KH, KW = w.shape
    dout2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*OH*OW), the columns' order
    dw = (dout2 @ cols.T).reshape(w.shape)
    db = dout2.sum(axis=1) if need_db else None
    dx = None
    if need_dx:
        dcols = w.reshape(F, -1).T @ dout2                 # (C*KH*KW, N*OH*OW)
        dx = col2im_numpy(dcols, x.shape, KH, KW, stride, padding)
    return dx, dw, db
