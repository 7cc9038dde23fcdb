"""Overfit 20 random faces: the first sanity check for any new network or training loop.
If a model cannot drive the loss to ~0 on 20 samples, something is broken.

Run: python examples/03_overfit_tiny_batch.py [--out DIR]
"""

import math

import numpy as np

import minicnn
from emotion.plots import plt, save_figure
from emotion.study import example_parser, output_path
from minicnn.layers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.optim import Adam

args = example_parser(__doc__.splitlines()[0], study=False).parse_args()
rng = np.random.default_rng(0)
x = rng.standard_normal((20, 1, 12, 12)).astype(np.float32)
y = np.arange(20) % 7
model = minicnn.Sequential([
    Conv2D(1, 8, 3, padding="same"), BatchNorm2D(8), ReLU(), MaxPool2D(2),
    Flatten(), Dense(8 * 6 * 6, 32), ReLU(), Dense(32, 7),
], rng=0)
loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2)
print(f"expected first loss for 7 classes: ln 7 = {math.log(7):.3f}")
losses = []
for step in range(151):
    loss = loss_fn(model.forward(x), y)
    losses.append(loss)
    model.backward(loss_fn.backward(), need_input_grad=False)
    opt.step(model.gradients())
    if step % 25 == 0:
        print(f"step {step:3d}  loss {loss:.4f}")
model.eval()
acc = (model.forward(x).argmax(1) == y).mean()
print(f"training accuracy after 150 steps: {100 * acc:.0f}%")

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(losses)
ax.axhline(math.log(7), color="k", ls="--", lw=1, label="ln 7: guessing among 7 classes")
ax.set(yscale="log", xlabel="step", ylabel="training loss (log scale)",
       title=f"overfitting 20 random samples: accuracy {100 * acc:.0f}% after 150 steps")
ax.legend()
ax.grid(alpha=0.3)
path = output_path(args.out, "03_overfit_tiny_batch.png")
save_figure(fig, path)
print(f"wrote {path}")
