"""Overlay drawing with OpenCV: face boxes, "label score" tags, a probability bar chart per
face, and an FPS counter. Used by ``predict --annotate`` and ``webcam``.

Every size (font, line, bar) scales with the image, so a 4000 px photo and a 320 px video
frame get overlays of about the same apparent size. Colours are BGR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from emotion.faces import Box
from emotion.labels import CLASSES

# One colour per class (BGR), chosen to read well on faces and to be told apart.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (0, 200, 255),
    "neutral": (180, 180, 180),
    "sad": (200, 120, 40),
    "surprise": (0, 140, 255),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def ui_scale(image: np.ndarray) -> float:
    """Overlay scale: 1.0 for a 480-px-tall frame, proportional otherwise (at least 0.5)."""
    return max(0.5, min(image.shape[:2]) / 480)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float,
          color: tuple[int, int, int], thickness: int) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, thickness, cv2.LINE_AA)


def _blend_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int,
                color: tuple[int, int, int], alpha: float) -> None:
    """Fill a rectangle blended at ``alpha`` over the image (a translucent panel)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1 - alpha) + np.array(color, np.float32) * alpha).astype(np.uint8)


def _overlaps(a: tuple[int, int, int, int], b: Box) -> bool:
    """Whether rectangles (x0, y0, x1, y1) and (x, y, w, h) intersect."""
    return a[0] < b[0] + b[2] and b[0] < a[2] and a[1] < b[1] + b[3] and b[1] < a[3]


def draw_bars(img: np.ndarray, probabilities: Mapping[str, float], box: Box, scale: float,
              avoid: Sequence[Box] = ()) -> None:
    """A small horizontal bar chart of the 7 probabilities next to the box.

    Tries right of the box, left, below, above, then inside its bottom-left corner, and takes
    the first place that fits in the image and covers none of the ``avoid`` boxes (the other
    faces); when none is free, the first place that fits.
    """
    h_img, w_img = img.shape[:2]
    font = 0.36 * scale
    row = max(8, int(round(13 * scale)))
    name_w = cv2.getTextSize("surprise", _FONT, font, 1)[0][0] + int(round(6 * scale))
    bar_w = int(round(60 * scale))
    panel_w, panel_h = name_w + bar_w + 6, row * len(CLASSES) + 6
    x, y, w, h = box
    gap = 6
    candidates = [(x + w + gap, y), (x - gap - panel_w, y), (x, y + h + gap),
                  (x, y - gap - panel_h), (x + 2, y + h - panel_h - 2)]
    fits = [(px, py) for px, py in candidates
            if px >= 0 and py >= 0 and px + panel_w <= w_img and py + panel_h <= h_img]
    free = [(px, py) for px, py in fits
            if not any(_overlaps((px, py, px + panel_w, py + panel_h), b) for b in avoid)]
    if free or fits:
        px, py = (free or fits)[0]
    else:  # a tiny image: clamp into it
        px, py = max(0, min(x, w_img - panel_w)), max(0, min(y, h_img - panel_h))
    _blend_rect(img, px, py, px + panel_w, py + panel_h, (30, 30, 30), 0.6)
    for i, name in enumerate(CLASSES):
        p = float(probabilities.get(name, 0.0))
        top = py + 3 + i * row
        _text(img, name, (px + 3, top + row - 3), font, (235, 235, 235), 1)
        bx = px + name_w
        cv2.rectangle(img, (bx, top + 2), (bx + bar_w, top + row - 2), (90, 90, 90), -1)
        cv2.rectangle(img, (bx, top + 2), (bx + int(round(p * bar_w)), top + row - 2),
                      CLASS_COLORS[name], -1)


def draw_face(img: np.ndarray, box: Box, label: str, score: float,
              probabilities: Mapping[str, float] | None = None, face_id: int | None = None,
              scale: float | None = None, avoid: Sequence[Box] = ()) -> None:
    """Draw one face in place: box in the label's colour, "[#id] label 0.87" above it (or
    inside when the box touches the top), and the probability bars if given, placed clear
    of the ``avoid`` boxes where possible."""
    scale = ui_scale(img) if scale is None else scale
    x, y, w, h = (int(v) for v in box)
    color = CLASS_COLORS.get(label, (0, 255, 0))
    thick = max(1, int(round(2 * scale)))
    cv2.rectangle(img, (x, y), (x + w, y + h), color, thick, cv2.LINE_AA)
    tag = f"{label} {score:.2f}" if face_id is None else f"#{face_id} {label} {score:.2f}"
    font = 0.6 * scale
    (tw, th), base = cv2.getTextSize(tag, _FONT, font, thick)
    ty = y - base - 4 if y - th - base - 4 >= 0 else y + th + 4
    _blend_rect(img, x, ty - th - 2, x + tw + 4, ty + base, (20, 20, 20), 0.5)
    _text(img, tag, (x + 2, ty), font, color, thick)
    if probabilities is not None:
        draw_bars(img, probabilities, (x, y, w, h), scale, avoid)


def draw_results(img: np.ndarray, results: Sequence, face_ids: Sequence[int] | None = None,
                 fps: float | None = None) -> np.ndarray:
    """Draw ``FaceResult``-like objects (``box``, ``label``, ``score``, ``probabilities``)
    onto a uint8 BGR image (H, W, 3) in place, plus an FPS counter if given; returns it."""
    scale = ui_scale(img)
    boxes = [r.box for r in results]
    for i, r in enumerate(results):
        draw_face(img, r.box, r.label, r.score, r.probabilities,
                  None if face_ids is None else face_ids[i], scale,
                  avoid=boxes[:i] + boxes[i + 1:])
    if fps is not None:
        draw_fps(img, fps, scale)
    return img


def draw_fps(img: np.ndarray, fps: float, scale: float | None = None) -> None:
    """"12.3 FPS" in the top-left corner."""
    scale = ui_scale(img) if scale is None else scale
    _text(img, f"{fps:.1f} FPS", (8, int(24 * scale)), 0.6 * scale, (255, 255, 255),
          max(1, int(round(scale))))
