"""Gradient-check walkthrough: every layer's hand-written backward pass against central
differences, in float64, printing the relative error per layer.

Run: python examples/02_gradient_check.py [--out DIR]
"""

import numpy as np

from emotion.plots import plt, save_figure
from emotion.study import example_parser, output_path
from minicnn import functional as F
from minicnn.gradcheck import numerical_gradient, rel_error

args = example_parser(__doc__.splitlines()[0], study=False).parse_args()
rng = np.random.default_rng(0)
print("relative error = max |analytic - numerical| / (|analytic| + |numerical|); < 1e-6 is good\n")
errors = {}


def report(name, analytic, f, x, dout, h=1e-5):
    err = rel_error(analytic, numerical_gradient(f, x, dout, h=h))
    errors[name] = err
    print(f"{name:<34} {err:.2e}  {'ok' if err < 1e-6 else 'CHECK'}")


x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
out, cache = F.conv2d_forward(x, w, b, stride=1, padding=1)
dout = rng.standard_normal(out.shape)
dx, dw, db = F.conv2d_backward(dout, cache)
conv = lambda: F.conv2d_forward(x, w, b, 1, 1)[0]  # noqa: E731
report("conv2d dx", dx, conv, x, dout)
report("conv2d dW", dw, conv, w, dout)
report("conv2d db", db, conv, b, dout)

xp = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) * 1e-2  # unique values: no ties
out, cache = F.maxpool2d_forward(xp, 2, 2)
dout = rng.standard_normal(out.shape)
report("maxpool2d dx", F.maxpool2d_backward(dout, cache),
       lambda: F.maxpool2d_forward(xp, 2, 2)[0], xp, dout, h=1e-4)

gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
rm, rv = np.zeros(3), np.ones(3)
out, cache = F.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy())
dout = rng.standard_normal(out.shape)
dxb, dg, dbe = F.batchnorm2d_backward(dout, cache)
bn = lambda: F.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy())[0]  # noqa: E731
report("batchnorm2d dx (training mode)", dxb, bn, x, dout)
report("batchnorm2d dgamma", dg, bn, gamma, dout)

xr = rng.standard_normal((3, 5))
xr[np.abs(xr) < 1e-2] = 0.5  # keep away from the kink at 0
out, cache = F.relu_forward(xr)
dout = rng.standard_normal(out.shape)
report("relu dx", F.relu_backward(dout, cache), lambda: F.relu_forward(xr)[0], xr, dout, h=1e-3)

xd, wd, bd = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
out, cache = F.dense_forward(xd, wd, bd)
dout = rng.standard_normal(out.shape)
ddx, ddw, _ = F.dense_backward(dout, cache, wd)
report("dense dx", ddx, lambda: F.dense_forward(xd, wd, bd)[0], xd, dout)
report("dense dW", ddw, lambda: F.dense_forward(xd, wd, bd)[0], wd, dout)

logits, labels = rng.standard_normal((4, 7)), np.array([0, 3, 6, 2])
loss, dlogits = F.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
report("softmax cross-entropy dlogits", dlogits,
       lambda: F.softmax_cross_entropy(logits, labels, 0.1)[0], logits, None)

fig, ax = plt.subplots(figsize=(8, 4))
names = list(errors)
ax.barh(names, [max(e, 1e-16) for e in errors.values()],
        color=["tab:blue" if e < 1e-6 else "tab:red" for e in errors.values()])
ax.axvline(1e-6, color="k", ls="--", lw=1, label="1e-6: the pass mark")
ax.set(xscale="log", xlabel="relative error, analytic vs numerical gradient (log scale)",
       title="every hand-written backward pass against central differences (float64)")
ax.invert_yaxis()
ax.legend(fontsize=8)
ax.grid(alpha=0.3, axis="x")
path = output_path(args.out, "02_gradient_check.png")
save_figure(fig, path)
print(f"\nwrote {path}")
