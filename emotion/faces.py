"""Face detection, and the crop -> 48x48 step shared with training.

Two detectors share one small interface, ``FaceDetector.detect(image) -> [(x, y, w, h), ...]``:

``HaarDetector``  OpenCV's frontal-face Haar cascade (Viola & Jones 2001), shipped inside
                  opencv-python, so it works with no download. Fast on a CPU, but it
                  misses turned heads and finds "faces" in jerseys, hands and wallpaper;
                  so each box it reports is first checked again on its own (``verify``,
                  below).
``YuNetDetector`` OpenCV's ``cv2.FaceDetectorYN`` (YuNet, Wu et al. 2023), a small CNN
                  detector, used when the user passes its ``.onnx`` model file (e.g.
                  ``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo). More
                  robust to pose and lighting.

Both return boxes as ints ``(x, y, w, h)`` in the image's pixel coordinates, clipped to the
image, sorted left to right so that "face 0" is the leftmost face.

``TrackingDetector`` wraps a detector for video: a full search every few frames, and in
between a search only around the faces it already has (``HaarDetector.detect_near``),
about a sixth of the time per frame.

Haar's defaults for photos: the gray levels are stretched to the full 0-255 range (a no-op
for a well-exposed photo), the search runs on the image as it is and, only when that finds
no face, again on a histogram-equalised copy.

Verification: the cascade's search is loose (3 neighbours, down to 36-px faces) and every
candidate box is then looked at alone, resized to ``VERIFY_SIDE`` px: it is kept when the
frontal cascade fires on it from many nearby windows (``face_support`` >= ``VERIFY_SUPPORT``)
or when an eye lies where an eye should be (``find_eyes``). Of the surviving boxes, one
that overlaps a better-supported box is dropped (``suppress_overlaps``). The measurements
behind each choice (other cascades, level weights, equalisation, the thresholds) are in
benchmarks/README.md, "Faces in real photos".

``crop_face`` turns a box into the network's input: a square uint8 (48, 48) gray crop;
with ``angle`` (``eye_angle``: the tilt of the line through the eyes) it is rotated about
the face's centre first, so that the eyes are level as in FER2013's faces.

Why a margin, and why this one: FER2013's faces were themselves found by a face detector and
cropped, so the best crop is the one that reproduces FER2013's framing. Running this module's
``HaarDetector`` on FER2013 test faces (150 random faces upscaled to 180 px on an
edge-replicated canvas; 115 found) gives a box whose side is a median 0.96 of the FER crop's
side (quartiles 0.89 and 1.02), centred on it to within a pixel. So the FER crop is the Haar
box grown by about 2 % per side, which is ``DEFAULT_MARGIN = 0.02``. A larger margin (say
0.1) would shrink every face by a fifth relative to what the network was trained on. YuNet's
boxes are taller than wide and hug the face; ``crop_face`` squares a box on its longer side,
which keeps the aspect ratio (never stretches a face) and lands close to the same framing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from emotion.cli import not_a_file
from emotion.preprocess import INPUT_SIZE

Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels; (x, y) is the top-left corner

DEFAULT_MARGIN = 0.02  # fraction of the box side added on each side; see the module docstring
# px: smallest face reported. Below the network's 48-px input, but a 37-px face in a
# football photo is still a face to classify (upscaled), and verification keeps the looser
# search from adding false boxes. 36 px is also about the smallest face the 24-px cascade
# window sees in video, where frames are searched at 400 px (VIDEO_MAX_SIDE).
DEFAULT_MIN_SIZE = 36
DEFAULT_MIN_FRACTION = 0.05  # of the shorter image side: fewer tiny false faces in big photos
DEFAULT_MAX_SIDE = 1280  # px: larger images are shrunk for detection only (speed)
DEFAULT_SCALE_FACTOR = 1.1  # Haar: step between scales (photos)
DEFAULT_MIN_NEIGHBORS = 3  # Haar: overlapping raw hits a candidate needs (photos); see verify
# Video: detect on a 400-px copy with 20% scale steps and 4 neighbours, which makes 30
# frames/s possible; a smaller copy lost small faces. The grid of sizes, steps and
# neighbours that chose these is benchmarks/bench_detect_scale.py (results in the
# benchmarks README).
VIDEO_MAX_SIDE, VIDEO_SCALE_FACTOR, VIDEO_MIN_NEIGHBORS = 400, 1.2, 4
# Video, between full searches (TrackingDetector): each known face is looked for again in
# its box grown by its own side on every side, at sizes within 1.5x of its own (two of
# the cascade's 1.2x scale steps either way), and a full search runs every 5th frame so
# that new faces appear within 5 frames: a few times cheaper than a full search
# (benchmarks README). A smaller window lost faces near the frame's edge, where it is cut
# off and the cascade collects too few overlapping hits.
TRACK_SEARCH, TRACK_SIZE_CHANGE, TRACK_RESCAN_EVERY = 1.0, 1.5, 5
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
# Verification of a candidate box, on the box alone resized so the face is VERIFY_SIDE px:
# the number of raw frontal-cascade windows (scale step 1.05, sizes within 1.3x) that land
# on it with IoU >= 0.5. On the real-photo set, false boxes reached 24 and frontal faces
# without a findable eye had 46 or more (benchmarks/README.md).
VERIFY_SIDE, VERIFY_SUPPORT = 96, 35
EYE_SIDE = 128  # px: a face box is resized to this before looking for eyes in it
# An eye (its centre, as a fraction of the box side) must lie in the upper half, off the
# vertical midline (dogs' collars and noses gave single "eyes" on it), and be 0.1-0.4 of
# the face wide.
EYE_Y, EYE_DX, EYE_SIZE = (0.2, 0.55), (0.08, 0.42), (0.1, 0.4)
# Alignment: an eye line steeper than this is more likely a wrong pair of "eyes" (an
# eyebrow, a frame of glasses) than a head tilt the frontal cascade would have found.
MAX_ALIGN_ANGLE = 25.0


# --------------------------------------------------------------------------------- images
def to_gray(image: np.ndarray) -> np.ndarray:
    """Any decoded image -> uint8 gray (H, W).

    Inputs
    ------
    image : (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, with values read as
        uint8 : 0..255;  uint16 : 0..65535 (a 16-bit PNG or TIFF), scaled to 0..255;
        other integers : must hold 0..255 (e.g. an int64 copy of an 8-bit image);
        float : [0, 1] when the maximum is at most 1, else 0..255 (``img / 255`` and
        ``img.astype(float)`` both work); bool : False/True -> 0/255.

    Raises ValueError for an empty array, an unsupported shape or dtype, or values outside
    those ranges (negative, NaN, above 255), naming the range found.
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = _to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2:
        raise ValueError(f"unsupported image shape {image.shape}; expected (H, W), (H, W, 1), "
                         f"(H, W, 3) BGR or (H, W, 4) BGRA")
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """The value rules of ``to_gray`` for a non-uint8 array."""
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype == np.uint16:
        scale = 255.0 / 65535
    elif np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating):
        lo, hi = image.min(), image.max()
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0 and hi <= 255):
            raise ValueError(f"image values {lo}..{hi} ({image.dtype}) are outside 0..255; "
                             "expected 8-bit values (0..255), floats in [0, 1] or a uint16 "
                             "image")
        scale = 255.0 if np.issubdtype(image.dtype, np.floating) and hi <= 1 else 1.0
    else:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    return np.clip(np.rint(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded image -> uint8 BGR (H, W, 3) (for drawing and for YuNet, which wants colour)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)


# ---------------------------------------------------------------------- verification
_CASCADES: dict[str, cv2.CascadeClassifier] = {}


def _shipped_cascade(name: str) -> cv2.CascadeClassifier:
    """One of the cascades shipped with opencv-python, loaded once per process."""
    if name not in _CASCADES:
        path = str(Path(cv2.data.haarcascades) / name)
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise ValueError(f"could not load the Haar cascade {path}")
        _CASCADES[name] = cascade
    return _CASCADES[name]


def face_support(gray: np.ndarray, box: Box) -> int:
    """How strongly the frontal cascade sees a face in ``box`` when it looks at it alone.

    The box's square, grown by a quarter of its side on every side, is resized so the box
    is ``VERIFY_SIDE`` px, and the cascade's raw windows (no grouping) at sizes within 1.3x
    of it are counted where they overlap the box with IoU >= 0.5. A real face fires
    dozens of neighbouring windows; texture that passed the loose search fires a few. The
    count does not depend on the image's size or on the search's own settings.
    """
    pad = VERIFY_SIDE // 4
    patch = _square_crop(gray, box, 0.25, VERIFY_SIDE + 2 * pad)
    lo, hi = int(VERIFY_SIDE / 1.3), int(VERIFY_SIDE * 1.3)
    hits = _shipped_cascade(HAAR_CASCADE).detectMultiScale(
        patch, scaleFactor=1.05, minNeighbors=0, minSize=(lo, lo), maxSize=(hi, hi))
    centre = (pad, pad, VERIFY_SIDE, VERIFY_SIDE)
    return sum(iou(tuple(int(v) for v in hit), centre) >= 0.5
               for hit in np.asarray(hits).reshape(-1, 4))


def find_eyes(gray: np.ndarray, box: Box) -> list[tuple[float, float, float]]:
    """Eyes where eyes belong in a face box: [(x, y, size), ...] as fractions of its side.

    OpenCV's eye cascade searches the upper 60 % of the box resized to ``EYE_SIDE`` px;
    only hits in the places ``EYE_Y``, ``EYE_DX`` and ``EYE_SIZE`` allow are returned
    (centres; x from the left edge), left to right.
    """
    patch = _square_crop(gray, box, 0.0, EYE_SIDE)[: int(EYE_SIDE * 0.6)]
    found = _shipped_cascade(EYE_CASCADE).detectMultiScale(
        patch, scaleFactor=1.1, minNeighbors=3, minSize=(EYE_SIDE // 8,) * 2,
        maxSize=(EYE_SIDE // 2,) * 2)
    eyes = []
    for x, y, w, h in np.asarray(found).reshape(-1, 4):
        cx, cy, size = (x + w / 2) / EYE_SIDE, (y + h / 2) / EYE_SIDE, w / EYE_SIDE
        if (EYE_Y[0] <= cy <= EYE_Y[1] and EYE_DX[0] <= abs(cx - 0.5) <= EYE_DX[1]
                and EYE_SIZE[0] <= size <= EYE_SIZE[1]):
            eyes.append((float(cx), float(cy), float(size)))
    return sorted(eyes)


def eye_angle(gray: np.ndarray, box: Box, max_angle: float = MAX_ALIGN_ANGLE) -> float | None:
    """The tilt of the line through a face's eyes, in degrees; None when there is no pair.

    Positive when the eye on the image's right is lower (the head leans to the image's
    right): ``crop_face(..., angle=eye_angle(...))`` then turns it level. Of all
    (left-half, right-half) pairs from ``find_eyes`` the most level one is taken, and a
    pair steeper than ``max_angle`` is not trusted (None).
    """
    eyes = find_eyes(gray, box)
    pairs = [(np.degrees(np.arctan2(r[1] - l[1], r[0] - l[0])))
             for l in eyes if l[0] < 0.5 for r in eyes if r[0] >= 0.5]
    if not pairs:
        return None
    angle = float(min(pairs, key=abs))
    return angle if abs(angle) <= max_angle else None


def suppress_overlaps(scored: list[tuple[float, Box]], max_iou: float = 0.3,
                      max_cover: float = 0.6) -> list[Box]:
    """Non-maximum suppression: best score first, drop a box that overlaps a kept one.

    Overlap is IoU > ``max_iou``, or more than ``max_cover`` of the smaller box inside the
    other (a face box nested in a larger false box on the same head, a box across two
    faces). Faces side by side in a group photo overlap by far less.
    """
    kept: list[Box] = []
    for _, box in sorted(scored, key=lambda sb: -sb[0]):
        if all(iou(box, k) <= max_iou and _cover(box, k) <= max_cover for k in kept):
            kept.append(box)
    return kept


def _cover(a: Box, b: Box) -> float:
    """Intersection of two boxes over the smaller one's area."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = min(a[2] * a[3], b[2] * b[3])
    return ix * iy / smaller if smaller > 0 else 0.0


# ------------------------------------------------------------------------------ detectors
@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[(x, y, w, h)]`` is a face detector.

    ``image`` is uint8 gray (H, W) or BGR (H, W, 3). Tests pass a class that returns fixed
    boxes; the recognizer needs nothing else.
    """

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _min_side(shape: tuple[int, ...], min_size: int, min_fraction: float) -> int:
    """The smallest face side worth reporting in an image of this shape, in pixels."""
    return max(int(min_size), int(round(min_fraction * min(shape[0], shape[1]))))


def _finish(boxes: list[Box], shape: tuple[int, ...], min_side: int,
            largest_only: bool) -> list[Box]:
    """Clip to the image, drop small and empty boxes, keep the largest if asked, sort by x."""
    h_img, w_img = shape[:2]
    out: list[Box] = []
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
        x1, y1 = min(w_img, int(round(x + w))), min(h_img, int(round(y + h)))
        if x1 - x0 >= 1 and y1 - y0 >= 1 and max(w, h) >= min_side:
            out.append((x0, y0, x1 - x0, y1 - y0))
    if largest_only and out:
        out = [max(out, key=lambda b: b[2] * b[3])]
    return sorted(out, key=lambda b: (b[0], b[1]))


def _shrink_for_detection(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Shrink a big image (a 12 MP phone photo) for detection; return it and the scale used.

    Haar's cost grows with the pixel count and the number of scales; faces in such photos
    are hundreds of pixels wide, so detecting at <= max_side px loses nothing.
    """
    longest = max(image.shape[:2])
    if max_side is None or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, scale


def stretch_levels(gray: np.ndarray) -> np.ndarray:
    """uint8 gray with its darkest value mapped to 0 and its brightest to 255 (linearly).

    The exact minimum and maximum, not percentiles: a photo that already spans 0-255 comes
    back unchanged, so only under-exposed images are touched. A flat image is returned as
    it is.
    """
    lo, hi = int(gray.min()), int(gray.max())
    if (lo, hi) == (0, 255) or hi <= lo:
        return gray
    lut = np.clip((np.arange(256) - lo) * (255.0 / (hi - lo)), 0, 255)
    return cv2.LUT(gray, np.rint(lut).astype(np.uint8))


class HaarDetector:
    """OpenCV's frontal-face Haar cascade.

    Parameters
    ----------
    min_size : smallest face side to report, px (in the original image).
    min_fraction : also at least this fraction of the image's shorter side; the larger of the
        two limits applies. Small "faces" in big photos are mostly texture.
    scale_factor : step between the cascade's scales; 1.1 checks every 10 % of size.
    min_neighbors : how many overlapping raw hits a candidate needs (OpenCV's samples use
        3-5). 3 finds every frontal face of the real-photo set; ``verify`` then removes
        the false boxes a loose search adds.
    largest_only : return only the largest face (one-person webcam use).
    max_side : detect on a copy shrunk so its longer side is at most this (None: never).
    equalize : histogram equalisation before the search, as OpenCV's facedetect sample
        does. True always, False never, "auto" (default) only when the plain image gives
        no face: equalising helps under dim or uneven light but costs faces on plain
        backgrounds and adds false boxes in ordinary photos (benchmarks/README.md).
    verify : check each candidate alone (``face_support``, ``find_eyes``) and suppress
        overlapping boxes (``suppress_overlaps``); False reports the cascade's boxes as
        they come, as before.
    stretch : map the image's darkest gray to 0 and its brightest to 255 before anything
        else (``stretch_levels``): nothing changes in a well-exposed photo, but a dark one
        gets the contrast that the search and the verification need.
    """

    def __init__(self, min_size: int = DEFAULT_MIN_SIZE,
                 min_fraction: float = DEFAULT_MIN_FRACTION,
                 scale_factor: float = DEFAULT_SCALE_FACTOR,
                 min_neighbors: int = DEFAULT_MIN_NEIGHBORS, largest_only: bool = False,
                 max_side: int | None = DEFAULT_MAX_SIDE, equalize: bool | str = "auto",
                 cascade_path: str | os.PathLike[str] | None = None,
                 verify: bool = True, stretch: bool = True) -> None:
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if equalize not in (True, False, "auto"):
            raise ValueError(f"equalize must be True, False or 'auto', got {equalize!r}")
        path = str(cascade_path or Path(cv2.data.haarcascades) / HAAR_CASCADE)
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ValueError(f"could not load the Haar cascade {path}")
        self.min_size, self.min_fraction = min_size, min_fraction
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.largest_only, self.max_side, self.equalize = largest_only, max_side, equalize
        self.verify, self.stretch = verify, stretch
        self._equalized = equalize is True  # what the last full search found faces in

    def _prepare(self, image: np.ndarray) -> tuple[tuple[int, ...], np.ndarray, float, int]:
        """(image shape, the gray copy Haar searches, its scale, min face side in px)."""
        gray = to_gray(image)
        min_side = _min_side(gray.shape, self.min_size, self.min_fraction)
        small, scale = _shrink_for_detection(gray, self.max_side)
        if self.stretch:
            small = stretch_levels(small)
        return gray.shape, small, scale, min_side

    def _confirmed(self, small: np.ndarray, hits: np.ndarray) -> list[Box]:
        """The candidates that pass verification, overlaps suppressed (see ``verify``)."""
        boxes = [tuple(float(v) for v in hit) for hit in hits]
        if not self.verify:
            return boxes
        scored = []
        for box in boxes:
            support = face_support(small, box)
            if support >= VERIFY_SUPPORT or find_eyes(small, box):
                scored.append((support, box))
        return suppress_overlaps(scored)

    def _search(self, small: np.ndarray, min_side: float,
                max_side: float | None = None) -> np.ndarray:
        """Raw cascade hits (M, 4) in ``small``, for faces min_side..max_side px there."""
        lo = max(1, int(min_side))
        if lo > min(small.shape[:2]):  # no face that large fits (and OpenCV takes only int32)
            return np.zeros((0, 4))
        hi = (0, 0) if max_side is None else (int(max_side), int(max_side))
        found = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors,
                                              minSize=(lo, lo), maxSize=hi)
        return np.asarray(found, dtype=np.float64).reshape(-1, 4)

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a uint8 gray (H, W) or BGR (H, W, 3) image, as sorted (x, y, w, h)."""
        shape, small, scale, min_side = self._prepare(image)
        passes = {True: (True,), False: (False,), "auto": (False, True)}[self.equalize]
        boxes: list[Box] = []
        for equalized in passes:
            searched = cv2.equalizeHist(small) if equalized else small
            boxes = self._confirmed(small, self._search(searched, min_side * scale))
            if boxes:
                self._equalized = equalized
                break
        boxes = [tuple(v / scale for v in b) for b in boxes]
        return _finish(boxes, shape, min_side, self.largest_only)

    def detect_near(self, image: np.ndarray, boxes: list[Box],
                    search: float = TRACK_SEARCH, size_change: float = TRACK_SIZE_CHANGE,
                    ) -> list[Box]:
        """Find again the faces that were at ``boxes`` in the previous frame of a video.

        For each box, the cascade searches only a region around it (the box grown by
        ``search`` times its side on every side) and only face sizes within a factor
        ``size_change`` of its size: a few percent of a full search's windows. At most one
        face per box is returned (the hit whose centre is nearest the box's), duplicates
        merged, in the image's coordinates, filtered and sorted as ``detect`` does. A face
        that moved or grew beyond that window is not found; ``TrackingDetector`` then
        falls back to ``detect``.

        The boxes are not verified again (each follows a face a full search verified), and
        the image is equalised if the last full search found its faces in an equalised one.
        """
        shape, small, scale, min_side = self._prepare(image)
        if self._equalized:
            small = cv2.equalizeHist(small)
        found: list[tuple[float, ...]] = []
        for x, y, w, h in boxes:
            side = max(w, h) * scale  # the face's side in the searched copy
            pad = search * side
            x0, y0 = max(0, int(x * scale - pad)), max(0, int(y * scale - pad))
            x1 = min(small.shape[1], int(np.ceil((x + w) * scale + pad)))
            y1 = min(small.shape[0], int(np.ceil((y + h) * scale + pad)))
            hits = self._search(small[y0:y1, x0:x1], max(side / size_change, min_side * scale),
                                side * size_change)
            if not len(hits):
                continue
            cx, cy = (x + w / 2) * scale - x0, (y + h / 2) * scale - y0
            dist = (hits[:, 0] + hits[:, 2] / 2 - cx) ** 2 + (hits[:, 1] + hits[:, 3] / 2 - cy) ** 2
            bx, by, bw, bh = hits[int(np.argmin(dist))]
            box = ((bx + x0) / scale, (by + y0) / scale, bw / scale, bh / scale)
            if all(iou(box, other) < 0.5 for other in found):
                found.append(box)
        return _finish(found, shape, min_side, self.largest_only)


class DetectorError(ValueError):
    """The face detector itself failed (not one image): every later image would fail too,
    so a caller looping over images stops at the first."""


class YuNetDetector:
    """OpenCV's YuNet CNN face detector (``cv2.FaceDetectorYN``) from a user-given .onnx file.

    Parameters
    ----------
    model_path : the YuNet .onnx file (OpenCV model zoo, face_detection_yunet_*.onnx).
    score_threshold : minimum face confidence in [0, 1]; 0.8 is a little stricter than the
        zoo's 0.7 default, for fewer false faces.
    nms_threshold : IoU above which overlapping boxes are merged.
    min_size, min_fraction, largest_only, max_side : as for ``HaarDetector``.

    Raises FileNotFoundError when the file is missing and ValueError when OpenCV cannot
    load it as a YuNet model; ``detect`` raises DetectorError when it loads but does not
    run as one.
    """

    def __init__(self, model_path: str | os.PathLike[str], score_threshold: float = 0.8,
                 nms_threshold: float = 0.3, min_size: int = DEFAULT_MIN_SIZE,
                 min_fraction: float = DEFAULT_MIN_FRACTION, largest_only: bool = False,
                 max_side: int | None = DEFAULT_MAX_SIDE, top_k: int = 5000) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {not_a_file(path, 'YuNet model file')} (download "
                                    f"face_detection_yunet_2023mar.onnx from the OpenCV model zoo)")
        try:
            # The input size is a placeholder: detect() sets it to each frame's size.
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                 nms_threshold, top_k)
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2.error"
            raise ValueError(f"{path}: OpenCV could not load this as a YuNet face-detection "
                             f"model ({first})") from None
        self.path = path
        self.min_size, self.min_fraction = min_size, min_fraction
        self.largest_only, self.max_side = largest_only, max_side
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a uint8 gray (H, W) or BGR (H, W, 3) image, as sorted (x, y, w, h)."""
        bgr = to_bgr(image)
        min_side = _min_side(bgr.shape, self.min_size, self.min_fraction)
        small, scale = _shrink_for_detection(bgr, self.max_side)
        size = (small.shape[1], small.shape[0])
        try:
            if size != self._size:  # re-planning the network is cheap but not free
                self.net.setInputSize(size)
                self._size = size
            _, faces = self.net.detect(small)
        except cv2.error as exc:  # an .onnx file that loads but is not YuNet
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2.error"
            raise DetectorError(f"{self.path}: OpenCV could not run this as a YuNet "
                                f"face-detection model ({first})") from None
        # Each row: x, y, w, h, five landmarks (x, y), score. Boxes may poke out of the frame.
        rows = np.zeros((0, 15)) if faces is None else faces
        boxes = [tuple(float(v) / scale for v in row[:4]) for row in rows]
        return _finish(boxes, bgr.shape, min_side, self.largest_only)


def make_detector(yunet: str | os.PathLike[str] | None = None,
                  min_size: int = DEFAULT_MIN_SIZE, largest_only: bool = False,
                  max_side: int | None = DEFAULT_MAX_SIDE,
                  scale_factor: float = DEFAULT_SCALE_FACTOR,
                  min_neighbors: int = DEFAULT_MIN_NEIGHBORS) -> FaceDetector:
    """The CLIs' choice: YuNet when a model file is given, else the Haar cascade.
    ``scale_factor`` and ``min_neighbors`` apply to Haar only."""
    if yunet:
        return YuNetDetector(yunet, min_size=min_size, largest_only=largest_only,
                             max_side=max_side)
    return HaarDetector(min_size=min_size, largest_only=largest_only, max_side=max_side,
                        scale_factor=scale_factor, min_neighbors=min_neighbors)


class TrackingDetector:
    """A video detector: a full search now and then, and between them a search only around
    the faces of the previous frame.

    A Haar search of a whole 640x480 frame is most of a webcam frame's time, yet in video
    the faces of one frame are almost where they were in the last. So every
    ``rescan_every``-th frame runs ``detector.detect`` (which finds new faces), and the
    frames between run ``detector.detect_near(image, previous_boxes)``, which looks only
    in a window around each known face. Whenever that finds fewer faces than it was given
    (a face turned away, left, or moved too far), the same frame falls back to a full
    search at once, so a lost face costs one full search, not ``rescan_every`` frames.
    A frame of another size (a new video) also starts with a full search.

    The cost is that a face entering the picture can take up to ``rescan_every - 1``
    frames to appear (0.13 s at 30 frames/s). A detector without ``detect_near`` (YuNet)
    is searched in full every frame. ``full_searches`` and ``frames`` count what happened.

    Parameters
    ----------
    detector : the wrapped detector, for example ``make_video_detector()``.
    rescan_every : a full search at least every this many frames; 1 turns tracking off.
    """

    def __init__(self, detector: FaceDetector, rescan_every: int = TRACK_RESCAN_EVERY) -> None:
        if rescan_every < 1:
            raise ValueError(f"rescan_every must be >= 1, got {rescan_every}")
        self.detector, self.rescan_every = detector, rescan_every
        self.frames = self.full_searches = 0
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame's faces: the next call searches the whole frame."""
        self._boxes: list[Box] = []
        self._shape: tuple[int, ...] | None = None
        self._since_full = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in this frame of the video, as ``detector.detect`` returns them."""
        self.frames += 1
        near = getattr(self.detector, "detect_near", None)
        if (near is not None and self._boxes and image.shape == self._shape
                and self._since_full + 1 < self.rescan_every):
            boxes = near(image, self._boxes)
            if len(boxes) >= len(self._boxes):
                self._boxes, self._since_full = boxes, self._since_full + 1
                return boxes
        boxes = self.detector.detect(image)
        self.full_searches += 1
        self._boxes, self._shape, self._since_full = boxes, image.shape, 0
        return boxes


def make_video_detector(yunet: str | os.PathLike[str] | None = None,
                        min_size: int = DEFAULT_MIN_SIZE, largest_only: bool = False,
                        detect_size: int = VIDEO_MAX_SIDE) -> FaceDetector:
    """``make_detector`` with the video settings: detection on a copy of each frame shrunk
    to ``detect_size`` px (see VIDEO_MAX_SIDE); 0 detects on the full frame with the photo
    settings, for small or distant faces."""
    if not detect_size:
        return make_detector(yunet, min_size, largest_only, max_side=None)
    return make_detector(yunet, min_size, largest_only, max_side=detect_size,
                         scale_factor=VIDEO_SCALE_FACTOR, min_neighbors=VIDEO_MIN_NEIGHBORS)


# ---------------------------------------------------------------------------------- crops
def square_box(box: Box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """The square crop for a box: (x0, y0, side), centred on the box, side = longer side
    * (1 + 2 * margin). It may extend past the image; ``crop_face`` pads those pixels."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    return x0, y0, side


def _square_crop(gray: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """``square_box``'s square cut from a gray image and resized to (size, size).

    Pixels outside the image are filled by replicating the edge; shrinking uses INTER_AREA,
    enlarging INTER_LINEAR. Raises ValueError when the box does not overlap the image.
    """
    h_img, w_img = gray.shape
    x0, y0, side = square_box(box, margin)
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w_img), min(y1, h_img)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {tuple(box)} lies outside the {w_img}x{h_img} image")
    crop = gray[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)  # top, bottom, left, right
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def crop_face(image: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN,
              angle: float | None = None) -> np.ndarray:
    """Cut one face out and make it the network's input size.

    Inputs
    ------
    image : uint8 gray (H, W) or BGR/BGRA colour; colour is converted to gray first.
    box : (x, y, w, h) from a detector.
    margin : fraction of the box's longer side added on each side (see the module docstring
        for why ``DEFAULT_MARGIN``).
    angle : degrees to turn the face counter-clockwise about the box's centre first
        (``eye_angle`` gives the one that levels the eyes); None or 0: no rotation.

    Returns
    -------
    uint8 (48, 48). Pixels of the square crop outside the image are filled by replicating the
    edge (as training's augmentation does), so a face at the border is not framed by black.
    Shrinking uses INTER_AREA (averages pixels, no aliasing, as ``data.to_gray48`` does for
    the training set); enlarging a face smaller than 48 px uses INTER_LINEAR, because
    INTER_AREA enlarges like nearest-neighbour.

    A rotated crop is cut 1.5x as large (so its turned corners are image, not padding),
    shrunk to 72 px, turned (bilinear), and its middle 48 px kept.

    Raises ValueError when the box does not overlap the image.
    """
    gray = to_gray(image)
    if not angle:
        return _square_crop(gray, box, margin, INPUT_SIZE)
    big = INPUT_SIZE * 3 // 2
    # the margin that makes the square 1.5x as large: 1 + 2 * m' = 1.5 * (1 + 2 * m)
    patch = _square_crop(gray, box, (1.5 * (1 + 2 * margin) - 1) / 2, big)
    turn = cv2.getRotationMatrix2D((big / 2 - 0.5, big / 2 - 0.5), float(angle), 1.0)
    patch = cv2.warpAffine(patch, turn, (big, big), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    lo = (big - INPUT_SIZE) // 2
    return np.ascontiguousarray(patch[lo:lo + INPUT_SIZE, lo:lo + INPUT_SIZE])


def crop_faces(image: np.ndarray, boxes: list[Box], margin: float = DEFAULT_MARGIN,
               align: bool = False) -> np.ndarray:
    """``crop_face`` for every box: uint8 (N, 48, 48), (0, 48, 48) when there are none.
    With ``align``, each face is turned so its eyes are level where ``eye_angle`` finds
    them (faces without a pair of eyes are cropped as they are)."""
    gray = to_gray(image)
    out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    for i, box in enumerate(boxes):
        out[i] = crop_face(gray, box, margin, eye_angle(gray, box) if align else None)
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
