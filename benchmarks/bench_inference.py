"""End-to-end inference time per frame: a 640x480 frame with one face, detection included.

    python benchmarks/bench_inference.py            # full run
    python benchmarks/bench_inference.py --quick    # a second or two

For each architecture and TTA mode it reports the median time of the two steps the webcam
loop repeats every frame, measured separately:

    detect_ms    the Haar detector with the webcam's settings (``make_video_detector``: a
                 shrunk copy of the frame, coarser steps; the same detector for every
                 row). The note also gives the photo settings' time (full frame, 1.1
                 steps), which emotion.predict uses.
    classify_ms  crop + per-image standardisation + network forward (eval) for the one face
    total_ms     EmotionRecognizer.analyze(frame): both, as the webcam runs them
    fps          1000 / total_ms

The "video" rows time what emotion.webcam really runs: a ``TrackingDetector``, which
searches the whole frame every 5th frame and only around the known face in between, over a
clip of the same frame with the face drifting by up to 20 px (the frame shifted). Their
detect_ms and total_ms are means over the clip, and the note counts the frames in which
the face was found, against a full search of every frame of the same clip.

The face is a real FER2013 test face (upscaled to 200 px) when the data folder is present,
otherwise a synthetic face; with a synthetic face Haar may find nothing, so classification
is also timed on a fixed box so that its row is never empty. The models are untrained when
no shipped weights exist: the time of a forward pass does not depend on the weight values.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import cv2
import numpy as np

import minicnn
from emotion.faces import HaarDetector, TrackingDetector, crop_faces, make_video_detector
from emotion.models import build
from emotion.preprocess import predict_proba
from emotion.recognizer import DEFAULT_WEIGHTS, EmotionRecognizer
from emotion.study import fer2013_dir
from emotion.synthetic import make_synthetic

FRAME = (480, 640)  # H, W
FACE_BOX = (220, 120, 200, 200)  # x, y, w, h: where the face is placed


def make_frame() -> tuple[np.ndarray, str]:
    """A BGR 640x480 frame with one 200-px face on a mildly noisy gray background."""
    files = sorted((fer2013_dir() / "test" / "happy").glob("*.jpg"))[:1]
    if files:
        face, source = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE), "FER2013 face"
    else:
        face, source = make_synthetic(1, 0)[0][0], "synthetic face"
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 6, FRAME), 0, 255).astype(np.uint8)
    x, y, w, h = FACE_BOX
    img[y:y + h, x:x + w] = cv2.resize(face, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), source


def make_clip(frame: np.ndarray, n: int) -> list[np.ndarray]:
    """n frames: the frame shifted along a slow, smooth path (up to 20 px across, 10 down)."""
    return [np.roll(frame, (round(10 * np.sin(i / 7)), round(20 * np.sin(i / 5))), axis=(0, 1))
            for i in range(n)]


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: Numba compilation, cache fill
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    """One row per (architecture, TTA): detect_ms, classify_ms, total_ms, fps, faces found,
    plus case / ours / unit / note for the suite's table (``python -m benchmarks``)."""
    from minicnn.threads import get_num_threads, set_num_threads

    before = get_num_threads()
    set_num_threads(1)  # as emotion.webcam does: OpenCV's detector keeps the cores
    try:
        return _run(quick)
    finally:
        set_num_threads(before["blas"] or before["numba"] or 1)


def _recognizer(arch: str, detector, tta: str) -> tuple[EmotionRecognizer, str, str]:
    """(recognizer, architecture, "shipped" or "untrained"): "default" means the shipped
    model (its own architecture, read from its file) where its weights are there, else an
    untrained ``build("default")``; any other name an untrained ``build(arch)``."""
    if arch == "default" and DEFAULT_WEIGHTS.is_file():
        rec = EmotionRecognizer(None, detector=detector, tta=tta)
        return rec, minicnn.load(DEFAULT_WEIGHTS).metadata.get("arch", "shipped"), "shipped"
    return EmotionRecognizer.from_model(build(arch, 0), detector=detector, tta=tta), arch, \
        "untrained"


def _run(quick: bool) -> list[dict]:
    frame, source = make_frame()
    repeats = 3 if quick else 30
    archs = ["small"] if quick else ["small", "default"]
    ttas = ["none"] if quick else ["none", "flip"]
    photo_detector = HaarDetector()
    photo_ms = _median_ms(lambda: photo_detector.detect(frame), repeats)
    detector = make_video_detector()
    detect_ms = _median_ms(lambda: detector.detect(frame), repeats)
    found = detector.detect(frame)
    boxes = found[:1] or [FACE_BOX]
    rows = []
    for name in archs:
        for tta in ttas:
            rec, arch, weights = _recognizer(name, detector, tta)
            # the network the recognizer runs (batch norm folded), on the face it crops
            classify_ms = _median_ms(
                lambda r=rec, t=tta: predict_proba(r.model, crop_faces(frame, boxes), tta=t),
                repeats)
            total_ms = _median_ms(lambda r=rec: r.analyze(frame), repeats)
            rows.append({
                "mode": "frame", "arch": arch, "weights": weights, "tta": tta, "face": source,
                "faces_found": len(found), "detect_ms": round(detect_ms, 2),
                "classify_ms": round(classify_ms, 2), "total_ms": round(total_ms, 2),
                "fps": round(1000 / total_ms, 1),
                # The keys benchmarks/runner.py reads (Row.from_dict) for its table.
                "case": f"{arch} tta={tta}, 640x480 frame, 1 face", "ours": round(total_ms, 2),
                "unit": "ms/frame",
                "note": f"detect {detect_ms:.1f} ms + classify {classify_ms:.1f} ms; "
                        f"{1000 / total_ms:.1f} FPS (full-frame detection: {photo_ms:.0f} ms)"})
    rows += _video_rows(frame, source, archs[-1], ttas, n_frames=20 if quick else 100)
    return rows


def _video_rows(frame: np.ndarray, source: str, arch: str, ttas: list[str],
                n_frames: int) -> list[dict]:
    """Mean ms a frame over a clip, with the webcam's TrackingDetector (see the docstring)."""
    clip = make_clip(frame, n_frames)
    full_found = sum(bool(make_video_detector().detect(f)) for f in clip)
    name, rows = arch, []
    for tta in ttas:
        tracker = TrackingDetector(make_video_detector())
        rec, arch, weights = _recognizer(name, tracker, tta)
        for f in clip[:3]:  # warm-up
            rec.analyze(f)
        tracker.reset()
        tracker.frames = tracker.full_searches = 0
        t0 = time.perf_counter()
        found = sum(bool(tracker.detect(f)) for f in clip)
        detect_ms = 1000 * (time.perf_counter() - t0) / len(clip)
        full_searches = tracker.full_searches
        tracker.reset()
        t0 = time.perf_counter()
        for f in clip:
            rec.analyze(f)
        total_ms = 1000 * (time.perf_counter() - t0) / len(clip)
        rows.append({
            "mode": "video", "arch": arch, "weights": weights, "tta": tta, "face": source,
            "faces_found": found, "detect_ms": round(detect_ms, 2),
            "classify_ms": round(total_ms - detect_ms, 2), "total_ms": round(total_ms, 2),
            "fps": round(1000 / total_ms, 1),
            "case": f"{arch} tta={tta}, 640x480 video, 1 face, tracking",
            "ours": round(total_ms, 2), "unit": "ms/frame",
            "note": f"mean of {len(clip)} frames, full search every "
                    f"{tracker.rescan_every}th ({full_searches} of them); "
                    f"{1000 / total_ms:.1f} FPS; face found in {found}/{len(clip)} frames "
                    f"(full search of every frame: {full_found}/{len(clip)})"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, 3 repeats")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}, "
          f"NumPy {np.__version__}; frame {FRAME[1]}x{FRAME[0]}")
    rows = run(args.quick)
    print(f"face: {rows[0]['face']}, Haar found {rows[0]['faces_found']}")
    print(f"{'mode':<6} {'arch':<8} {'weights':<9} {'tta':<5} {'detect ms':>9} "
          f"{'classify ms':>11} {'total ms':>8} {'FPS':>6}")
    for r in rows:
        print(f"{r['mode']:<6} {r['arch']:<8} {r['weights']:<9} {r['tta']:<5} "
              f"{r['detect_ms']:>9.2f} {r['classify_ms']:>11.2f} {r['total_ms']:>8.2f} "
              f"{r['fps']:>6.1f}")
    base = rows[0]["total_ms"]
    for r in rows[1:]:  # ratios within this run, which transfer between machines
        print(f"{r['mode']} {r['arch']}/{r['tta']} costs {r['total_ms'] / base:.2f}x "
              f"{rows[0]['mode']} {rows[0]['arch']}/{rows[0]['tta']}")
    for r in rows:
        if r["mode"] == "video":
            print(f"video {r['arch']}/{r['tta']}: {r['note']}")


if __name__ == "__main__":
    main()
