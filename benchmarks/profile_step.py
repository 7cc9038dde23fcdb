"""Where a training step's time goes, layer by layer: forward and backward of each layer
and the optimizer, for a zoo network, in minicnn or in its PyTorch twin (one framework per
process, as the benchmarks run them).

    python -m benchmarks.profile_step vggbn --threads 2 --repeats 15
    python -m benchmarks.profile_step vggbn --torch --threads 2 --repeats 15

Each figure is the median over the repeats, in ms. PyTorch's backward is timed per layer
with hooks on each module's input gradient, so its figures include autograd's overhead
between the hooks; the first layer's backward (no input gradient) is the rest of the
backward pass.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def profile_minicnn(name: str, repeats: int) -> list[tuple[str, float, float]]:
    from benchmarks.bench_train import build_model, make_batch
    from benchmarks.zoo import net
    from minicnn import SoftmaxCrossEntropy
    from minicnn.optim import Adam

    spec = net(name)
    x, y = make_batch(spec.batch, shape=spec.input_shape, classes=spec.classes)
    model = build_model(name)
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-3)
    n = len(model.layers)
    fwd, bwd, rest = [[] for _ in range(n)], [[] for _ in range(n)], {"loss": [], "adam": []}
    for r in range(repeats + 2):
        h = x
        for i, layer in enumerate(model.layers):
            t = time.perf_counter()
            h = layer.forward(h)
            fwd[i].append(time.perf_counter() - t)
        t = time.perf_counter()
        loss_fn(h, y)
        d = loss_fn.backward()
        rest["loss"].append(time.perf_counter() - t)
        for i in range(n - 1, -1, -1):
            t = time.perf_counter()
            d = model.layers[i].backward(d, need_dx=i > 0)
            model.layers[i].release()
            bwd[i].append(time.perf_counter() - t)
        t = time.perf_counter()
        opt.step(model.gradients())
        rest["adam"].append(time.perf_counter() - t)
        if r < 2:  # warm-up
            for lst in fwd + bwd + list(rest.values()):
                lst.clear()
    rows = [(repr(layer), _median_ms(fwd[i]), _median_ms(bwd[i]))
            for i, layer in enumerate(model.layers)]
    rows.append(("loss", _median_ms(rest["loss"]), 0.0))
    rows.append(("adam", _median_ms(rest["adam"]), 0.0))
    return rows


def profile_torch(name: str, repeats: int) -> list[tuple[str, float, float]]:
    import torch

    from benchmarks.bench_train import build_model, make_batch
    from benchmarks.torch_models import torch_sequential
    from benchmarks.zoo import net

    spec = net(name)
    x, y = make_batch(spec.batch, shape=spec.input_shape, classes=spec.classes)
    seq = torch_sequential(build_model(name))
    seq.train()
    opt = torch.optim.Adam(seq.parameters(), lr=1e-3)
    mods = list(seq)
    n = len(mods)
    fwd, bwd, rest = [[] for _ in range(n)], [[] for _ in range(n)], {"loss": [], "adam": []}
    stamps: dict[int, float] = {}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for r in range(repeats + 2):
        opt.zero_grad(set_to_none=True)
        h, outs = xt, []
        for i, mod in enumerate(mods):
            t = time.perf_counter()
            h = mod(h)
            fwd[i].append(time.perf_counter() - t)
            outs.append(h)
        for i, o in enumerate(outs[:-1]):  # when layer i+1's backward has produced dL/d(out i)
            o.register_hook(lambda g, i=i: stamps.__setitem__(i, time.perf_counter()))
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(h, yt)
        rest["loss"].append(time.perf_counter() - t)
        t0 = time.perf_counter()
        loss.backward()
        t_end = time.perf_counter()
        prev = t0
        for i in range(n - 1, -1, -1):
            now = stamps.get(i - 1, t_end) if i > 0 else t_end
            bwd[i].append(now - prev)
            prev = now
        t = time.perf_counter()
        opt.step()
        rest["adam"].append(time.perf_counter() - t)
        if r < 2:
            for lst in fwd + bwd + list(rest.values()):
                lst.clear()
    rows = [(repr(m).split("\n")[0], _median_ms(fwd[i]), _median_ms(bwd[i]))
            for i, m in enumerate(mods)]
    rows.append(("loss", _median_ms(rest["loss"]), 0.0))
    rows.append(("adam", _median_ms(rest["adam"]), 0.0))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("net")
    parser.add_argument("--torch", action="store_true", help="profile the PyTorch twin")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.torch:
        import torch

        torch.set_num_threads(args.threads)
        rows = profile_torch(args.net, args.repeats)
    else:
        from minicnn.threads import set_num_threads

        set_num_threads(args.threads)
        rows = profile_minicnn(args.net, args.repeats)
    total = sum(f + b for _, f, b in rows)
    print(f"{'torch' if args.torch else 'minicnn'} {args.net}: {total:.1f} ms per step")
    for name, f, b in rows:
        print(f"  {name[:60]:60s} fwd {f:7.2f}  bwd {b:7.2f}")


if __name__ == "__main__":
    main()
