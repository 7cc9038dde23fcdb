"""Test inputs shared by the face, recognizer, predict and webcam tests, all built in code.

* ``fer_face_files`` / ``place_faces``: real FER2013 test faces, upscaled and placed on a
  larger canvas, for tests that need the Haar cascade to find a face (skip without data).
* ``synthetic_canvas``: procedurally drawn faces (``emotion.synthetic``) placed the same
  way; Haar does not reliably see them, so such tests use ``FakeDetector``.
* ``save_small_model``: an untrained ``small`` network saved with the metadata
  ``emotion.train`` writes; its predictions are arbitrary but valid probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emotion.labels import CLASSES
from emotion.models import build
from emotion.preprocess import INPUT_SIZE, PREPROCESSING
from emotion.synthetic import make_synthetic

FER2013_DIR = Path(os.environ.get(
    "FER2013_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"))
FER_TEST = FER2013_DIR / "test"

Box = tuple[int, int, int, int]


def fer_face_files(n: int, stride: int = 97) -> list[Path]:
    """n FER2013 test files spread over all classes, in a fixed order."""
    files = sorted(FER_TEST.glob("*/*.jpg"))
    return files[::stride][:n]


def place(canvas: np.ndarray, face: np.ndarray, box: Box) -> None:
    """Resize a 48x48 face to the box (square) and paste it in, in place."""
    x, y, w, h = box
    canvas[y:y + h, x:x + w] = cv2.resize(face, (w, h), interpolation=cv2.INTER_CUBIC)


def _row_boxes(n: int, size: int, canvas: tuple[int, int]) -> list[Box]:
    """n square boxes side by side, evenly spaced and vertically centred."""
    h, w = canvas
    gap = (w - n * size) // (n + 1)
    assert gap >= 0, "faces do not fit on the canvas"
    y = (h - size) // 2
    return [(gap + i * (size + gap), y, size, size) for i in range(n)]


def place_faces(files: Sequence[Path], size: int = 180,
                canvas: tuple[int, int] = (360, 480)) -> tuple[np.ndarray, list[Box]]:
    """FER faces from files, upscaled to size x size, side by side on a gray canvas (H, W).

    The canvas is mid-gray with mild noise (a perfectly flat background is unrealistic).
    Returns the uint8 canvas and the placed boxes, left to right.
    """
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 6, canvas), 0, 255).astype(np.uint8)
    boxes = _row_boxes(len(files), size, canvas)
    for f, box in zip(files, boxes):
        place(img, cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), box)
    return img, boxes


def synthetic_canvas(n_faces: int, size: int = 120, canvas: tuple[int, int] = (240, 480),
                     seed: int = 0, color: bool = True) -> tuple[np.ndarray, list[Box]]:
    """Synthetic faces placed like ``place_faces``; BGR (H, W, 3) when color, else gray."""
    faces, _ = make_synthetic(1, seed)
    img = np.full(canvas, 100, np.uint8)
    boxes = _row_boxes(n_faces, size, canvas)
    for i, box in enumerate(boxes):
        place(img, faces[i % len(faces)], box)
    return (cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else img), boxes


class FakeDetector:
    """A detector that returns given boxes: fixed ones, or one list per call in turn."""

    def __init__(self, boxes: Sequence[Box] | None = None,
                 per_call: Sequence[Sequence[Box]] | None = None) -> None:
        self.boxes = list(boxes or [])
        self.per_call = list(per_call) if per_call is not None else None
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        self.calls += 1
        if self.per_call is not None:
            return list(self.per_call[min(self.calls - 1, len(self.per_call) - 1)])
        return list(self.boxes)


def small_model_metadata(**changes) -> dict:
    meta = {"classes": list(CLASSES), "input_size": INPUT_SIZE, "preprocessing": PREPROCESSING,
            "arch": "small"}
    meta.update(changes)
    return meta


def save_small_model(path: Path, **metadata_changes) -> Path:
    """An untrained ``small`` model (seed 0) saved as emotion.train would; returns path."""
    build("small", 0).save(path, metadata=small_model_metadata(**metadata_changes))
    return path
