"""An identical ``torch.nn.Sequential`` for a minicnn ``Sequential``, built from its spec.

    minicnn            torch.nn
    Conv2D             Conv2d (padding "same" -> (kernel_size - 1) // 2)
    BatchNorm2D        BatchNorm2d (same momentum and eps)
    activation="relu"  (on a Conv2D or BatchNorm2D) + ReLU(inplace=True)
    ReLU               ReLU
    MaxPool2D          MaxPool2d
    Dropout            Dropout
    Flatten            Flatten
    Dense              Linear (both store W as (out_features, in_features))
    GlobalAvgPool2D    AdaptiveAvgPool2d(1) + Flatten

Both frameworks use NCHW and PyTorch's weight layouts, so weights copy across unchanged;
``copy_weights=True`` makes the two models compute the same function (checked in
tests/test_benchmarks_smoke.py), which keeps the comparison honest.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import get_torch


def _conv_padding(config: dict) -> int:
    padding = config["padding"]
    return (config["kernel_size"] - 1) // 2 if padding == "same" else int(padding)


def torch_sequential(model, copy_weights: bool = True, dtype: str = "float32"):
    """``torch.nn.Sequential`` with the same layers (and weights) as a minicnn model."""
    torch = get_torch()
    if torch is None:
        raise ImportError("PyTorch is not installed")
    nn = torch.nn
    modules: list = []
    # index of the minicnn layer -> the torch module holding its parameters
    owner: dict[int, object] = {}
    for i, entry in enumerate(model.spec()):
        kind, cfg = entry["type"], entry["config"]
        if kind == "Conv2D":
            m = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"],
                          stride=cfg["stride"], padding=_conv_padding(cfg), bias=cfg["bias"])
        elif kind == "BatchNorm2D":
            m = nn.BatchNorm2d(cfg["num_features"], eps=cfg["eps"], momentum=cfg["momentum"])
        elif kind == "ReLU":
            m = nn.ReLU()
        elif kind == "MaxPool2D":
            m = nn.MaxPool2d(cfg["kernel_size"], cfg["stride"])
        elif kind == "Dropout":
            m = nn.Dropout(cfg["p"])
        elif kind == "Flatten":
            m = nn.Flatten()
        elif kind == "Dense":
            m = nn.Linear(cfg["in_features"], cfg["out_features"])
        elif kind == "GlobalAvgPool2D":
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            continue
        else:
            raise ValueError(f"no torch equivalent for minicnn layer {kind!r}")
        modules.append(m)
        owner[i] = m
        if cfg.get("activation") == "relu":
            # minicnn's fused ReLU: torch's idiomatic equivalent, an in-place ReLU (it saves
            # torch a pass's allocation and a map of memory, as the fusion does for minicnn)
            modules.append(nn.ReLU(inplace=True))
    net = nn.Sequential(*modules).to(getattr(torch, dtype))
    if copy_weights:
        _copy_weights(model, owner, torch)
    net.train(model.training)
    return net


def _copy_weights(model, owner: dict, torch) -> None:
    names = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
             "running_mean": "running_mean", "running_var": "running_var"}
    with torch.no_grad():
        for i, m in owner.items():
            layer = model.layers[i]
            for key, arr in {**layer.params, **layer.buffers}.items():
                target = getattr(m, names[key])
                target.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(target.dtype))
