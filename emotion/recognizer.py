"""EmotionRecognizer: an image in, one ``FaceResult`` (box, probabilities, label) per face out.

    from emotion.recognizer import EmotionRecognizer
    rec = EmotionRecognizer()                  # loads emotion/weights/default.npz
    for face in rec.analyze("group.jpg"):      # a path, or a BGR / gray ndarray
        print(face.box, face.label, round(face.score, 2))

The pipeline is the one training used: detect (``faces``) -> square crop with the FER margin
(turned so the eyes are level, with ``align=True``)
-> uint8 (N, 48, 48) -> per-image standardisation and TTA (``preprocess.predict_proba``) ->
model in eval mode. All faces of one image go through the network as one batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import minicnn
from emotion.cli import not_a_file
from emotion.faces import (
    DEFAULT_MARGIN,
    DEFAULT_MIN_SIZE,
    Box,
    FaceDetector,
    HaarDetector,
    crop_faces,
    to_gray,
)
from emotion.images import decode_image
from emotion.labels import CLASSES
from emotion.preprocess import DEFAULT_TTA, INPUT_SIZE, PREPROCESSING, TTA_MODES, predict_proba
from minicnn.fuse import fold_batchnorm

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.npz"

ImageLike = np.ndarray | str | os.PathLike


@dataclass(frozen=True)
class FaceResult:
    """One face and what the model thinks of it.

    Attributes
    ----------
    box : (x, y, w, h) of the detected face in the image, in pixels; None for a face given
        to ``classify_faces`` already cropped.
    probabilities : class name -> probability for all 7 ``labels.CLASSES``, in that order;
        they sum to 1.
    label : the most probable class.
    score : its probability.
    """

    box: Box | None
    probabilities: dict[str, float]
    label: str
    score: float

    @classmethod
    def from_probs(cls, probs: np.ndarray, box: Box | None = None) -> FaceResult:
        """Build from one row of probabilities (7,) in ``CLASSES`` order."""
        k = int(np.argmax(probs))
        return cls(box=None if box is None else tuple(int(v) for v in box),
                   probabilities={c: float(p) for c, p in zip(CLASSES, probs)},
                   label=CLASSES[k], score=float(probs[k]))

    def to_dict(self) -> dict:
        """JSON-ready: {"box": [x, y, w, h] or null, "label", "score", "probabilities"}."""
        return {"box": None if self.box is None else list(self.box), "label": self.label,
                "score": self.score, "probabilities": dict(self.probabilities)}


# ------------------------------------------------------------------------------- loading
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 BGR (H, W, 3) with ``images.decode_image``, the reader
    the training loader uses too.

    Raises FileNotFoundError naming the path when it does not exist (or is a folder), and
    ValueError naming it when OpenCV cannot decode it (not an image, truncated, empty) or
    it is larger than ``images.MAX_IMAGE_PIXELS`` (checked before decoding). Non-ASCII
    paths work on every platform; IMREAD_COLOR applies the EXIF orientation of phone photos.
    """
    return decode_image(path, cv2.IMREAD_COLOR)


def load_weights(weights: str | os.PathLike | None = None):
    """Load and check an emotion model; ``None`` means the shipped ``DEFAULT_WEIGHTS``.

    Checks that the file says it was trained on our 7 classes in our order, on 48x48 input
    with our preprocessing, and that the network really maps (1, 1, 48, 48) to 7 scores: a
    model trained elsewhere would otherwise give confident, wrongly labelled answers.

    Raises FileNotFoundError for a missing file (for the default, saying how to train one)
    and ``minicnn.WeightsError`` (a ValueError) naming the file for anything else wrong.
    """
    if weights is None:
        path = DEFAULT_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(
                f"no trained weights at {path}; train a model with `python -m emotion.train` "
                f"and copy its best.npz there, or pass weights=/--weights PATH")
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {not_a_file(path, 'weights file')}")
    model = minicnn.load(path)
    meta = model.metadata
    if not isinstance(meta.get("classes"), list) or meta["classes"] != list(CLASSES):
        raise minicnn.WeightsError(
            f"{path}: the model's classes {meta.get('classes')} are not {list(CLASSES)}; "
            f"was it trained with emotion.train?")
    if meta.get("input_size", INPUT_SIZE) != INPUT_SIZE:
        raise minicnn.WeightsError(f"{path}: the model expects {meta['input_size']}x"
                                   f"{meta['input_size']} input, not {INPUT_SIZE}x{INPUT_SIZE}")
    if meta.get("preprocessing", PREPROCESSING) != PREPROCESSING:
        raise minicnn.WeightsError(f"{path}: the model was trained with preprocessing "
                                   f"{meta['preprocessing']!r}, this code does {PREPROCESSING!r}")
    try:
        out = model.predict_proba(np.zeros((1, 1, INPUT_SIZE, INPUT_SIZE), np.float32))
    except Exception as exc:  # any shape error inside the network means the same thing
        raise minicnn.WeightsError(f"{path}: the network does not accept (1, 1, 48, 48) "
                                   f"input ({exc})") from None
    if out.shape != (1, len(CLASSES)):
        raise minicnn.WeightsError(f"{path}: the network outputs {out.shape[1]} scores, "
                                   f"expected {len(CLASSES)}")
    return model


# ---------------------------------------------------------------------------- recognizer
class EmotionRecognizer:
    """Find faces in images and classify their expression.

    Parameters
    ----------
    weights : a model file from ``emotion.train``; None loads ``DEFAULT_WEIGHTS``.
    detector : any ``FaceDetector``; None builds a ``HaarDetector`` with ``min_face_size``.
    tta : test-time augmentation, one of ``preprocess.TTA_MODES``: "crops" (the default)
        averages ten views, the face and its mirror image each shifted 2 pixels four ways;
        "flip" the face and its mirror only, about 4x cheaper (the webcam's choice).
    min_face_size : faces whose longer side is below this many pixels are dropped, whatever
        the detector.
    largest_only : keep only the largest face of each image.
    margin : crop margin, see ``faces.crop_face``.
    align : turn each face so that its eyes are level before the network, when the eye
        cascade finds both (``faces.crop_faces(align=True)``). Off by default: on FER2013
        test faces turned by up to 20 degrees it gained 0.1 point of accuracy (levelling
        by the true angle: 0.75) for an eye search per face and frame (benchmarks/README.md).
    """

    def __init__(self, weights: str | os.PathLike | None = None,
                 detector: FaceDetector | None = None, tta: str = DEFAULT_TTA,
                 min_face_size: int = DEFAULT_MIN_SIZE, largest_only: bool = False,
                 margin: float = DEFAULT_MARGIN, align: bool = False) -> None:
        self._setup(load_weights(weights), detector, tta, min_face_size, largest_only, margin,
                    align)
        self.weights_path = DEFAULT_WEIGHTS if weights is None else Path(weights)

    @classmethod
    def from_model(cls, model, detector: FaceDetector | None = None, tta: str = DEFAULT_TTA,
                   min_face_size: int = DEFAULT_MIN_SIZE, largest_only: bool = False,
                   margin: float = DEFAULT_MARGIN, align: bool = False) -> EmotionRecognizer:
        """Wrap a model already in memory (fresh from training, or untrained for a
        benchmark) instead of loading a file. Its metadata is not checked: the caller vouches
        that it maps (N, 1, 48, 48) to the 7 ``CLASSES`` scores. The recognizer works on an
        inference copy (``self.model``), so later changes to ``model`` do not reach it."""
        self = cls.__new__(cls)
        self._setup(model, detector, tta, min_face_size, largest_only, margin, align)
        self.weights_path = None
        return self

    def _setup(self, model, detector: FaceDetector | None, tta: str, min_face_size: int,
               largest_only: bool, margin: float, align: bool = False) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"unknown test-time augmentation {tta!r}; choose from {TTA_MODES}")
        # Inference copy: batch norm folded into the convolutions (minicnn.fuse), the same
        # function with two fewer passes over each feature map.
        self.model = fold_batchnorm(model)
        self.detector = detector if detector is not None else HaarDetector(
            min_size=min_face_size, largest_only=largest_only)
        self.tta, self.min_face_size = tta, min_face_size
        self.largest_only, self.margin, self.align = largest_only, margin, align
        self.classes: tuple[str, ...] = CLASSES

    # -- the two steps, exposed separately so that callers can time them (benchmarks)
    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes in a uint8 gray (H, W) or BGR (H, W, 3) image, filtered by the
        recognizer's ``min_face_size`` and ``largest_only``, sorted left to right."""
        boxes = [tuple(int(v) for v in b) for b in self.detector.detect(image)]
        boxes = [b for b in boxes if max(b[2], b[3]) >= self.min_face_size]
        if self.largest_only and boxes:
            boxes = [max(boxes, key=lambda b: b[2] * b[3])]
        return sorted(boxes, key=lambda b: (b[0], b[1]))

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> probabilities (N, 7) in ``CLASSES`` order, one batch."""
        return predict_proba(self.model, faces, tta=self.tta)

    # -- the public calls
    def analyze(self, image: ImageLike) -> list[FaceResult]:
        """Every face in an image, with its emotion probabilities.

        Inputs
        ------
        image : a path (str or Path) to an image file, or an ndarray: uint8 BGR (H, W, 3),
            BGRA (H, W, 4) or gray (H, W).

        Returns
        -------
        One ``FaceResult`` per face, left to right; [] when there is no face.

        Raises FileNotFoundError (missing file) or ValueError (not an image, empty array)
        with the path or shape in the message.
        """
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        image = np.asarray(image)
        if image.size == 0:
            raise ValueError(f"empty image (shape {image.shape})")
        gray = to_gray(image)  # validates the shape and dtype
        # YuNet wants colour, Haar converts; give the detector the richest image we have.
        boxes = self.detect(image if image.ndim == 3 and image.dtype == np.uint8 else gray)
        if not boxes:
            return []
        probs = self.predict_faces(crop_faces(gray, boxes, self.margin, align=self.align))
        return [FaceResult.from_probs(p, box) for p, box in zip(probs, boxes)]

    def classify_faces(self, crops: np.ndarray | Sequence[np.ndarray]) -> list[FaceResult]:
        """Classify faces that are already cropped (no detection).

        Inputs
        ------
        crops : an array (N, H, W) or (N, H, W, 3), or a list of gray/BGR/BGRA arrays of any
            sizes; each is converted to gray and resized to 48x48 (INTER_AREA), the way the
            FER2013 loader prepares training images. Crop them like FER2013: tight, square,
            forehead to chin.

        Returns
        -------
        One ``FaceResult`` per crop with ``box=None``, in input order. Raises ValueError
        naming the index of an empty or malformed crop.
        """
        faces = np.empty((len(crops), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
        for i, crop in enumerate(crops):
            try:
                gray = to_gray(crop)
            except ValueError as exc:
                raise ValueError(f"crop {i}: {exc}") from None
            if gray.shape != (INPUT_SIZE, INPUT_SIZE):
                gray = cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
            faces[i] = gray
        return [FaceResult.from_probs(p) for p in self.predict_faces(faces)]
