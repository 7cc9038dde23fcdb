"""A minicnn ``Sequential`` as a ``torch.nn.Sequential`` and back, state dicts included.

    from minicnn.interop.torch import from_torch, to_torch
    net = to_torch(model)               # same layers, same weights and running statistics
    ...train net with PyTorch (many GPUs, DistributedDataParallel, ...)...
    model = from_torch(net)             # back, to study with model.record()

    minicnn                      torch.nn
    Conv2D                       Conv2d (padding "valid", and "same" at stride 1, by name)
    BatchNorm2D                  BatchNorm2d (same momentum and eps)
    activation="relu"            (on a Conv2D or BatchNorm2D) + ReLU(inplace=True)
    ReLU                         ReLU()
    MaxPool2D                    MaxPool2d
    Dropout                      Dropout
    Flatten                      Flatten
    Dense                        Linear (both store W as (out_features, in_features))
    GlobalAvgPool2D              AdaptiveAvgPool2d(1) + Flatten

Both frameworks use NCHW and PyTorch's weight shapes, so arrays copy across unchanged and a
round trip gives back the same bits. ``from_torch`` reads the table backwards: an in-place
ReLU right after a Conv2d or BatchNorm2d becomes that layer's fused ``activation="relu"``
(the same function, one pass fewer), any other ReLU a ``ReLU`` layer, so
``from_torch(to_torch(model)).spec() == model.spec()`` (except "same" padding at a stride
above 1, which torch lacks: it comes back as the equal integer padding).

torch is imported when a function here is called, never by ``import minicnn``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minicnn.layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
)
from minicnn.model import Sequential

# minicnn array name -> torch attribute name, per layer type
_TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
                "running_mean": "running_mean", "running_var": "running_var"}


def import_torch():
    """The ``torch`` module, or ImportError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError('PyTorch interop needs torch: pip install -e ".[compare]" '
                          "(or pip install torch)") from None
    return torch


def _modules_for(layer, nn) -> list:
    """The torch modules computing one minicnn layer; the first holds its arrays."""
    if isinstance(layer, Conv2D):
        # torch names "valid" too, and "same" at stride 1 only; otherwise the number
        padding = (layer.padding if layer.padding == "valid"
                   or (layer.padding == "same" and layer.stride == 1) else layer.pad)
        mods = [nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, padding=padding, bias=layer.bias)]
    elif isinstance(layer, BatchNorm2D):
        mods = [nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)]
    elif isinstance(layer, ReLU):
        mods = [nn.ReLU()]
    elif isinstance(layer, MaxPool2D):
        mods = [nn.MaxPool2d(layer.kernel_size, layer.stride)]
    elif isinstance(layer, Dropout):
        mods = [nn.Dropout(layer.p)]
    elif isinstance(layer, Flatten):
        mods = [nn.Flatten()]
    elif isinstance(layer, Dense):
        mods = [nn.Linear(layer.in_features, layer.out_features)]
    elif isinstance(layer, GlobalAvgPool2D):
        mods = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    else:
        raise ValueError(f"no torch equivalent for minicnn layer {type(layer).__name__}")
    if getattr(layer, "activation", None) == "relu":
        mods.append(nn.ReLU(inplace=True))  # marks the fused ReLU for from_torch
    return mods


def torch_index(model: Sequential) -> dict[int, int]:
    """minicnn layer index -> index of the ``to_torch(model)`` module holding its arrays
    (for the layers that have arrays)."""
    index, j = {}, 0
    for i, layer in enumerate(model.layers):
        if layer.params or layer.buffers:
            index[i] = j
        j += 1 + (isinstance(layer, GlobalAvgPool2D)) + (
            getattr(layer, "activation", None) == "relu")
    return index


def _dtype_of(arrays, default=np.float32) -> np.dtype:
    dtypes = {np.dtype(a.dtype) for a in arrays}
    return dtypes.pop() if len(dtypes) == 1 else np.dtype(default)


def to_torch(model: Sequential, dtype=None):
    """A ``torch.nn.Sequential`` computing the same function as ``model``, with its weights
    and batch-norm running statistics, in the same train/eval mode and (by default) the
    same float dtype. The two models share no memory."""
    torch = import_torch()
    nn = torch.nn
    modules = [m for layer in model.layers for m in _modules_for(layer, nn)]
    np_dtype = np.dtype(dtype) if dtype is not None else _dtype_of(model.parameters().values())
    net = nn.Sequential(*modules).to(getattr(torch, np_dtype.name))
    net.load_state_dict(torch_state_dict(model, dtype=np_dtype))
    return net.train(model.training)


def torch_state_dict(model: Sequential, dtype=None) -> OrderedDict:
    """The ``state_dict`` that ``to_torch(model)`` has: "<module index>.weight", ".bias",
    ".running_mean", ".running_var" and ".num_batches_tracked" (0: minicnn does not count
    batches; torch uses the count only when momentum is None, which minicnn lacks)."""
    torch = import_torch()
    state = OrderedDict()
    for i, j in torch_index(model).items():
        layer = model.layers[i]
        for key, arr in {**layer.params, **layer.buffers}.items():
            a = np.array(arr, dtype=dtype if dtype is not None else arr.dtype, copy=True)
            state[f"{j}.{_TORCH_NAMES[key]}"] = torch.from_numpy(a)
        if isinstance(layer, BatchNorm2D):
            state[f"{j}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return state


def load_torch_state_dict(model: Sequential, state_dict) -> None:
    """Copy a ``to_torch(model)``-shaped state dict (from a net trained with PyTorch, a
    checkpoint, a DistributedDataParallel net's ``module``) into the model's LIVE arrays, in
    place (an optimizer built earlier stays linked), in the model's dtype. Raises
    ValueError naming the key for a missing, unexpected or misshapen entry."""
    import_torch()
    want: dict[str, np.ndarray] = {}
    for i, j in torch_index(model).items():
        layer = model.layers[i]
        for key, arr in {**layer.params, **layer.buffers}.items():
            want[f"{j}.{_TORCH_NAMES[key]}"] = arr
    keys = {k.removeprefix("module.") for k in state_dict if not k.endswith(
        "num_batches_tracked")}
    missing, extra = sorted(set(want) - keys), sorted(keys - set(want))
    if missing or extra:
        raise ValueError(f"the state dict does not match the model: missing {missing}, "
                         f"unexpected {extra}")
    for name, value in state_dict.items():
        name = name.removeprefix("module.")
        if name not in want:
            continue
        arr = want[name]
        value = value.detach().cpu().numpy()
        if value.shape != arr.shape:
            raise ValueError(f"state dict entry {name!r} has shape {value.shape}, the model "
                             f"needs {arr.shape}")
        arr[...] = value


def from_torch(net) -> Sequential:
    """A minicnn ``Sequential`` from a ``torch.nn.Sequential`` built of the modules in the
    module docstring's table (nested Sequentials are flattened), with its weights, running
    statistics, dtype (float32 or float64) and train/eval mode. Raises ValueError naming
    the module for anything minicnn cannot express (groups, dilation, non-square kernels,
    ceil_mode, BatchNorm2d without affine or running statistics, ...)."""
    torch = import_torch()
    nn = torch.nn
    mods = list(_flatten(net, nn))
    layers: list = []
    sources: list = []  # (minicnn layer, torch module holding its arrays or None)
    i = 0
    while i < len(mods):
        m, nxt = mods[i], mods[i + 1] if i + 1 < len(mods) else None
        where = f"module {i} ({type(m).__name__})"
        fused = (isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and isinstance(nxt, nn.ReLU)
                 and nxt.inplace)
        activation = "relu" if fused else None
        if isinstance(m, nn.Conv2d):
            layer = _conv_from(m, activation, where)
        elif isinstance(m, nn.BatchNorm2d):
            if not (m.affine and m.track_running_stats) or m.momentum is None:
                raise ValueError(f"{where}: minicnn's BatchNorm2D needs affine=True, "
                                 "track_running_stats=True and a numeric momentum")
            layer = BatchNorm2D(m.num_features, momentum=m.momentum, eps=m.eps,
                                activation=activation)
        elif isinstance(m, nn.ReLU):
            layer = ReLU()
        elif isinstance(m, nn.MaxPool2d):
            k, s = _square(m.kernel_size, where), _square(m.stride or m.kernel_size, where)
            if _square(m.padding, where) or _square(m.dilation, where) != 1 or m.ceil_mode \
                    or m.return_indices:
                raise ValueError(f"{where}: minicnn's MaxPool2D has no padding, dilation, "
                                 "ceil_mode or return_indices")
            layer = MaxPool2D(k, s)
        elif isinstance(m, nn.Dropout):
            layer = Dropout(m.p)
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{where}: only Flatten(start_dim=1, end_dim=-1) is supported")
            layer = Flatten()
        elif isinstance(m, nn.Linear):
            if m.bias is None:
                raise ValueError(f"{where}: minicnn's Dense always has a bias")
            layer = Dense(m.in_features, m.out_features)
        elif isinstance(m, nn.AdaptiveAvgPool2d) and _square(m.output_size, where) == 1 \
                and isinstance(nxt, nn.Flatten) and (nxt.start_dim, nxt.end_dim) == (1, -1):
            layer, fused = GlobalAvgPool2D(), True  # the Flatten is part of it
        else:
            raise ValueError(f"{where}: no minicnn equivalent (minicnn has Conv2d, "
                             "BatchNorm2d, ReLU, MaxPool2d, Dropout, Flatten, Linear and "
                             "AdaptiveAvgPool2d(1) + Flatten)")
        layers.append(layer)
        sources.append(m if (layer.params or layer.buffers) else None)
        i += 2 if fused else 1
    tensors = [t for m in sources if m is not None for t in m.state_dict().values()
               if t.is_floating_point()]
    dtype = _dtype_of([t.detach().numpy() for t in tensors])
    model = Sequential(layers, rng=0).astype(dtype)
    for layer, m in zip(model.layers, sources):
        if m is None:
            continue
        state = m.state_dict()
        for key, arr in {**layer.params, **layer.buffers}.items():
            arr[...] = state[_TORCH_NAMES[key]].detach().cpu().numpy()
    return model.train() if net.training else model.eval()


def _flatten(net, nn):
    for m in net:
        if isinstance(m, nn.Sequential):
            yield from _flatten(m, nn)
        else:
            yield m


def _square(v, where: str) -> int:
    """An int from a torch size argument that may be a pair; ValueError for (a, b), a != b."""
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise ValueError(f"{where}: {v} is not square; minicnn has square kernels, "
                             "strides and paddings only")
        v = v[0]
    return int(v)


def _conv_from(m, activation: str | None, where: str) -> Conv2D:
    if m.groups != 1 or _square(m.dilation, where) != 1 or m.padding_mode != "zeros":
        raise ValueError(f"{where}: minicnn's Conv2D has groups=1, dilation=1 and zero "
                         "padding only")
    k, s = _square(m.kernel_size, where), _square(m.stride, where)
    if m.padding == "same":
        if k % 2 == 0:
            raise ValueError(f"{where}: padding='same' with an even kernel pads unevenly")
        padding: int | str = "same"
    elif m.padding == "valid":
        padding = "valid"
    else:
        padding = _square(m.padding, where)
    return Conv2D(m.in_channels, m.out_channels, k, stride=s, padding=padding,
                  bias=m.bias is not None, activation=activation)
