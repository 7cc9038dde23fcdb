"""An identical ``torch.nn.Sequential`` for a minicnn ``Sequential``: the benchmarks'
PyTorch twin is ``minicnn.interop.torch.to_torch`` (see its table of equivalent layers).

Both frameworks use NCHW and PyTorch's weight layouts, so weights copy across unchanged
and the two models compute the same function (checked in tests/test_torch_interop.py and
tests/test_benchmarks_smoke.py), which keeps the comparison honest. minicnn's fused ReLUs
become in-place ReLUs, torch's idiomatic equivalent (a pass's allocation and a map of
memory saved, as the fusion saves minicnn).
"""

from __future__ import annotations

from benchmarks.common import get_torch


def torch_sequential(model, dtype: str = "float32"):
    """``torch.nn.Sequential`` with the same layers, weights and mode as a minicnn model."""
    if get_torch() is None:
        raise ImportError("PyTorch is not installed")
    from minicnn.interop.torch import to_torch

    return to_torch(model, dtype=dtype)
