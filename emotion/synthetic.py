"""Procedurally drawn 48x48 expression faces: the quickstart and CI dataset.

FER2013 takes a download and hours of training; these cartoon faces take a second to make
and a small CNN learns them in under a minute, so the whole pipeline can be tried and tested
anywhere. Each class is defined by what the Facial Action Coding System says moves:

========  ===================================================================================
class     drawn as
========  ===================================================================================
angry     brows slanted down to the centre (a "V"), frown lines, narrowed eyes, tight mouth
disgust   lowered, uneven brows, squinted eyes, nose wrinkles, asymmetric raised upper lip
fear      raised brows (inner ends most), wide eyes, open mouth stretched sideways
happy     upturned mouth arc (sometimes open, with teeth), slightly squinted eyes, cheek lines
neutral   level brows, relaxed eyes, straight mouth
sad       inner brow ends raised (a "/\\"), downturned mouth arc, slightly lowered eyes
surprise  high arched brows, very wide eyes, round open mouth, dropped jaw
========  ===================================================================================

Everything else is a nuisance drawn at random so that a model must find the expression:
head size and shape, skin and background tone (either can be the brighter), feature
positions and thickness, hair, glasses, expression strength, pose (rotation, scale, shift),
a lighting gradient, blur and sensor noise.

Shapes are drawn with cv2's anti-aliased primitives at sub-pixel precision (``shift=4``,
coordinates in 1/16 px), so small features still look smooth at 48x48.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from emotion.data import IMAGE_SIZE, Dataset, LoadReport, Split
from emotion.labels import CLASSES, NUM_CLASSES

_SHIFT = 4  # cv2 drawing: coordinates carry 4 fractional bits
_AA = cv2.LINE_AA


def _pt(x: float, y: float) -> tuple[int, int]:
    """A sub-pixel point for cv2 drawing calls made with shift=_SHIFT."""
    return (round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT)))


def _axes(a: float, b: float) -> tuple[int, int]:
    return (max(1, round(a * (1 << _SHIFT))), max(1, round(b * (1 << _SHIFT))))


def _ellipse(img: np.ndarray, c: tuple[float, float], axes: tuple[float, float],
             color: float, thickness: int = -1, start: float = 0, end: float = 360,
             angle: float = 0) -> None:
    cv2.ellipse(img, _pt(*c), _axes(*axes), angle, start, end, color, thickness, _AA, _SHIFT)


def _line(img: np.ndarray, points: list[tuple[float, float]], color: float,
          thickness: int) -> None:
    pts = np.array([_pt(x, y) for x, y in points], dtype=np.int32)
    cv2.polylines(img, [pts], False, color, thickness, _AA, _SHIFT)


class _Expression(NamedTuple):
    """How the upper face moves, in pixels at full strength (negative y is up)."""

    brow_inner: float  # vertical offset of each brow's inner end
    brow_outer: float  # vertical offset of each brow's outer end
    brow_arch: float  # how far the brow's middle rises above the inner-outer line
    eye_open: float  # eye half-height (relaxed is 1.6)
    jaw_drop: float  # extra head height: an open mouth lengthens the face


_EXPRESSIONS: dict[str, _Expression] = {
    "angry": _Expression(3.0, -1.5, 0.0, 1.0, 0.0),
    "disgust": _Expression(2.0, 0.8, 0.0, 0.9, 0.0),
    "fear": _Expression(-3.5, -1.0, 0.0, 2.7, 1.5),
    "happy": _Expression(0.0, 0.0, 1.0, 1.2, 0.5),
    "neutral": _Expression(0.0, 0.0, 0.6, 1.6, 0.0),
    "sad": _Expression(-3.0, 1.5, 0.0, 1.3, 0.0),
    "surprise": _Expression(-4.0, -3.0, 2.0, 2.9, 2.5),
}


class _Face(NamedTuple):
    """Where the features of one face go, with its colours and strength."""

    cx: float
    cy: float
    half_width: float  # head ellipse semi-axes
    half_height: float
    eye_y: float
    eye_dx: float  # eye distance from the midline
    mouth_y: float
    mouth_w: float  # mouth half-width
    skin: float
    ink: float  # dark feature colour
    light: float  # eye whites and teeth
    thickness: int
    strength: float  # 0.6..1: how strongly the expression shows
    side: int  # +1 or -1: which side an asymmetric feature goes to


# --------------------------------------------------------------------------------------------
# Mouths, one per class. y grows downwards, so an arc over angles 0..180 is the lower half.


def _mouth_angry(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    w, y, k = f.mouth_w * 0.8, f.mouth_y, f.strength
    if rng.random() < 0.3:  # bared, clenched teeth
        _ellipse(img, (f.cx, y), (w, 1.8), f.ink)
        _line(img, [(f.cx - w * 0.8, y), (f.cx + w * 0.8, y)], f.light, 1)
    else:  # lips pressed together, corners slightly down
        _line(img, [(f.cx - w, y + k), (f.cx - w * 0.4, y), (f.cx + w * 0.4, y),
                    (f.cx + w, y + k)], f.ink, 2)


def _mouth_disgust(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    # Raised upper lip on one side (a sneer), the other corner down: clearly asymmetric.
    w, y, k, s = f.mouth_w, f.mouth_y, f.strength, f.side
    _line(img, [(f.cx - s * w, y + 1.5 * k), (f.cx - s * w * 0.3, y),
                (f.cx + s * w * 0.3, y - 1.0 * k), (f.cx + s * w, y - 3.0 * k)],
          f.ink, f.thickness)
    _line(img, [(f.cx - s * w * 0.2, y + 2.0), (f.cx + s * w * 0.6, y + 0.5)], f.ink, 1)


def _mouth_fear(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    # Lips stretched sideways and parted: a wide, flat opening with the top teeth showing.
    w, y, k = f.mouth_w * 1.1, f.mouth_y + 0.5, f.strength
    h = 1.6 + 1.4 * k
    _ellipse(img, (f.cx, y), (w, h), f.ink)
    _line(img, [(f.cx - w * 0.7, y - h * 0.45), (f.cx + w * 0.7, y - h * 0.45)], f.light, 1)


def _mouth_happy(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    w, y, k = f.mouth_w * 1.1, f.mouth_y - 1.0, f.strength
    depth = 1.5 + 2.5 * k
    if rng.random() < 0.4:  # open smile: a filled lower half-ellipse with a band of teeth
        _ellipse(img, (f.cx, y), (w, depth), f.ink, start=0, end=180)
        _ellipse(img, (f.cx, y), (w * 0.8, depth * 0.4), f.light, start=0, end=180)
    else:
        _ellipse(img, (f.cx, y), (w, depth), f.ink, f.thickness, start=10, end=170)
    if rng.random() < 0.5:  # raised cheeks fold the skin beside the mouth
        for s in (-1, 1):
            _line(img, [(f.cx + s * (w + 1.5), y - 4), (f.cx + s * (w + 2), y - 1)], f.ink, 1)


def _mouth_neutral(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    w, y = f.mouth_w * 0.9, f.mouth_y
    tilt = rng.uniform(-0.4, 0.4)
    _line(img, [(f.cx - w, y - tilt), (f.cx + w, y + tilt)], f.ink, f.thickness)


def _mouth_sad(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    w, y, k = f.mouth_w * 0.95, f.mouth_y + 1.0, f.strength
    depth = 1.5 + 2.0 * k
    _ellipse(img, (f.cx, y + depth * 0.5), (w, depth), f.ink, f.thickness, start=190, end=350)


def _mouth_surprise(img: np.ndarray, f: _Face, rng: np.random.Generator) -> None:
    # A round "O", taller than wide, under a dropped jaw.
    k = f.strength
    rx, ry = f.mouth_w * (0.35 + 0.15 * k), f.mouth_w * (0.5 + 0.25 * k)
    _ellipse(img, (f.cx, f.mouth_y + 1.0), (rx, ry), f.ink)


_MOUTHS: dict[str, Callable[[np.ndarray, _Face, np.random.Generator], None]] = {
    "angry": _mouth_angry,
    "disgust": _mouth_disgust,
    "fear": _mouth_fear,
    "happy": _mouth_happy,
    "neutral": _mouth_neutral,
    "sad": _mouth_sad,
    "surprise": _mouth_surprise,
}


# --------------------------------------------------------------------------------------------
# One face


def _draw_face(label: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one upright, noise-free face of class ``label``: uint8 (48, 48)."""
    name = CLASSES[label]
    expr = _EXPRESSIONS[name]
    k = rng.uniform(0.6, 1.0)

    # Skin and background tones: either may be brighter, but they always differ by >= 35.
    skin = rng.uniform(90, 230)
    gap = rng.uniform(35, 120) * (1 if rng.random() < 0.5 else -1)
    background = skin + gap if 0 <= skin + gap <= 255 else skin - gap
    img = np.full((IMAGE_SIZE, IMAGE_SIZE), background, dtype=np.uint8)

    cx, cy = 24 + rng.uniform(-1, 1), 25 + rng.uniform(-1, 1)
    hw, hh = rng.uniform(13.5, 17.5), rng.uniform(17.5, 21.0)
    face = _Face(
        cx=cx,
        cy=cy,
        half_width=hw,
        half_height=hh,
        eye_y=cy - hh * rng.uniform(0.12, 0.22),
        eye_dx=hw * rng.uniform(0.36, 0.46),
        mouth_y=cy + hh * rng.uniform(0.45, 0.55),
        mouth_w=hw * rng.uniform(0.3, 0.4),
        skin=skin,
        ink=skin * rng.uniform(0.05, 0.4),
        light=min(255.0, skin + rng.uniform(40, 90)),
        thickness=int(rng.integers(1, 3)),
        strength=k,
        side=1 if rng.random() < 0.5 else -1,
    )

    hair = rng.random() < 0.5
    hair_tone = rng.uniform(10, 120) if rng.random() < 0.8 else rng.uniform(180, 250)
    if hair:  # behind the head
        _ellipse(img, (cx, cy - hh * 0.3), (hw * 1.12, hh * 0.85), hair_tone)
    if rng.random() < 0.5:  # ears
        for s in (-1, 1):
            _ellipse(img, (cx + s * hw * 0.97, face.eye_y + 2), (2.2, 3.5), skin * 0.9)
    jaw = expr.jaw_drop * k
    _ellipse(img, (cx, cy + jaw * 0.5), (hw, hh + jaw * 0.5), skin)
    if hair:  # fringe over the top of the forehead
        _ellipse(img, (cx, cy - hh * 0.55), (hw * 1.02, hh * 0.47), hair_tone, start=180, end=360)

    # Eyes: whites, then a pupil; a narrowed eye is almost all pupil.
    eye_h = 1.6 + (expr.eye_open - 1.6) * k + rng.uniform(-0.2, 0.2)
    eye_w = rng.uniform(2.4, 3.4)
    for s in (-1, 1):
        ex = cx + s * face.eye_dx
        _ellipse(img, (ex, face.eye_y), (eye_w, eye_h), face.light)
        _ellipse(img, (ex, face.eye_y), (eye_w, eye_h), face.ink, 1)
        r = min(1.3, eye_h)
        _ellipse(img, (ex + rng.uniform(-0.5, 0.5), face.eye_y), (r, r), face.ink)

    # Brows: inner end, middle, outer end; their slant carries most of the upper-face signal.
    brow_y = face.eye_y - rng.uniform(4.5, 6.0)
    brow_t = int(rng.integers(1, 3)) + (1 if name == "angry" and rng.random() < 0.5 else 0)
    for s in (-1, 1):
        uneven = 1.2 * k if name == "disgust" and s == face.side else 0.0
        inner = (cx + s * hw * 0.14, brow_y + expr.brow_inner * k + uneven)
        outer = (cx + s * hw * 0.62, brow_y + expr.brow_outer * k + uneven)
        middle = ((inner[0] + outer[0]) / 2, (inner[1] + outer[1]) / 2 - expr.brow_arch * k)
        _line(img, [inner, middle, outer], face.ink, brow_t)

    if name == "angry" and rng.random() < 0.7:  # vertical frown lines between the brows
        for s in (-1, 1):
            _line(img, [(cx + s * 1.2, brow_y + 1), (cx + s * 0.8, brow_y + 4)], face.ink, 1)

    # Nose: a soft line and nostrils, shared by all classes; disgust adds wrinkles.
    nose_y = (face.eye_y + face.mouth_y) / 2 + 1
    nose_tone = face.ink * 0.5 + skin * 0.5
    if rng.random() < 0.8:
        _line(img, [(cx, face.eye_y + 1.5), (cx + rng.uniform(-0.7, 0.7), nose_y)], nose_tone, 1)
    _ellipse(img, (cx, nose_y), (2.2, 1.0), nose_tone, 1, start=0, end=180)
    if name == "disgust":
        for s in (-1, 1):
            _line(img, [(cx + s * 1.5, face.eye_y), (cx + s * 3.0, face.eye_y + 2.5)],
                  face.ink, 1)

    _MOUTHS[name](img, face, rng)

    if rng.random() < 0.15:  # glasses: a nuisance that partly hides the eyes
        for s in (-1, 1):
            _ellipse(img, (cx + s * face.eye_dx, face.eye_y), (4.5, 3.5), face.ink, 1)
        _line(img, [(cx - face.eye_dx + 4.5, face.eye_y), (cx + face.eye_dx - 4.5, face.eye_y)],
              face.ink, 1)
    return img


def make_synthetic(
    n_per_class: int, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_per_class`` faces of each of the 7 classes, in shuffled order.

    Inputs
    ------
    n_per_class : faces per class.
    rng : a Generator, or a seed for one; the same seed gives the same faces.

    Returns
    -------
    images : uint8 (N, 48, 48) with N = 7 * n_per_class.
    labels : int64 (N,), class ids into ``labels.CLASSES``, exactly n_per_class of each.
    """
    rng = np.random.default_rng(rng)
    n = NUM_CLASSES * n_per_class
    labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), n_per_class))
    size = IMAGE_SIZE
    images = np.empty((n, size, size), dtype=np.uint8)

    # Per-image nuisance parameters, drawn as vectors up front.
    angle = rng.uniform(-12, 12, n)
    scale = rng.uniform(0.88, 1.1, n)
    shift = rng.uniform(-3, 3, (n, 2))
    blur = rng.uniform(0.3, 1.1, n)
    centre = ((size - 1) / 2, (size - 1) / 2)
    for i in range(n):
        face = _draw_face(int(labels[i]), rng)
        m = cv2.getRotationMatrix2D(centre, angle[i], scale[i])
        m[:, 2] += shift[i]
        face = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        images[i] = cv2.GaussianBlur(face, (0, 0), blur[i])

    # Lighting: a linear ramp in a random direction, then Gaussian sensor noise.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    direction = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    amplitude = rng.uniform(0, 60, n).astype(np.float32)
    ramp = (np.cos(direction)[:, None, None] * xx + np.sin(direction)[:, None, None] * yy)
    noise_sigma = rng.uniform(2, 10, n).astype(np.float32)
    noise = rng.standard_normal((n, size, size), dtype=np.float32) * noise_sigma[:, None, None]
    out = images.astype(np.float32) + amplitude[:, None, None] * ramp + noise
    np.clip(out, 0, 255, out=out)
    return np.rint(out).astype(np.uint8), labels


def synthetic_splits(
    n_train_per_class: int = 300, n_test_per_class: int = 60, seed: int = 0
) -> Dataset:
    """A synthetic stand-in for ``data.load_fer2013``: splits "train" and "test".

    The two splits come from independent streams of ``seed`` (``np.random.SeedSequence.spawn``)
    so the test faces do not change when n_train_per_class does. The defaults (2,100 train and
    420 test faces) take about a second to draw.
    """
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    report = LoadReport(source=f"synthetic faces (seed={seed})")
    splits: dict[str, Split] = {}
    for name, n, seq in (("train", n_train_per_class, train_seq),
                         ("test", n_test_per_class, test_seq)):
        images, labels = make_synthetic(n, np.random.default_rng(seq))
        splits[name] = Split(images, labels, source=f"synthetic:{name}(seed={seed})")
        report.counts[name] = len(labels)
    return Dataset(splits, report)
