"""minicnn.interop.torch: a minicnn Sequential to torch.nn.Sequential and back.

A round trip gives back the same architecture and the same bits; the torch twin computes
the same function (float64: to ~1e-12 relative; float32: to float32 rounding), in eval and
in training mode, where both update the batch-norm running statistics alike; state dicts
cross in both directions (skipped without torch)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from layer_stacks import layer_stacks, randomize_batchnorm

from emotion.models import build
from minicnn.layers import LAYER_TYPES, BatchNorm2D, Conv2D, Dense, Dropout
from minicnn.model import Sequential

torch = pytest.importorskip("torch")
from minicnn.interop.torch import (  # noqa: E402 - after the importorskip
    from_torch,
    load_torch_state_dict,
    to_torch,
    torch_state_dict,
)

# max|ours - torch| / max|torch|: float64 sums in another order differ in the last bits;
# float32 by the rounding of a few hundred terms per output
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def arrays(model: Sequential) -> dict[str, np.ndarray]:
    return {**model.parameters(), **model.buffers()}


def torch_spec(model: Sequential) -> list[dict]:
    """The spec a round trip through torch gives back: "same" padding at a stride above 1,
    which torch.nn.Conv2d lacks, becomes the equal integer padding."""
    spec = model.spec()
    for entry, layer in zip(spec, model.layers):
        if isinstance(layer, Conv2D) and layer.padding == "same" and layer.stride > 1:
            entry["config"]["padding"] = layer.pad
    return spec


def assert_same_model(a: Sequential, b: Sequential) -> None:
    """Same spec (as far as torch can express it), same mode, and bit-identical arrays of
    the same dtype."""
    assert torch_spec(a) == torch_spec(b)
    assert a.training == b.training
    ours, theirs = arrays(a), arrays(b)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, name
        assert np.array_equal(ours[name], theirs[name]), name


def assert_close(ours: np.ndarray, theirs, dtype) -> None:
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    scale = max(np.abs(theirs).max(), 1e-30)
    assert np.abs(ours - theirs).max() <= RTOL[dtype] * scale, np.abs(ours - theirs).max() / scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch", ["default", "seed", "small"])
def test_named_models_cross_both_ways_exactly(arch, dtype):
    model = randomize_batchnorm(build(arch, rng=1).astype(dtype), np.random.default_rng(1))
    model.eval()
    net = to_torch(model)
    assert not net.training and next(net.parameters()).dtype == getattr(torch, dtype.__name__)
    assert_same_model(from_torch(net), model)
    x = np.random.default_rng(2).standard_normal((3, 1, 48, 48)).astype(dtype)
    with torch.no_grad():
        assert_close(model.forward(x), net(torch.from_numpy(x)), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch", ["default", "small"])
def test_training_mode_updates_the_same_running_statistics(arch, dtype):
    """One forward in training mode: batch statistics in the output, and the running
    statistics both frameworks keep afterwards (the default and small models' only dropout
    comes after their last batch norm, so the statistics see the same inputs)."""
    model = randomize_batchnorm(build(arch, rng=3).astype(dtype), np.random.default_rng(3))
    model.train()
    net = to_torch(model)
    assert net.training
    x = np.random.default_rng(4).standard_normal((4, 1, 48, 48)).astype(dtype)
    model.forward(x)
    net(torch.from_numpy(x))
    back = from_torch(net)
    for (name, ours), theirs in zip(model.buffers().items(), back.buffers().values()):
        scale = np.abs(ours).max()
        assert np.abs(ours - theirs).max() <= RTOL[dtype] * scale, name
    assert any(not np.array_equal(v, w) for v, w in zip(
        model.buffers().values(), build(arch, rng=3).buffers().values()))  # they moved


@settings(max_examples=25)
@given(layer_stacks())
def test_drawn_stacks_round_trip_and_compute_the_same_function(drawn):
    model, shape = drawn
    net = to_torch(model)
    assert_same_model(from_torch(net), model)
    x = np.random.default_rng(0).standard_normal((2, *shape))
    with torch.no_grad():
        assert_close(model.forward(x), net(torch.from_numpy(x)), np.float64)


def test_every_minicnn_layer_has_a_torch_equivalent():
    from minicnn.interop.torch import _modules_for

    own = {name: cls for name, cls in LAYER_TYPES.items()
           if cls.__module__.startswith("minicnn.layers.")}
    assert len(own) >= 8
    samples = {"Conv2D": Conv2D(1, 2, 3), "BatchNorm2D": BatchNorm2D(2),
               "Dense": Dense(2, 3), "Dropout": Dropout(0.1)}
    for name, cls in own.items():
        layer = samples.get(name) or cls()
        assert _modules_for(layer, torch.nn), name


def test_state_dicts_cross_in_both_directions():
    model = randomize_batchnorm(build("small", rng=5), np.random.default_rng(5)).eval()
    net = to_torch(model)
    fresh = to_torch(build("small", rng=6))
    fresh.load_state_dict(torch_state_dict(model), strict=True)  # every key torch expects
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    # a few SGD steps in torch, then the trained state dict back into a minicnn model;
    # "module." prefixes (a DistributedDataParallel net's state dict) are accepted
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    x = torch.randn(8, 1, 48, 48)
    y = torch.arange(8) % 7
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    target = build("small", rng=7)
    live = target.parameters()["0.W"]
    load_torch_state_dict(target, {f"module.{k}": v for k, v in net.state_dict().items()})
    assert target.parameters()["0.W"] is live  # loaded in place
    net.eval()
    target.eval()
    with torch.no_grad():
        assert_close(target.forward(x.numpy()), net(x), np.float32)
    assert_same_model(target, from_torch(net))


def test_state_dict_mismatches_are_named():
    model = build("small", rng=0)
    state = torch_state_dict(model)
    del state["0.weight"]
    with pytest.raises(ValueError, match=r"missing \['0.weight'\]"):
        load_torch_state_dict(model, state)
    state = torch_state_dict(model)
    state["0.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="'0.weight' has shape"):
        load_torch_state_dict(model, state)


@pytest.mark.parametrize("module, message", [
    (lambda nn: nn.Conv2d(1, 2, 3, groups=1, dilation=2), "dilation"),
    (lambda nn: nn.Conv2d(1, 2, (3, 1)), "not square"),
    (lambda nn: nn.MaxPool2d(2, ceil_mode=True), "ceil_mode"),
    (lambda nn: nn.BatchNorm2d(2, affine=False), "affine"),
    (lambda nn: nn.Linear(2, 3, bias=False), "bias"),
    (lambda nn: nn.Tanh(), "no minicnn equivalent"),
    (lambda nn: nn.AdaptiveAvgPool2d(2), "no minicnn equivalent"),
])
def test_modules_minicnn_cannot_express_are_refused_by_name(module, message):
    net = torch.nn.Sequential(torch.nn.ReLU(), module(torch.nn))
    with pytest.raises(ValueError, match=message) as info:
        from_torch(net)
    assert "module 1" in str(info.value)


def test_plain_and_fused_relus_come_back_as_they_were():
    """An in-place ReLU after a conv or batch norm is that layer's fused activation; any
    other ReLU (not in place, or after a dense layer) stays a layer."""
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.ReLU(inplace=True),
                        nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 5 * 5, 3),
                        nn.ReLU(inplace=True), nn.Linear(3, 2))
    types = [(e["type"], e["config"].get("activation")) for e in from_torch(net).spec()]
    assert types == [("Conv2D", "relu"), ("BatchNorm2D", None), ("ReLU", None),
                     ("Flatten", None), ("Dense", None), ("ReLU", None), ("Dense", None)]



def test_example_09_trains_in_torch_and_studies_in_minicnn(tmp_path, monkeypatch, capsys):
    import runpy

    import cv2

    script = Path(__file__).resolve().parents[1] / "examples" / "09_from_pytorch.py"
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [script.name, "--quick", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    gaps = re.findall(r"(?:max \|minicnn - torch\| =|autograd:) ([0-9.e+-]+)", printed)
    assert len(gaps) == 2 and all(float(g) < 1e-4 for g in gaps), printed
    assert f"wrote {out / '09_from_pytorch.png'}" in printed
    image = cv2.imread(str(out / "09_from_pytorch.png"))
    assert image is not None and image.shape[1] > 500
