"""Training dynamics: per-layer gradient norms and the update-to-weight ratio.

For each weight tensor W and each step, two numbers:

* ||dL/dW||, the gradient norm: vanishing (tiny in early layers) or exploding gradients
  show up here first;
* ||W_after - W_before|| / ||W_before||, the relative size of the step the optimizer took.
  The cs231n rule of thumb is about 1e-3: much smaller and the layer is barely learning
  (learning rate too low), much larger and it is being rewritten every step (too high).

The network is the ``small`` model (or ``--arch default``) training from scratch on synthetic
faces with Adam, so the run takes seconds and needs no data.

Run: python examples/06_training_dynamics.py [--quick] [--lr 3e-3] [--arch small] [--out DIR]
"""

import numpy as np

import minicnn
from emotion.models import build
from emotion.plots import plt, save_figure
from emotion.preprocess import to_model_input
from emotion.study import example_parser, output_path
from emotion.synthetic import make_synthetic
from minicnn.optim import Adam

parser = example_parser(__doc__.splitlines()[0])
parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
parser.add_argument("--arch", default="small", choices=("small", "default"))
args = parser.parse_args()
steps = 30 if args.quick else 200

faces, labels = make_synthetic(40 if args.quick else 150, 0)
x = to_model_input(faces)
model = build(args.arch, rng=0)
loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters(), lr=args.lr)
params = model.parameters()
weights = [k for k in params if k.endswith(".W")]  # conv kernels and dense matrices
grad_norm = {k: [] for k in weights}
ratio = {k: [] for k in weights}
losses = []
rng = np.random.default_rng(0)
for _ in range(steps):
    idx = rng.choice(len(x), 64, replace=False)
    losses.append(loss_fn(model.forward(x[idx]), labels[idx]))
    model.backward(loss_fn.backward(), need_input_grad=False)
    grads = model.gradients()
    before = {k: params[k].copy() for k in weights}
    opt.step(grads)
    for k in weights:
        grad_norm[k].append(float(np.linalg.norm(grads[k])))
        ratio[k].append(float(np.linalg.norm(params[k] - before[k]) / np.linalg.norm(before[k])))

names = {k: f"{k.split('.')[0]} {type(model.layers[int(k.split('.')[0])]).__name__}"
         for k in weights}
fig, (ax_loss, ax_g, ax_r) = plt.subplots(1, 3, figsize=(15, 4))
ax_loss.plot(losses)
ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
for k in weights:
    ax_g.plot(grad_norm[k], label=names[k])
    ax_r.plot(ratio[k], label=names[k])
ax_g.set(yscale="log", xlabel="step", ylabel="||dL/dW||", title="gradient norm per layer")
ax_r.axhline(1e-3, color="k", ls="--", lw=1, label="1e-3 rule of thumb")
ax_r.set(yscale="log", xlabel="step", ylabel="||dW|| / ||W||", title="update-to-weight ratio")
for ax in (ax_loss, ax_g, ax_r):
    ax.grid(alpha=0.3)
ax_r.legend(fontsize=7)
fig.suptitle(f"{args.arch} network, Adam lr {args.lr:g}, batch 64, synthetic faces", fontsize=9)
path = output_path(args.out, "06_training_dynamics.png")
save_figure(fig, path)

print(f"{steps} Adam steps at lr {args.lr:g}: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
print(f"{'layer':<16} {'grad norm':>10} {'update/weight':>14}   (medians over the second half)")
half = steps // 2
for k in weights:
    r = float(np.median(ratio[k][half:]))
    verdict = "about right" if 1e-4 <= r <= 1e-2 else ("too small" if r < 1e-4 else "too large")
    print(f"{names[k]:<16} {np.median(grad_norm[k][half:]):>10.3g} {r:>14.2e}   {verdict}")
print(f"wrote {path}")
