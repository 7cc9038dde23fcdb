"""Feature maps of each stage for one face: what the network keeps as the image shrinks.

Stage 1 still looks like the face (edges and shading at 24x24). Each later stage halves
the size and doubles the channels: the maps get coarser and more abstract, until the last
stage (3x3) says "there is a smiling mouth down here" rather than where each edge is. The
ReLU zeros are real: the share of zero activations per stage is printed, and sparse codes
are typical of trained ReLU networks.

The face: a smile only means something on a face the network reads as one, so the script
takes the first happy face (in ``study_faces``' fixed random pick of FER2013 test faces,
or of synthetic faces without the data) that the model predicts as happy. If it gets none
of them right, the first face of any class it predicts correctly is used, and the printed
line says which was chosen and why.

Run: python examples/05_feature_maps.py [--quick] [--synthetic] [--out DIR]
"""

import numpy as np

from emotion.labels import CLASSES
from emotion.plots import plt, save_figure
from emotion.preprocess import to_model_input
from emotion.study import example_parser, output_path, study_faces, study_model
from minicnn.functional.loss import softmax
from minicnn.layers import MaxPool2D

SHOW = 8  # channels per stage: the most active ones

args = example_parser(__doc__.splitlines()[0]).parse_args()
model, about = study_model(args.quick)
candidates, candidate_labels, source = study_faces(6 * len(CLASSES), args.synthetic, seed=3)
predicted = softmax(model.forward(to_model_input(candidates))).argmax(axis=1)
HAPPY = CLASSES.index("happy")
right = predicted == candidate_labels
happy_right = np.flatnonzero(right & (candidate_labels == HAPPY))
if happy_right.size:
    pick, why = int(happy_right[0]), "the first happy face the model predicts as happy"
elif right.any():
    pick, why = int(np.flatnonzero(right)[0]), "no happy face predicted happy; the first face " \
        "the model gets right"
else:
    pick, why = 0, "the model gets none of these faces right; the first one"
faces, labels = candidates[pick:pick + 1], candidate_labels[pick:pick + 1]
with model.record() as rec:  # the model is in eval mode: running batch-norm statistics
    probs = softmax(model.forward(to_model_input(faces)))[0]
stages = [i for i, layer in enumerate(model.layers) if isinstance(layer, MaxPool2D)]

fig, axes = plt.subplots(len(stages), SHOW + 1, figsize=(1.6 * (SHOW + 1), 1.8 * len(stages)))
axes = np.atleast_2d(axes)
print(f"model: {about}\nface: {source}, #{pick} of {len(candidates)} ({why}): true class "
      f"{CLASSES[labels[0]]}, predicted {CLASSES[int(np.argmax(probs))]} "
      f"({100 * probs.max():.0f}%)")
for row, i in enumerate(stages):
    maps = rec.outputs[i][0]  # (C, h, w) after this stage's pooling
    order = np.argsort(-maps.mean(axis=(1, 2)))[:SHOW]
    zeros = float((maps == 0).mean())
    print(f"stage {row + 1} (layer {i}): {maps.shape[0]} maps of {maps.shape[1]}x"
          f"{maps.shape[2]}, {100 * zeros:.0f}% zeros")
    axes[row, 0].imshow(faces[0], cmap="gray")
    axes[row, 0].set_title("input" if row == 0 else "", fontsize=8)
    axes[row, 0].set_ylabel(f"stage {row + 1}\n{maps.shape[1]}x{maps.shape[2]}", fontsize=8)
    for col, c in enumerate(order, start=1):
        axes[row, col].imshow(maps[c], cmap="viridis")
        axes[row, col].set_title(f"ch {c}", fontsize=7)
    for ax in axes[row]:
        ax.set_xticks([])
        ax.set_yticks([])
fig.suptitle(f"the {SHOW} most active feature maps after each stage\n{about}", fontsize=9)
path = output_path(args.out, "05_feature_maps.png")
save_figure(fig, path)
print(f"wrote {path}")
