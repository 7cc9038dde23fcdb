"""What each training augmentation does to a face, one at a time and all together.

``emotion.augment`` turns one face into endless plausible variants, so a network trained for
many epochs never sees exactly the same image twice. Each column below switches on ONE of
the transforms of ``AugmentConfig()`` (at its strength there, with the same random draws
for every face) and the last column applies all of them. FER2013 training by default
(``--photo-augment``, ``AugmentConfig.photo()``) also tilts by up to 15 degrees and adds the
faults of real photos: gamma curves, blur and JPEG re-compression. The printed numbers are
how far each one moves the pixels, as the mean absolute change in grey levels.

Run: python examples/07_augmentation.py [--quick] [--synthetic] [--out DIR]
"""

import dataclasses

import numpy as np

from emotion.augment import AugmentConfig, augment_batch
from emotion.labels import CLASSES
from emotion.plots import plt, save_figure
from emotion.study import example_parser, output_path, study_faces

args = example_parser(__doc__.splitlines()[0]).parse_args()
faces, labels, source = study_faces(3 if args.quick else 5, args.synthetic, seed=1)

full = AugmentConfig()
off = dict(flip_p=0.0, max_shift=0.0, max_rotation=0.0, scale_range=(1.0, 1.0),
           brightness=0.0, contrast=0.0, erase_p=0.0)
only = {  # each: everything off except one transform, at the training strength
    "flip": dict(flip_p=1.0),
    f"shift ±{full.max_shift:g}px": dict(max_shift=full.max_shift),
    f"rotate ±{full.max_rotation:g}°": dict(max_rotation=full.max_rotation),
    "scale {:g}-{:g}".format(*full.scale_range): dict(scale_range=full.scale_range),
    "brightness+contrast": dict(brightness=full.brightness, contrast=full.contrast),
    "random erasing": dict(erase_p=1.0),
}
columns = {"original": faces}
for name, knobs in only.items():
    config = dataclasses.replace(full, **{**off, **knobs})
    columns[name] = augment_batch(faces, np.random.default_rng(7), config)
columns["full recipe"] = augment_batch(faces, np.random.default_rng(7), full)

fig, axes = plt.subplots(len(faces), len(columns), figsize=(1.5 * len(columns), 1.6 * len(faces)))
for col, (name, images) in enumerate(columns.items()):
    for row in range(len(faces)):
        ax = axes[row, col]
        ax.imshow(images[row], cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(name, fontsize=7)
        if col == 0:
            ax.set_ylabel(CLASSES[labels[row]], fontsize=8)
fig.suptitle(f"training augmentations; faces: {source}", fontsize=9)
path = output_path(args.out, "07_augmentation.png")
save_figure(fig, path)

print(f"faces: {source}")
for name, images in columns.items():
    if name != "original":
        change = np.abs(images.astype(np.float32) - faces).mean()
        print(f"{name:<22} mean |change| {change:5.1f} grey levels")
print(f"wrote {path}")
