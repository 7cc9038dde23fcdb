"""The training-step zoo of the benchmarks (benchmarks/zoo.py): every network builds,
maps its input to its classes, trains a step, and its PyTorch twin computes the same
function (what makes the benchmark's ratio a fair one)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_train import make_batch, minicnn_step
from benchmarks.zoo import ZOO, net

ISSUE_ZOO = ["default", "vggbn", "simpleconvnet", "s2bn", "seed"]


@pytest.mark.parametrize("name", ["vggbn", "simpleconvnet", "s2bn", "nin", "lenet5",
                                  "cifarkeras"])
def test_zoo_network_trains_a_step_on_its_input(name):
    spec = net(name)
    model = spec.build(0)
    x, y = make_batch(2, shape=spec.input_shape, classes=spec.classes)
    assert model.forward(x).shape == (2, spec.classes)
    step = minicnn_step(model)
    assert np.isfinite(step(x, y))


def test_the_zoo_holds_the_issue_networks_at_their_batches():
    assert set(ISSUE_ZOO) <= set(ZOO)
    assert {n: (ZOO[n].input_shape, ZOO[n].batch) for n in ISSUE_ZOO} == {
        "default": ((1, 48, 48), 64), "vggbn": ((1, 48, 48), 64),
        "simpleconvnet": ((1, 28, 28), 100), "s2bn": ((3, 32, 32), 64),
        "seed": ((1, 48, 48), 64)}
    convs = [layer for layer in net("vggbn").build(0).layers if type(layer).__name__ == "Conv2D"]
    assert len(convs) == 8 and all(c.bias for c in convs)  # two a stage, with bias


@pytest.mark.parametrize("name", ["vggbn", "simpleconvnet", "s2bn", "nin", "lenet5",
                                  "cifarkeras"])
def test_zoo_torch_twin_computes_the_same_function(name):
    torch = pytest.importorskip("torch")
    from benchmarks.torch_models import torch_sequential

    spec = net(name)
    model = spec.build(0)
    model.eval()
    x, _ = make_batch(3, shape=spec.input_shape, classes=spec.classes)
    twin = torch_sequential(model)
    twin.eval()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), theirs, rtol=1e-4, atol=1e-4)
