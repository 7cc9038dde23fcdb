"""Train with PyTorch, study in minicnn: a network written and trained in torch, imported
with its weights and batch-norm statistics, then opened up with ``model.record()``.

PyTorch trains the network (here for a few seconds on synthetic faces; at scale, on many
GPUs with DistributedDataParallel: see the README's "Beyond one machine").
``minicnn.interop.torch.from_torch`` turns the ``torch.nn.Sequential`` into a minicnn
``Sequential`` with the same weights; the two give the same scores. Then one forward and
one backward pass under ``record()`` keep every layer's feature maps and the gradient of
the loss with respect to them, which minicnn computes with its hand-written backward
passes: the gradient at the input is checked against torch's autograd. The picture shows a
face, the first block's most active (pooled) feature maps, the gradients flowing into
them, and the input gradient (a saliency map).

Run: python examples/09_from_pytorch.py [--quick] [--out DIR]   (needs torch)
"""

import sys

import numpy as np

from emotion.labels import CLASSES
from emotion.plots import plt, save_figure
from emotion.preprocess import to_model_input
from emotion.study import example_parser, output_path
from emotion.synthetic import make_synthetic
from minicnn import SoftmaxCrossEntropy

try:
    import torch
except ImportError:
    sys.exit("this example needs PyTorch: pip install -e '.[compare]'")
from minicnn.interop.torch import from_torch

SHOW = 6  # feature maps per row: the most active ones

args = example_parser(__doc__.splitlines()[0]).parse_args()
steps = 40 if args.quick else 300
torch.manual_seed(0)

# 1. A network written the PyTorch way (in-place ReLUs after batch norm, global pooling).
nn = torch.nn
net = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, len(CLASSES)),
)

# 2. Train it with PyTorch: Adam on synthetic faces, standardised as emotion does.
faces, labels = make_synthetic(60, 0)
x_all, y_all = torch.from_numpy(to_model_input(faces)), torch.from_numpy(labels).long()
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
net.train()
for _ in range(steps):
    idx = torch.randint(len(x_all), (64,))
    loss = nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
net.eval()
with torch.no_grad():
    accuracy = (net(x_all).argmax(1) == y_all).float().mean().item()
print(f"PyTorch: {steps} Adam steps, final batch loss {loss.item():.3f}, "
      f"training accuracy {100 * accuracy:.0f}%")

# 3. Import it: the same layers, weights and running statistics, in eval mode.
model = from_torch(net)
print(f"imported into minicnn: {len(model.layers)} layers, "
      f"{model.num_parameters():,} parameters")
model.summary((1, 48, 48))
x, y = to_model_input(faces[:8]), labels[:8]
with torch.no_grad():
    theirs = net(torch.from_numpy(x)).numpy()
print(f"the same scores: max |minicnn - torch| = {np.abs(model.forward(x) - theirs).max():.1e}")

# 4. Look inside: one forward and backward under record(), and torch's autograd to compare.
loss_fn = SoftmaxCrossEntropy()
with model.record() as rec:
    loss_fn(model.forward(x), y)
    model.backward(loss_fn.backward())
tx = torch.from_numpy(x).requires_grad_(True)
nn.functional.cross_entropy(net(tx), torch.from_numpy(y).long()).backward()
gap = np.abs(rec.input_grad - tx.grad.numpy()).max() / np.abs(tx.grad.numpy()).max()
print(f"dL/dx from minicnn's hand-written backward vs torch autograd: {gap:.1e} relative")

pool = next(i for i, e in enumerate(model.spec()) if e["type"] == "MaxPool2D")
before = rec.output_grads[pool - 1][0]  # into block 1's batch norm + fused ReLU output
print(f"block 1 before pooling: {100 * (rec.outputs[pool - 1] == 0).mean():.0f}% of the "
      f"activations are ReLU zeros, and {100 * (before != 0).mean():.0f}% of its gradient "
      f"is non-zero (max-pool sends each window's gradient to its maximum only)")
maps, grads = rec.outputs[pool][0], rec.output_grads[pool][0]  # (C, 24, 24) after pooling
order = np.argsort(-maps.mean(axis=(1, 2)))[:SHOW]
print("norm of dL/d(output) per layer, from the loss down:")
for i in sorted(rec.output_grads, reverse=True):
    print(f"  {i:2d} {type(model.layers[i]).__name__:<16} "
          f"{np.linalg.norm(rec.output_grads[i]):.2e}")

fig, axes = plt.subplots(2, SHOW + 1, figsize=(1.7 * (SHOW + 1), 4.0))
axes[0, 0].imshow(faces[0], cmap="gray")
axes[0, 0].set_title(f"input ({CLASSES[y[0]]})", fontsize=8)
saliency = np.abs(rec.input_grad[0, 0])
axes[1, 0].imshow(saliency, cmap="magma")
axes[1, 0].set_title("|dL/dx|", fontsize=8)
for col, c in enumerate(order, start=1):
    axes[0, col].imshow(maps[c], cmap="viridis")
    axes[0, col].set_title(f"map {c}", fontsize=7)
    lim = float(np.abs(grads[c]).max()) or 1.0
    axes[1, col].imshow(grads[c], cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[1, col].set_title(f"dL/d map {c}", fontsize=7)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"a network trained with PyTorch ({steps} steps), imported into minicnn\n"
             f"block 1's pooled feature maps (top), the loss's gradient with respect to "
             f"them (bottom)", fontsize=9)
path = output_path(args.out, "09_from_pytorch.png")
save_figure(fig, path)
print(f"wrote {path}")
