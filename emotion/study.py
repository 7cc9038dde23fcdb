"""Shared inputs for the study examples in ``examples/``: a model and some faces.

    model, about = study_model()             # the shipped model, or a quick synthetic one
    faces, labels, source = study_faces(8)   # FER2013 test faces if present, else synthetic

Each example can run on the shipped model (what a trained network really learned) or, with
``--quick``, on a small network trained for a few seconds on synthetic faces, so that every
example also runs on a machine without the data or the weights (and in the smoke tests).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import minicnn
from emotion.cli import path_text
from emotion.labels import CLASSES
from emotion.models import build
from emotion.preprocess import to_model_input
from emotion.recognizer import DEFAULT_WEIGHTS, load_weights
from emotion.synthetic import make_synthetic
from minicnn.optim import Adam

# Where the examples look for FER2013 when $FER2013_DIR and emotion.train's default
# locations have nothing: this project's development layout (the repo next to shared/).
DEV_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"


def fer2013_dir() -> Path:
    from emotion.train import find_data

    return find_data(None) or DEV_DATA


def example_parser(description: str, study: bool = True) -> argparse.ArgumentParser:
    """The options every example takes: --out; with ``study`` (the examples that look at a
    trained model or at faces) also --quick and --synthetic."""
    p = argparse.ArgumentParser(description=description)
    if study:
        p.add_argument("--quick", action="store_true",
                       help="small sizes and a small network trained for seconds on synthetic "
                            "faces (no weights or data needed)")
        p.add_argument("--synthetic", action="store_true",
                       help="use synthetic faces even when FER2013 is available")
    p.add_argument("--out", type=path_text, default="examples_out", metavar="DIR",
                   help="folder for the PNG (default: examples_out/)")
    return p


def train_quick(steps: int = 80, seed: int = 0, batch: int = 64) -> minicnn.Sequential:
    """The ``small`` network after ``steps`` Adam steps on synthetic faces (a few seconds)."""
    faces, labels = make_synthetic(60, seed)
    x = to_model_input(faces)
    model = build("small", rng=seed)
    loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(x), batch, replace=False)
        loss_fn(model.forward(x[idx]), labels[idx])
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step(model.gradients())
    return model.eval()


def study_model(quick: bool = False) -> tuple[minicnn.Sequential, str]:
    """(model in eval mode, a phrase saying which one). The shipped model unless ``quick`` or
    it is missing, in which case a small one is trained on synthetic faces."""
    if not quick and DEFAULT_WEIGHTS.is_file():
        return load_weights().eval(), f"the shipped model ({DEFAULT_WEIGHTS.name})"
    why = "--quick" if quick else f"no shipped weights at {DEFAULT_WEIGHTS}"
    return train_quick(), f"a small network trained for seconds on synthetic faces ({why})"


def study_faces(n: int, synthetic: bool = False, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """n uint8 faces (n, 48, 48) with labels, one class after another, and their source.

    FER2013 test faces (a fixed random pick per seed) when a FER2013 folder with ``test/`` is
    found ($FER2013_DIR, emotion.train's default locations, or ``DEV_DATA``) and ``synthetic``
    is False; otherwise procedurally drawn faces."""
    import cv2

    test = fer2013_dir() / "test"
    if not synthetic and test.is_dir():
        faces, labels = [], []
        files = {c: sorted((test / c).glob("*.jpg")) for c in CLASSES}
        rng = np.random.default_rng(seed)
        for i in range(n):
            k = i % len(CLASSES)
            candidates = files[CLASSES[k]]
            if not candidates:
                continue
            path = candidates[rng.integers(len(candidates))]
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is not None and image.shape == (48, 48):
                faces.append(image)
                labels.append(k)
        if faces:
            return np.stack(faces), np.array(labels), f"FER2013 test faces from {test}"
    faces, labels = make_synthetic(max(1, -(-n // len(CLASSES))), seed)
    order = np.argsort(labels, kind="stable")
    per_class = [order[labels[order] == k] for k in range(len(CLASSES))]
    pick = [per_class[i % len(CLASSES)][i // len(CLASSES)] for i in range(n)]
    return faces[pick], labels[pick], "synthetic faces (emotion.synthetic)"


def output_path(out: str | os.PathLike, name: str) -> Path:
    """``out/name``, creating the folder."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
