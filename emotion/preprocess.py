"""The one preprocessing step between a 48x48 uint8 face and the network, shared by
training, evaluation and inference so that all three see identical inputs, plus test-time
augmentation (TTA).

Per-image standardisation: each face is shifted to zero mean and scaled to unit standard
deviation. This removes global brightness and contrast, the largest nuisance in FER2013
and in webcam frames, so the network spends its capacity on shape. (A floor on the
standard deviation keeps a flat, featureless crop from being blown up into noise.)
"""

from __future__ import annotations

import numpy as np

PREPROCESSING = "per_image_standardize"
INPUT_SIZE = 48
_MIN_STD = 4.0  # grey levels; below this a crop is essentially flat


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """uint8 faces (N, 48, 48) -> float32 network input (N, 1, 48, 48)."""
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected faces of shape (N, 48, 48), got {faces.shape}")
    x = faces.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2), keepdims=True), _MIN_STD)
    x -= mean
    x /= std
    return x[:, None]


TTA_MODES = ("none", "flip", "crops")
# Photos get ten crops (0.5 points above flip for the shipped model, for about 4x the
# network time: see its model card); the webcam and video files keep flip for frame rate.
DEFAULT_TTA = "crops"


def tta_views(faces: np.ndarray, mode: str = "flip") -> list[np.ndarray]:
    """The views whose predicted probabilities are averaged.

    none  : the face itself
    flip  : the face and its mirror image (faces are roughly symmetric; 2 views)
    crops : the face and its mirror, each also shifted by 2 pixels in 4 directions
            with edge replication (10 views)
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose from {TTA_MODES}")
    views = [faces]
    if mode in ("flip", "crops"):
        views.append(faces[:, :, ::-1])
    if mode == "crops":
        padded = np.pad(faces, ((0, 0), (2, 2), (2, 2)), mode="edge")
        mirrored = padded[:, :, ::-1]
        for src in (padded, mirrored):
            for dy, dx in ((0, 2), (4, 2), (2, 0), (2, 4)):
                views.append(src[:, dy:dy + INPUT_SIZE, dx:dx + INPUT_SIZE])
    return [np.ascontiguousarray(v) for v in views]


def predict_proba(model, faces: np.ndarray, tta: str = "flip", batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, K) for uint8 faces (N, 48, 48), averaged over TTA views."""
    if len(faces) == 0:
        return np.zeros((0, model.layers[-1].config().get("out_features", 7)), np.float32)
    views = tta_views(faces, tta)
    # All views go through the network as ONE batch: for a webcam frame with one face, one
    # forward pass of 2 images costs much less than two passes of 1 (per-layer overheads).
    probs = model.predict_proba(to_model_input(np.concatenate(views)), batch_size)
    return probs.reshape(len(views), len(faces), -1).mean(axis=0)
