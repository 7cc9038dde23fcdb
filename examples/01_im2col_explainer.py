"""im2col on a 4x4 image: see how a 3x3 convolution becomes one matrix product.

Run: python examples/01_im2col_explainer.py [--out DIR]
"""

import numpy as np

from emotion.plots import plt, save_figure
from emotion.study import example_parser, output_path
from minicnn import kernels
from minicnn.functional import conv2d_forward

args = example_parser(__doc__.splitlines()[0], study=False).parse_args()

x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)  # N=1, C=1, H=W=4
print("input image (values 0..15):")
print(x[0, 0].astype(int))

cols = kernels.im2col(x, 3, 3, stride=1, padding=0, tier="naive")
print(f"\nim2col with a 3x3 window, stride 1, no padding -> cols of shape {cols.shape}")
print("(row k = position inside the window, column j = output pixel; each COLUMN is one")
print(" flattened 3x3 patch)")
print(cols.astype(int))

w = np.zeros((1, 1, 3, 3))
w[0, 0, 1, 1] = 1.0  # the identity kernel: picks each window's centre
out = (w.reshape(1, 9) @ cols).reshape(1, 1, 2, 2)
print("\nW (1, 9) @ cols (9, 4) with the identity kernel = the 4 window centres:")
print(out[0, 0].astype(int))
ref, _ = conv2d_forward(x, w, None)
assert np.array_equal(out, ref)

cols_pad = kernels.im2col(x, 3, 3, stride=2, padding=1, tier="naive")
print(f"\nwith padding 1 and stride 2: OH = (4 + 2*1 - 3) // 2 + 1 = 2, cols {cols_pad.shape};"
      " zeros are the padding:")
print(cols_pad.astype(int))

for tier in ("numpy", "numba"):
    assert np.array_equal(kernels.im2col(x, 3, 3, 2, 1, tier=tier), cols_pad)
print("\nthe numpy and numba tiers give exactly the same matrix as the naive loops")

y = np.ones_like(cols)
coverage = kernels.col2im(y, x.shape, 3, 3, 1, 0)[0, 0]
print("\ncol2im (the adjoint) of an all-ones matrix counts how many windows cover each pixel:")
print(coverage.astype(int))

# The picture: the image, its im2col matrix (each column one window), W @ cols, and the
# col2im coverage, every cell labelled with its value.
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6),
                         gridspec_kw={"width_ratios": [4, 4, 2.4, 4], "wspace": 0.45})
panels = [(x[0, 0], "input image 4x4"),
          (cols, f"im2col: cols {cols.shape[0]}x{cols.shape[1]}\n(a column per 3x3 window)"),
          (out[0, 0], "W @ cols, identity kernel\n= the window centres"),
          (coverage, "col2im(ones): windows\ncovering each pixel")]
for ax, (values, title) in zip(axes, panels):
    ax.imshow(values, cmap="Blues")
    middle = (values.min() + values.max()) / 2
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8,
                color="white" if v > middle else "black")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
path = output_path(args.out, "01_im2col_explainer.png")
save_figure(fig, path)
print(f"\nwrote {path}")
