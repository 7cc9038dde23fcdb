"""1x1 convolutions: im2col against pointwise GEMMs (one an image on the input itself),
forward + backward at training shapes, and what the cost model picks
(``minicnn.engine.algorithm``). In-process A/B: each round runs both algorithms, one
after the other, and the table gives the medians over rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_pointwise
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from minicnn import engine
from minicnn.engine import algorithm as A

SHAPES = [  # (N, C, F, S): S x S maps
    (64, 64, 64, 24), (64, 16, 16, 48), (64, 32, 128, 12), (64, 128, 32, 12),
    (64, 64, 256, 12), (64, 32, 32, 32), (64, 128, 128, 8), (64, 256, 64, 6),
    (64, 128, 128, 6), (64, 512, 128, 6), (64, 128, 128, 4), (64, 512, 512, 4),
    (64, 128, 128, 3), (8, 128, 128, 12), (1, 64, 64, 24),
]


def step_ms(name, x, w, b, dout) -> tuple[float, float]:
    with A.algorithm(name):
        t0 = time.perf_counter()
        _, cache = engine.conv2d_forward(x, w, b, 1, 0)
        t1 = time.perf_counter()
        engine.conv2d_backward(dout, cache)
        t2 = time.perf_counter()
    assert cache.choice.name == name
    return 1e3 * (t1 - t0), 1e3 * (t2 - t1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print("| N, C -> F, map | im2col fwd + bwd, ms | pointwise fwd + bwd, ms | faster "
          "| model picks |")
    print("|---|---|---|---|---|")
    for N, C, F, S in SHAPES:
        x = rng.standard_normal((N, C, S, S)).astype(np.float32)
        w = rng.standard_normal((F, C, 1, 1)).astype(np.float32)
        b = rng.standard_normal(F).astype(np.float32)
        dout = rng.standard_normal((N, F, S, S)).astype(np.float32)
        times = {"im2col": [], "pointwise": []}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name in times:
                times[name].append(step_ms(name, x, w, b, dout))
        med = {k: np.median(v[1:], axis=0) for k, v in times.items()}
        total = {k: v.sum() for k, v in med.items()}
        faster = min(total, key=total.get)
        A.forget_choices()
        pick = A.choose(N, C, F, 1, 1, 1, 0, S, S).name
        cells = " | ".join(f"{v[0]:.2f} + {v[1]:.2f}" for v in med.values())
        print(f"| {N}, {C} -> {F}, {S}x{S} | {cells} | {faster} "
              f"({max(total.values()) / min(total.values()):.2f}x) | {pick} |", flush=True)


if __name__ == "__main__":
    main()
