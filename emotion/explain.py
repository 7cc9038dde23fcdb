"""python -m emotion.explain: where in a face the model looks, as Grad-CAM and saliency maps.

    python -m emotion.explain photo.jpg --out explained/
    python -m emotion.explain fer_face.png --whole-image     # an already-cropped face

For each detected face, one PNG with four panels: the 48x48 face the network saw, a
Grad-CAM heat map over it, a vanilla-gradient saliency map, and the class probabilities.
The predicted class and its probabilities are also printed.

The PNGs are named ``OUT_DIR/<stem>_face<i>.png``. When two inputs share a stem (``x/me.jpg``
and ``y/me.png``), the later one's files get a number, ``me-2_face0.png``, ...; the same
happens when a name would be one of the inputs, so an input is never overwritten.

The two maps, both for the predicted class's score s (the logit, before softmax):

* Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization"). Take the feature maps A (C, h, w) of the last
  convolutional stage and the gradient G = ds/dA. Each channel's weight is its average
  gradient, alpha_c = mean(G_c); the map is ReLU(sum_c alpha_c * A_c), upsampled to 48x48.
  Coarse (6x6 for the default model) but class-specific: "which region made it say happy".
* Saliency (Simonyan et al., 2014, "Deep Inside Convolutional Networks"): |ds/dx| for every
  input pixel, "which pixels would change the score fastest". Sharp but noisy.

Both come straight from the hand-written backward passes: ``Sequential.record`` keeps each
layer's output and the gradient flowing into it, and nothing in the layers changes.

Exit status: 0 when every image was read (an image with no face is reported, not an error),
2 for a missing or unreadable image or unusable weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from emotion.cli import Bounded, path_text, run
from emotion.faces import DEFAULT_MIN_SIZE, DetectorError, crop_faces, make_detector, to_gray
from emotion.outputs import OutputNamer, check_folder, training_checkpoint_hint
from emotion.plots import plt, save_figure
from emotion.preprocess import INPUT_SIZE, to_model_input
from emotion.recognizer import EmotionRecognizer, read_image
from minicnn import Sequential
from minicnn.functional.loss import softmax
from minicnn.layers import BatchNorm2D, Conv2D, ReLU

EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Explanation:
    """One input's maps, each (H, W) float32 in [0, 1] at the input's size.

    Attributes
    ----------
    class_index : the class explained (by default the predicted one).
    probabilities : softmax over the classes (K,) for this input alone (no TTA).
    cam : Grad-CAM map; all zeros when no region raises the class score.
    saliency : |d score / d pixel|, max over input channels, scaled so the largest is 1.
    """

    class_index: int
    probabilities: np.ndarray
    cam: np.ndarray
    saliency: np.ndarray


def last_conv_stage(model: Sequential) -> int:
    """Index of the layer whose output Grad-CAM uses: the last Conv2D, followed through the
    BatchNorm2D and ReLU right after it (the last feature maps before pooling and the head)."""
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]
    if not convs:
        raise ValueError("Grad-CAM needs a model with at least one Conv2D layer")
    i = convs[-1]
    while i + 1 < len(model.layers) and isinstance(model.layers[i + 1], (BatchNorm2D, ReLU)):
        i += 1
    return i


def _unit(m: np.ndarray) -> np.ndarray:
    """Scale a non-negative map so its maximum is 1 (an all-zero map stays zero)."""
    top = float(m.max())
    return (m / top if top > 0 else np.zeros_like(m)).astype(np.float32)


def explain(model: Sequential, x: np.ndarray, class_index: Sequence[int] | None = None,
            layer: int | None = None) -> list[Explanation]:
    """Grad-CAM and saliency for a batch of network inputs.

    Inputs
    ------
    model : any ``Sequential`` with a Conv2D; run in eval mode here (its mode is restored).
    x : float network input (N, C, H, W), e.g. ``preprocess.to_model_input(faces)``.
    class_index : the class to explain for each input; None explains the predicted class.
    layer : index of the layer whose output Grad-CAM uses; None means ``last_conv_stage``.

    In eval mode every sample passes through the network independently (batch norm uses its
    running statistics, dropout is off), so backpropagating the sum of the chosen scores
    gives each sample exactly its own gradients.
    """
    if x.ndim != 4:
        raise ValueError(f"expected network input (N, C, H, W), got shape {x.shape}")
    layer = last_conv_stage(model) if layer is None else layer
    was_training = model.training
    model.eval()
    try:
        with model.record() as rec:
            logits = model.forward(x)
            chosen = (logits.argmax(axis=1) if class_index is None
                      else np.asarray(class_index, dtype=np.int64).reshape(-1))
            if chosen.shape != (len(x),):
                raise ValueError(f"need one class index per input ({len(x)}), got {chosen.shape}")
            dscore = np.zeros_like(logits)
            dscore[np.arange(len(x)), chosen] = 1.0  # d(sum of chosen scores)/d(logits)
            model.backward(dscore, need_input_grad=True)
    finally:
        if was_training:
            model.train()
    features, grads = rec.outputs[layer], rec.output_grads[layer]
    if features.ndim != 4:
        raise ValueError(f"layer {layer} ({type(model.layers[layer]).__name__}) outputs "
                         f"shape {features.shape}, not feature maps (N, C, h, w)")
    weights = grads.mean(axis=(2, 3))                                   # (N, C) alpha_c
    cams = np.maximum(np.einsum("nc,nchw->nhw", weights, features), 0)  # (N, h, w)
    saliency = np.abs(rec.input_grad).max(axis=1)                       # (N, H, W)
    probs = softmax(logits)
    size = (x.shape[3], x.shape[2])
    return [Explanation(class_index=int(k), probabilities=p.astype(np.float32),
                        cam=_unit(cv2.resize(cam.astype(np.float32), size,
                                             interpolation=cv2.INTER_LINEAR)),
                        saliency=_unit(s))
            for k, p, cam, s in zip(chosen, probs, cams, saliency)]


# ---------------------------------------------------------------------------- pictures
def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float image (H, W, 3) in [0, 1]: a gray uint8 face under a jet-coloured map."""
    gray = np.repeat((face.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    colour = plt.get_cmap("jet")(heat)[..., :3]
    return np.clip((1 - alpha) * gray + alpha * colour, 0.0, 1.0)


def plot_explanation(face: np.ndarray, exp: Explanation, classes: Sequence[str], path,
                     title: str = "", probabilities: np.ndarray | None = None) -> None:
    """Write one PNG: face, Grad-CAM overlay, saliency, probability bars (atomic write).

    ``probabilities`` (K,) overrides ``exp.probabilities`` in the bar chart (for example the
    recognizer's TTA-averaged ones, so the picture agrees with ``emotion.predict``)."""
    probs = exp.probabilities if probabilities is None else np.asarray(probabilities)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.3], "wspace": 0.5})
    axes[0].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input (48x48)")
    axes[1].imshow(overlay(face, exp.cam))
    axes[1].set_title(f"Grad-CAM: {classes[exp.class_index]}")
    axes[2].imshow(exp.saliency, cmap="hot", vmin=0, vmax=1)
    axes[2].set_title("saliency |d score / d pixel|")
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    colours = ["tab:orange" if i == exp.class_index else "tab:blue" for i in range(len(probs))]
    axes[3].barh(range(len(probs)), 100 * probs, color=colours)
    axes[3].set_yticks(range(len(probs)), classes)
    axes[3].invert_yaxis()
    axes[3].set(xlim=(0, 100), xlabel="probability (%)", title="prediction")
    for i, p in enumerate(probs):
        axes[3].text(min(100 * p + 2, 80), i, f"{100 * p:.1f}%", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


# --------------------------------------------------------------------------------- CLI
def face_png_names(out_dir: Path, stem: str, n: int, k: int = 1) -> list[Path]:
    """The PNG names for an input's n faces: ``<stem>_face<i>.png``, or with k > 1 (a name
    taken by another input of the run, or an input itself) ``<stem>-<k>_face<i>.png``."""
    prefix = stem if k == 1 else f"{stem}-{k}"
    return [out_dir / f"{prefix}_face{i}.png" for i in range(n)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.explain",
        description="For each face in an image: the predicted emotion, a Grad-CAM heat map "
                    "and a saliency map, saved as one PNG per face.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", type=path_text, metavar="W",
                   help="model file (default: the shipped model)")
    p.add_argument("--out", type=path_text, metavar="DIR", default="explained",
                   help="folder for the PNGs, named <stem>_face<i>.png (default: explained/); "
                        "inputs with the same stem get <stem>-2_face<i>.png, ...; inputs are "
                        "never overwritten")
    p.add_argument("--whole-image", action="store_true",
                   help="skip face detection: the whole image is one face (for crops such as "
                        "FER2013's 48x48 images)")
    p.add_argument("--yunet", type=path_text, metavar="MODEL.onnx",
                   help="use OpenCV's YuNet face detector with this model instead of Haar")
    p.add_argument("--min-face", type=Bounded(int, low=1), default=DEFAULT_MIN_SIZE,
                   metavar="N",
                   help=f"ignore faces smaller than N pixels (default {DEFAULT_MIN_SIZE})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)
    try:
        detector = make_detector(args.yunet, args.min_face, False)
        recognizer = EmotionRecognizer(args.weights, detector=detector,
                                       min_face_size=args.min_face)
    except (OSError, ValueError) as exc:
        print(f"error: {training_checkpoint_hint(args.weights) or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    out_dir = Path(args.out)
    try:  # a file in its place or an unwritable folder: say so before any work
        check_folder(out_dir, "--out")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    namer = OutputNamer(args.images)
    failed = 0
    for name in args.images:
        path = Path(name)
        try:
            image = read_image(path)
            gray = to_gray(image)
            if args.whole_image:
                faces = cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
                faces, boxes = faces[None], [None]
            else:
                boxes = recognizer.detect(image)
                faces = crop_faces(gray, boxes, recognizer.margin) if boxes else None
        except DetectorError as exc:  # would fail on every image: say it once and stop
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except (OSError, ValueError) as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            print(f"error: {message}", file=sys.stderr)
            failed += 1
            continue
        if faces is None:
            print(f"{path}: no face found (for an image that is already a face crop, "
                  f"pass --whole-image)")
            continue
        # The label and probabilities come from the recognizer (with its TTA), so they match
        # emotion.predict; the maps explain that class on the face itself.
        probs = recognizer.predict_faces(faces)
        exps = explain(recognizer.model, to_model_input(faces), probs.argmax(axis=1))
        targets = namer.claim_group(partial(face_png_names, out_dir, path.stem, len(faces)))
        for i, (face, exp, p, box, target) in enumerate(zip(faces, exps, probs, boxes, targets)):
            where = "whole image" if box is None else "box (" + ", ".join(map(str, box)) + ")"
            label = recognizer.classes[exp.class_index]
            try:  # a folder in the PNG's place, a full disk, ...: this face fails, not the run
                out_dir.mkdir(parents=True, exist_ok=True)
                plot_explanation(face, exp, recognizer.classes, target, probabilities=p,
                                 title=f"{path.name}, face {i} ({where}): {label} "
                                       f"{100 * p.max():.0f}%")
            except OSError as exc:
                print(f"error: {target}: cannot write it ({exc.strerror or exc})",
                      file=sys.stderr)
                failed += 1
                continue
            ranked = sorted(zip(recognizer.classes, p), key=lambda t: -t[1])
            print(f"{path} face {i} {where}: {label}  ("
                  + ", ".join(f"{c} {100 * q:.1f}%" for c, q in ranked) + f") -> {target}")
    if failed:
        print(f"{failed} image(s) failed; see the errors above", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
