"""The first convolution's filters, as images, and what each one responds to on a face.

A 3x3 filter on a gray image can only be a tiny template: a blob (all weights the same
sign, so it measures local brightness) or an edge/gradient detector (weights summing to
about zero, so flat regions give nothing). Because every face is standardised first, a
trained first layer is mostly made of the second kind. This script shows the filters
(red = positive weight, blue = negative) and each filter's response to one face.

Run: python examples/04_first_layer_filters.py [--quick] [--synthetic] [--out DIR]
"""

import numpy as np

from emotion.plots import plt, save_figure
from emotion.preprocess import to_model_input
from emotion.study import example_parser, output_path, study_faces, study_model
from minicnn.layers import Conv2D

args = example_parser(__doc__.splitlines()[0]).parse_args()
model, about = study_model(args.quick)
conv = next(layer for layer in model.layers if isinstance(layer, Conv2D))
W = conv.params["W"][:, 0]  # (filters, 3, 3): the single gray input channel
faces, _, source = study_faces(1, args.synthetic)
with model.record() as rec:
    model.forward(to_model_input(faces))
responses = rec.outputs[model.layers.index(conv)][0]  # (filters, 48, 48), before BN and ReLU

# "Edge-like": the weights nearly cancel, |sum| small next to the filter's L1 size.
balance = np.abs(W.sum(axis=(1, 2))) / np.abs(W).sum(axis=(1, 2))
edge_like = int((balance < 0.3).sum())

n = len(W)
cols = 8
rows = -(-n // cols)
fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 1.3, rows * 2.7))
for i in range(rows * cols):
    top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
    for ax in (top, bottom):
        ax.set_xticks([])
        ax.set_yticks([])
    if i >= n:
        top.axis("off")
        bottom.axis("off")
        continue
    lim = np.abs(W[i]).max()
    top.imshow(W[i], cmap="bwr", vmin=-lim, vmax=lim)
    top.set_title(f"{i}{' edge' if balance[i] < 0.3 else ''}", fontsize=7)
    bottom.imshow(responses[i], cmap="gray")
fig.suptitle(f"first-layer 3x3 filters (rows 1, 3, ...) and their responses to one face\n"
             f"{about}; face: {source}", fontsize=9)
path = output_path(args.out, "04_first_layer_filters.png")
save_figure(fig, path)

print(f"model: {about}")
print(f"{n} first-layer filters of 3x3; {edge_like} of {n} are edge-like "
      f"(weights summing to less than 30% of their absolute size), the rest respond to "
      f"local brightness")
print(f"strongest filters by weight norm: "
      f"{', '.join(str(i) for i in np.argsort(-np.linalg.norm(W, axis=(1, 2)))[:5])}")
print(f"wrote {path}")
