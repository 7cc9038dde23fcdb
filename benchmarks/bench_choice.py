"""Does the cost model pick the fastest algorithm? For sets of convolution shapes, every
algorithm that applies (im2col, direct loops, Winograd with each tile, pointwise GEMMs)
timed forward + backward at training shapes (without the input gradient for a first
layer, of 1-3 channels), beside what ``minicnn.engine.algorithm``
picks. In-process A/B: each round runs every algorithm once, one after the other, and the
table gives the medians over rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_choice --set 1x1
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from minicnn import engine
from minicnn.engine import algorithm as A

# a layer with this many input channels or fewer is taken for a network's first (an image's
# channels): its backward computes no input gradient, as in training
FIRST_LAYER_CHANNELS = 3
# (N, C, F, k, padding, S): a k x k kernel over S x S maps, stride 1
SETS = {
    "1x1": [(64, 64, 64, 1, 0, 24), (64, 16, 16, 1, 0, 48), (64, 32, 128, 1, 0, 12),
            (64, 128, 32, 1, 0, 12), (64, 64, 256, 1, 0, 12), (64, 32, 32, 1, 0, 32),
            (64, 128, 128, 1, 0, 8), (64, 256, 64, 1, 0, 6), (64, 128, 128, 1, 0, 6),
            (64, 512, 128, 1, 0, 6), (64, 128, 128, 1, 0, 4), (64, 512, 512, 1, 0, 4),
            (64, 128, 128, 1, 0, 3), (8, 128, 128, 1, 0, 12), (1, 64, 64, 1, 0, 24)],
    "3x3": [(64, 1, 16, 3, 1, 48), (64, 16, 16, 3, 1, 48), (64, 16, 32, 3, 1, 24),
            (64, 32, 32, 3, 1, 24), (64, 32, 64, 3, 1, 12), (64, 64, 64, 3, 1, 12),
            (64, 64, 128, 3, 1, 6), (64, 128, 128, 3, 1, 6), (64, 1, 40, 3, 1, 48),
            (64, 40, 80, 3, 1, 24), (64, 80, 80, 3, 1, 24), (64, 160, 160, 3, 1, 12),
            (64, 320, 320, 3, 1, 6), (1, 80, 80, 3, 1, 24), (64, 128, 10, 3, 1, 4)],
    "5x5-7x7": [(64, 3, 32, 5, 2, 32), (64, 16, 16, 5, 2, 24), (64, 32, 64, 5, 2, 16),
                (64, 64, 64, 5, 2, 8), (100, 1, 30, 5, 0, 28), (64, 3, 16, 7, 3, 32),
                (64, 16, 32, 7, 3, 16), (64, 64, 64, 7, 3, 8), (64, 1, 16, 7, 3, 48),
                (64, 8, 8, 7, 3, 24)],
}


def step_ms(choice, x, w, b, padding, dout) -> tuple[float, float]:
    with A.algorithm(choice.name, choice.tile or None):
        t0 = time.perf_counter()
        _, cache = engine.conv2d_forward(x, w, b, 1, padding)
        t1 = time.perf_counter()
        engine.conv2d_backward(dout, cache, need_dx=x.shape[1] > FIRST_LAYER_CHANNELS)
        t2 = time.perf_counter()
    assert cache.choice == choice
    return 1e3 * (t1 - t0), 1e3 * (t2 - t1)


def label(choice) -> str:
    return f"{choice.name}:{choice.tile}" if choice.tile else choice.name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=sorted(SETS), default="1x1")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print("| N, C -> F, kernel, map | fwd + bwd, ms (medians) | fastest | model picks |")
    print("|---|---|---|---|")
    for N, C, F, k, padding, S in SETS[args.set]:
        x = rng.standard_normal((N, C, S, S)).astype(np.float32)
        w = rng.standard_normal((F, C, k, k)).astype(np.float32)
        b = rng.standard_normal(F).astype(np.float32)
        OS = S + 2 * padding - k + 1
        dout = rng.standard_normal((N, F, OS, OS)).astype(np.float32)
        times = {c: [] for c in A.candidates(C, F, k, k, 1, padding)}
        for _ in range(args.rounds + 1):  # the first round warms up
            for choice, runs in times.items():
                runs.append(step_ms(choice, x, w, b, padding, dout))
        med = {c: np.median(v[1:], axis=0) for c, v in times.items()}
        total = {c: v.sum() for c, v in med.items()}
        fastest = min(total, key=total.get)
        A.forget_choices()
        pick = A.choose(N, C, F, k, k, 1, padding, OS, OS)  # always one of the candidates
        cells = ", ".join(f"{label(c)} {v[0]:.2f} + {v[1]:.2f}" for c, v in med.items())
        note = "" if pick == fastest else f" ({total[pick] / total[fastest]:.2f}x the fastest)"
        print(f"| {N}, {C} -> {F}, {k}x{k}, {S}x{S} | {cells} | {label(fastest)} "
              f"| {label(pick)}{note} |", flush=True)


if __name__ == "__main__":
    main()
