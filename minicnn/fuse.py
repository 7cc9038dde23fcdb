"""Inference-time rewrites of a trained model that give the same outputs with less work.

``fold_batchnorm``: in eval mode a batch norm after a convolution is a fixed per-channel
affine map, so it can be folded into the convolution's weights and bias. For output
channel f, with s_f = gamma_f / sqrt(running_var_f + eps):

    BN(conv(x))_f = s_f * (W_f * x + b_f - running_mean_f) + beta_f
                  = (s_f * W_f) * x + (s_f * (b_f - running_mean_f) + beta_f)

so W'_f = s_f * W_f and b'_f = s_f * (b_f - running_mean_f) + beta_f (b_f = 0 for a conv
without bias). The folded network skips two passes over every batch-normalised feature map.
It is for inference only: training needs the batch statistics that folding removes.

A ReLU right after the convolution or after its batch norm, as a layer or as the batch
norm's own ``activation="relu"``, is fused into it as well
(``Conv2D(activation="relu")``): the convolution applies it in the same pass that adds
the bias, which skips one more pass over the map (what that saves is measured in
benchmarks/README.md, "Performance chapter").
"""

from __future__ import annotations

import numpy as np

from minicnn.layers import BatchNorm2D, Conv2D, ReLU
from minicnn.model import Sequential


def fold_batchnorm(model: Sequential, relu: bool = True) -> Sequential:
    """A new model, in eval mode, with every BatchNorm2D that directly follows a Conv2D
    folded into it, and (``relu=True``) every ReLU layer that directly follows either fused
    into the Conv2D (see the module docstring). A batch norm's own fused ReLU
    (``BatchNorm2D(activation="relu")``) always moves into the Conv2D with it. Other layers
    are copied unchanged; the original model is not modified. Its outputs equal
    ``model.eval()``'s up to float rounding."""
    layers, i = [], 0
    src = model.layers
    while i < len(src):
        layer = src[i]
        nxt = src[i + 1] if i + 1 < len(src) else None
        if isinstance(layer, Conv2D) and layer.activation is None and (
                isinstance(nxt, BatchNorm2D) or (relu and isinstance(nxt, ReLU))):
            W, b = layer.params["W"], layer.params.get("b")
            bn_relu = False
            if isinstance(nxt, BatchNorm2D):
                bn_relu = nxt.activation == "relu"
                scale = nxt.params["gamma"].astype(np.float64) / np.sqrt(
                    nxt.buffers["running_var"].astype(np.float64) + nxt.eps)
                bias = 0.0 if b is None else b.astype(np.float64)
                W = (W * scale.reshape(-1, 1, 1, 1)).astype(W.dtype)
                b = (scale * (bias - nxt.buffers["running_mean"])
                     + nxt.params["beta"]).astype(W.dtype)
                i += 1
            relu_layer = (not bn_relu and relu and i + 1 < len(src)
                          and isinstance(src[i + 1], ReLU))
            conv = Conv2D(**dict(layer.config(), bias=b is not None,
                                 activation="relu" if bn_relu or relu_layer else None))
            conv.params["W"] = W.copy()
            if b is not None:
                conv.params["b"] = b.copy()
            conv._zero_grads()
            layers.append(conv)
            i += 2 if relu_layer else 1
            continue
        copy = type(layer)(**layer.config())
        for d_src, d_dst in ((layer.params, copy.params), (layer.buffers, copy.buffers)):
            for k, v in d_src.items():
                d_dst[k] = v.copy()
        copy._zero_grads()
        layers.append(copy)
        i += 1
    state = [(dict(layer.params), dict(layer.buffers)) for layer in layers]
    folded = Sequential(layers, rng=0, metadata=model.metadata)
    # Sequential (re)initialises every layer's parameters; put the folded and copied back.
    for layer, (params, buffers) in zip(folded.layers, state):
        layer.params, layer.buffers = params, buffers
        layer._zero_grads()
    return folded.eval()
