"""The same convolution three ways: naive loops, NumPy strides, Numba. Same numbers,
very different speeds.

minicnn keeps every hot kernel in three tiers (``minicnn/kernels``):

* naive : plain Python loops, one element at a time; the reference a student can check by
  hand (kernels/im2col.py, kernels/pool.py);
* numpy : the same maths with strided views and vectorised indexing, no Python loop
  over pixels;
* numba : compiled loops, parallel over channels, writing into reused buffers; what
  training uses.

This script runs im2col, col2im, max-pool and a whole Conv2D forward pass in each tier on
the same input, checks that the outputs agree with the naive tier, and times them.

"Agree" is measured relative to the size of the numbers: max |tier - naive| divided by
max |naive|. In float32 a sum of many products rounds differently when its terms are added
in another order (col2im and the GEMM do), by a few units of 1e-7 relative to the result;
an absolute threshold would call that a mismatch on outputs of size 50. A relative
difference above ``REL_TOL`` is a real mismatch: the script says so and exits with status 1.

Run: python examples/08_kernel_tiers.py [--quick] [--out DIR]
"""

import sys
import time

import numpy as np

from emotion.plots import plt, save_figure
from emotion.study import example_parser, output_path
from minicnn import kernels
from minicnn.engine import conv2d_forward

REL_TOL = 1e-5  # float32 rounding of sums of up to C*9 = 144 terms stays well below this

args = example_parser(__doc__.splitlines()[0]).parse_args()
N, C, H, F = (1, 4, 12, 8) if args.quick else (4, 16, 24, 32)
rng = np.random.default_rng(0)
x = rng.standard_normal((N, C, H, H)).astype(np.float32)
w = rng.standard_normal((F, C, 3, 3)).astype(np.float32)
b = rng.standard_normal(F).astype(np.float32)
cols_in = rng.standard_normal((C * 9, N * H * H)).astype(np.float32)


def best_time(fn, budget=0.5, repeats=20):
    """Best of several runs (at least one, at most ``repeats``, within ``budget`` seconds)."""
    times, start = [], time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


cases = {
    "im2col": lambda tier: kernels.im2col(x, 3, 3, 1, 1, tier=tier),
    "col2im": lambda tier: kernels.col2im(cols_in, x.shape, 3, 3, 1, 1, tier=tier),
    "max-pool 2x2": lambda tier: kernels.maxpool_forward(x, 2, 2, 2, tier=tier)[0],
}


def conv(tier):
    kernels.set_tier(tier)
    try:
        return conv2d_forward(x, w, b, 1, 1, training=False)[0]
    finally:
        kernels.set_tier("numba" if kernels.numba_available() else "numpy")


cases["Conv2D forward"] = conv
tiers = ["naive", "numpy", "numba"] if kernels.numba_available() else ["naive", "numpy"]
for case in cases.values():  # warm up: Numba compiles each kernel on its first call
    case(tiers[-1])

print(f"input x {x.shape}, 3x3 kernels, {F} filters, padding 1, float32")
print(f"{'case':<16}" + "".join(f"{t:>12}" for t in tiers) + f"{'naive/fastest':>15}"
      + "   max |difference| / max |naive|")
timings, worst = {}, 0.0
for name, case in cases.items():
    reference = None
    row, diffs = [], []
    for tier in tiers:
        seconds, out = best_time(lambda c=case, t=tier: c(t))
        row.append(seconds)
        if reference is None:
            reference = out
        else:
            scale = max(float(np.abs(reference).max()), np.finfo(np.float32).tiny)
            diffs.append(float(np.abs(out.astype(np.float64) - reference).max()) / scale)
    timings[name] = row
    worst = max([worst, *diffs])
    print(f"{name:<16}" + "".join(f"{1e3 * s:>10.3f}ms" for s in row)
          + f"{row[0] / min(row):>14.0f}x   " + ", ".join(f"{d:.1e}" for d in diffs))

fig, ax = plt.subplots(figsize=(8, 4))
width = 0.8 / len(tiers)
for j, tier in enumerate(tiers):
    ax.bar(np.arange(len(cases)) + j * width, [1e3 * timings[c][j] for c in cases], width,
           label=tier)
ax.set_xticks(np.arange(len(cases)) + width * (len(tiers) - 1) / 2, list(cases))
ax.set(yscale="log", ylabel="milliseconds (log scale)",
       title=f"the same kernels in three tiers, x {x.shape}, identical outputs")
ax.legend()
ax.grid(alpha=0.3, axis="y")
path = output_path(args.out, "08_kernel_tiers.png")
save_figure(fig, path)
print(f"wrote {path}")
if worst <= REL_TOL:
    print(f"all tiers agree: largest difference {worst:.1e} of the outputs' size (float32 "
          f"rounding: col2im and the GEMM add in a different order)")
else:
    print(f"MISMATCH: tiers differ by up to {worst:.1e} of the outputs' size (more than "
          f"{REL_TOL:g}); a kernel is wrong")
    sys.exit(1)
