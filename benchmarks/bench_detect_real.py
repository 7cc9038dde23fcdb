"""Face detection on real photos and clips: precision and recall per detector variant.

    python benchmarks/realfaces/fetch.py          # once: rebuild the set (see its SOURCES.md)
    python benchmarks/bench_detect_real.py        # prints markdown tables

The set is benchmarks/realfaces: 28 public photos with hand-checked boxes in labels.json,
and two clips. A detection is correct when its IoU with a labelled face is >= 0.4
(matched greedily, best IoU first, one detection per face); any other detection, a second
box on an already matched face included, is a false box. Recall counts the required faces:
frontal and at least 48 px (``max(w, h)``); smaller or turned faces may be found (then
they are not false) but need not be. "dim" repeats the photos darkened (gamma 2.2, then
x0.35), the light in which equalisation is supposed to help.

Clips: each is run as the webcam does (``TrackingDetector`` around ``make_video_detector``,
then ``webcam.FaceTracker``), counting face tracks, tracks of a second or more, and frames
with two boxes on one face (IoU > 0.3 or a centre inside another box).

Grey canvas (when FER2013 is at ../shared/data/fer2013 or $FER2013_DIR): 300 test faces,
each upscaled to 180 px alone on a flat mid-grey 360x480 canvas with mild noise (the tests'
``place_faces``), the plain-background case in which equalisation was said to cost faces
(CK+ faces on a grey canvas: 317 of 327 found with it, 327 without). Read only; nothing
from FER2013 is written.

Timing is the mean wall time per photo, one process; compare rows of one run only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion import faces  # noqa: E402
from emotion.faces import HaarDetector, TrackingDetector, iou, make_video_detector  # noqa: E402
from emotion.webcam import FaceTracker  # noqa: E402

SET = Path(__file__).resolve().parent / "realfaces"
MATCH_IOU, REQUIRED_SIDE = 0.4, 48
V1 = dict(min_size=48, min_neighbors=5, equalize=True, verify=False,  # the previous default
          stretch=False)
LOOSE = dict(min_size=36, min_neighbors=3, equalize=False, verify=False,  # new search, no check
             stretch=False)


def load_set() -> tuple[dict, dict[str, np.ndarray]]:
    labels = json.loads((SET / "labels.json").read_text())
    images = {}
    for name in labels["images"]:
        image = cv2.imread(str(SET / "images" / name))
        if image is None:
            sys.exit(f"{SET / 'images' / name}: missing; run benchmarks/realfaces/fetch.py first")
        images[name] = image
    return labels, images


def darken(image: np.ndarray) -> np.ndarray:
    """Dim light: gamma 2.2, then 35 % of the brightness."""
    return np.clip(((image / 255.0) ** 2.2) * 0.35 * 255, 0, 255).astype(np.uint8)


def score(labelled: list[dict], boxes: list) -> tuple[int, int, int]:
    """(required faces found, other faces found, false boxes) for one image."""
    pairs = sorted(((iou(tuple(b), tuple(f["box"])), bi, fi) for bi, b in enumerate(boxes)
                    for fi, f in enumerate(labelled)), reverse=True)
    used_b, used_f = set(), set()
    for overlap, bi, fi in pairs:
        if overlap < MATCH_IOU:
            break
        if bi not in used_b and fi not in used_f:
            used_b.add(bi)
            used_f.add(fi)
    required = sum(1 for fi in used_f if labelled[fi]["frontal"]
                   and max(labelled[fi]["box"][2:]) >= REQUIRED_SIDE)
    return required, len(used_f) - required, len(boxes) - len(used_b)


def evaluate(detect, labels: dict, images: dict, transform=None) -> dict:
    total_req = sum(1 for v in labels["images"].values() for f in v["faces"]
                    if f["frontal"] and max(f["box"][2:]) >= REQUIRED_SIDE)
    found = other = false = 0
    false_in: list[str] = []
    seconds = 0.0
    for name, image in images.items():
        if transform is not None:
            image = transform(image)
        t0 = time.perf_counter()
        boxes = detect(image)
        seconds += time.perf_counter() - t0
        r, o, f = score(labels["images"][name]["faces"], boxes)
        found, other, false = found + r, other + o, false + f
        false_in += [name] * f
    return {"found": found, "required": total_req, "other": other, "false": false,
            "precision": (found + other) / max(1, found + other + false),
            "ms": 1000 * seconds / len(images), "false_in": false_in}


# ------------------------------------------------------------------ variants built here
def weight_threshold_variant(threshold: float):
    """The loose search, keeping boxes whose detectMultiScale3 level weight >= threshold."""
    cascade = faces._shipped_cascade(faces.HAAR_CASCADE)

    def detect(image):
        gray = faces.to_gray(image)
        small, scale = faces._shrink_for_detection(gray, faces.DEFAULT_MAX_SIDE)
        min_side = faces._min_side(gray.shape, 36, faces.DEFAULT_MIN_FRACTION) * scale
        boxes, _, weights = cascade.detectMultiScale3(
            small, 1.1, 3, minSize=(int(min_side),) * 2, outputRejectLevels=True)
        pairs = zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel())
        keep = [tuple(v / scale for v in b) for b, w in pairs if w >= threshold]
        return faces._finish(keep, gray.shape, int(min_side / scale), False)
    return detect


def filtered_variant(keep):
    """The loose search, then ``keep(gray, box) -> bool`` on each candidate, no NMS."""
    loose = HaarDetector(**LOOSE)

    def detect(image):
        gray = faces.to_gray(image)
        return [b for b in loose.detect(image) if keep(gray, b)]
    return detect


def profile_variant():
    """OpenCV's profile cascade (left-facing) on the image and its mirror, 36 px, 3 neighbours."""
    profile = HaarDetector(**LOOSE, cascade_path=Path(cv2.data.haarcascades)
                           / "haarcascade_profileface.xml")

    def detect(image):
        w = image.shape[1]
        boxes = profile.detect(image)
        boxes += [(w - x - bw, y, bw, bh) for x, y, bw, bh in profile.detect(image[:, ::-1])]
        return boxes
    return detect


def variants() -> list[tuple[str, object]]:
    alt2 = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"
    support = lambda g, b: faces.face_support(g, b) >= faces.VERIFY_SUPPORT  # noqa: E731
    eyes = lambda g, b: bool(faces.find_eyes(g, b))  # noqa: E731
    return [
        ("v1 default: 48 px, 5 neighbours, equalised, no check", HaarDetector(**V1).detect),
        ("v1 without equalisation", HaarDetector(**{**V1, "equalize": False}).detect),
        ("v1 with the alt2 cascade", HaarDetector(**V1, cascade_path=alt2).detect),
        ("alt2, not equalised",
         HaarDetector(**{**V1, "equalize": False}, cascade_path=alt2).detect),
        ("loose search: 36 px, 3 neighbours, not equalised, no check",
         HaarDetector(**LOOSE).detect),
        ("loose + level weight >= 3", weight_threshold_variant(3.0)),
        ("loose + level weight >= 6.5", weight_threshold_variant(6.5)),
        ("loose + eye check only", filtered_variant(eyes)),
        (f"loose + support >= {faces.VERIFY_SUPPORT} only", filtered_variant(support)),
        ("loose + (support or eye), no NMS", filtered_variant(lambda g, b: support(g, b)
                                                               or eyes(g, b))),
        ("**new default**: levels stretched, loose + (support or eye) + NMS, equalised "
         "if nothing found",
         HaarDetector().detect),
        ("new default, always equalised", HaarDetector(equalize=True).detect),
        ("new default, never equalised", HaarDetector(equalize=False).detect),
        ("new default without the level stretch", HaarDetector(stretch=False).detect),
        ("new default at 48 px", HaarDetector(min_size=48).detect),
        ("profile cascade, both directions (loose, no check)", profile_variant()),
    ]


def photo_table(labels: dict, images: dict) -> None:
    print("| variant | required found | other faces found | false boxes | precision "
          "| ms/photo | dim: required found | dim: false boxes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, detect in variants():
        r = evaluate(detect, labels, images)
        d = evaluate(detect, labels, images, transform=darken)
        print(f"| {name} | {r['found']}/{r['required']} | {r['other']} | {r['false']} | "
              f"{r['precision']:.3f} | {r['ms']:.0f} | {d['found']}/{d['required']} | "
              f"{d['false']} |", flush=True)
        if r["false"]:
            print(f"<!-- false boxes in: {', '.join(sorted(set(r['false_in'])))} -->")


def overlapping(boxes: list) -> bool:
    """Two boxes on one face: IoU > 0.3 or one's centre inside the other."""
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            inside = any(o[0] <= p[0] + p[2] / 2 <= o[0] + o[2]
                         and o[1] <= p[1] + p[3] / 2 <= o[1] + o[3] for p, o in ((a, b), (b, a)))
            if iou(a, b) > 0.3 or inside:
                return True
    return False


def run_clip(path: Path, detector) -> tuple[int, int, int, dict[int, list[float]]]:
    """Run a clip as the webcam does (detector, then ``FaceTracker``): (frames, boxes,
    frames with two boxes on one face, track id -> the times it was seen)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tracker, seen, frames, doubled, boxes_total = FaceTracker(), {}, 0, 0, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        boxes = detector.detect(frame)
        boxes_total += len(boxes)
        doubled += overlapping(boxes)
        for track in tracker.update(boxes, np.full((len(boxes), 7), 1 / 7)):
            seen.setdefault(track.id, []).append(frames / fps)
        frames += 1
    cap.release()
    return frames, boxes_total, doubled, seen


def clip_row(path: Path, detector, label: str) -> str:
    frames, boxes_total, doubled, seen = run_clip(path, detector)
    long = sum(1 for t in seen.values() if t[-1] - t[0] >= 1.0)
    return (f"| {path.name} | {label} | {frames} | {boxes_total} | {len(seen)} | {long} | "
            f"{doubled} |")


def clip_table() -> None:
    print("\n| clip | detector | frames | boxes | tracks | tracks >= 1 s | frames with 2 boxes "
          "on a face |")
    print("|---|---|---|---|---|---|---|")
    old = dict(V1, max_side=faces.VIDEO_MAX_SIDE, scale_factor=faces.VIDEO_SCALE_FACTOR,
               min_neighbors=faces.VIDEO_MIN_NEIGHBORS)
    for clip in sorted((SET / "clips").glob("*")):
        print(clip_row(clip, TrackingDetector(HaarDetector(**old)), "v1 video settings"))
        print(clip_row(clip, TrackingDetector(make_video_detector()), "new default"),
              flush=True)


def grey_canvas_table(n: int = 300) -> None:
    import os

    from emotion.faces import iou as overlap
    fer = Path(os.environ.get("FER2013_DIR", Path(__file__).resolve().parents[2] / "shared"
                              / "data" / "fer2013")) / "test"
    files = sorted(fer.glob("*/*.jpg"))
    if not files:
        print(f"\n(no FER2013 test faces at {fer}: grey-canvas table skipped)")
        return
    files = files[:: max(1, len(files) // n)][:n]
    rng = np.random.default_rng(0)
    canvases = []
    for f in files:
        canvas = np.clip(rng.normal(128, 6, (360, 480)), 0, 255).astype(np.uint8)
        canvas[90:270, 150:330] = cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE),
                                             (180, 180), interpolation=cv2.INTER_CUBIC)
        canvases.append(canvas)
    print(f"\n| detector, {len(files)} FER faces alone on a grey canvas | found | false boxes |")
    print("|---|---|---|")
    for name, det in (("v1 default (equalised)", HaarDetector(**V1)),
                      ("v1 without equalisation", HaarDetector(**{**V1, "equalize": False})),
                      ("new default", HaarDetector()),
                      ("new default, always equalised", HaarDetector(equalize=True))):
        found = false = 0
        for canvas in canvases:
            boxes = det.detect(canvas)
            hit = [overlap(b, (150, 90, 180, 180)) >= MATCH_IOU for b in boxes]
            found += any(hit)
            false += len(boxes) - min(1, sum(hit))
        print(f"| {name} | {found}/{len(files)} | {false} |", flush=True)


def main() -> int:
    labels, images = load_set()
    photo_table(labels, images)
    clip_table()
    grey_canvas_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
