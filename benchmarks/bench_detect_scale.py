"""What detecting faces on a shrunk copy of each webcam frame costs in recall, and saves in time.

    python benchmarks/bench_detect_scale.py                  # about a minute on 2 busy cores
    python benchmarks/bench_detect_scale.py --frames 8       # a quick look
    python benchmarks/bench_detect_scale.py --data PATH --out detect_scale.png

The webcam (``emotion.webcam``) runs the Haar cascade on a copy of each 640x480 frame shrunk
to ``VIDEO_MAX_SIDE`` px, with coarser scale steps (``faces.make_video_detector``);
``emotion.predict`` runs it on the full image with 1.1 steps. The frames here are 640x480,
each with one real FER2013 test face upscaled (INTER_CUBIC) to a side of S px at a random
position on a smooth random background.
For each S it reports the recall of both settings (a hit: a returned box with IoU >= 0.3
with the placed face), and over all frames the mean detection time per frame (the two
settings alternate on every frame, so a busy machine slows both alike) and the boxes per
frame that match no face (false positives).

Both settings drop faces under the webcam's minimum face size (``--min-face``, default 48
px, as in ``emotion.webcam``), so recall below it is 0 for both by design.
Exit status 2 when the FER2013 folder is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from emotion.faces import (
    DEFAULT_MIN_SIZE,
    VIDEO_MAX_SIDE,
    FaceDetector,
    iou,
    make_detector,
    make_video_detector,
)
from emotion.study import fer2013_dir

FRAME = (480, 640)  # H, W: a webcam frame
SIZES = (40, 48, 56, 64, 72, 80, 96, 128, 160, 200)  # face side S, px
HIT_IOU = 0.3
SEED = 0


def make_frame(face: np.ndarray, side: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR 640x480 frame with the 48x48 face upscaled to side x side at a random place.

    The background is smooth random shading (a coarse random grid, upscaled) plus mild
    pixel noise, so that neither setting gets a perfectly flat, easy background.
    Returns the frame and the placed box (x, y, w, h).
    """
    h, w = FRAME
    coarse = rng.normal(128, 25, (6, 8))
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 6, FRAME)
    img = np.clip(img, 0, 255).astype(np.uint8)
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    img[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), (x, y, side, side)


def _detect(detector: FaceDetector, frame: np.ndarray, box) -> tuple[bool, int, float]:
    """(hit, false-positive boxes, seconds) for one frame."""
    t0 = time.perf_counter()
    found = detector.detect(frame)
    seconds = time.perf_counter() - t0
    hits = [iou(b, box) >= HIT_IOU for b in found]
    return any(hits), hits.count(False), seconds


def run(data: Path, frames: int, min_face: int = DEFAULT_MIN_SIZE,
        sizes: tuple[int, ...] = SIZES, progress: bool = True) -> dict:
    """Recall per face size and time / false positives per frame, for both settings.

    Returns {"sizes", "recall": {name: [per size]}, "ms": {name: mean},
    "fp_per_frame": {name: mean}, "frames_per_size"}.
    """
    files = sorted((data / "test").glob("*/*.jpg"))
    rng = np.random.default_rng(SEED)
    picks = rng.choice(len(files), size=min(len(files), frames * len(sizes)), replace=False)
    detectors: dict[str, FaceDetector] = {
        # emotion.predict: the full image, 1.1 scale steps
        "full frame": make_detector(None, min_face),
        # emotion.webcam with its default --detect-size
        f"{VIDEO_MAX_SIDE}-px copy": make_video_detector(None, min_face),
    }
    names = list(detectors)
    hits = {n: np.zeros(len(sizes), int) for n in names}
    fps = dict.fromkeys(names, 0)
    seconds = dict.fromkeys(names, 0.0)
    warm, _ = make_frame(np.full((48, 48), 128, np.uint8), 48, rng)
    for d in detectors.values():
        d.detect(warm)  # warm-up: OpenCV's thread pool, the cascade's first pass
    total = 0
    with tqdm(total=frames * len(sizes), unit="frame", disable=not progress,
              leave=False) as bar:
        for i, side in enumerate(sizes):
            for j in range(frames):
                face_file = files[picks[(i * frames + j) % len(picks)]]
                face = cv2.imread(str(face_file), cv2.IMREAD_GRAYSCALE)
                frame, box = make_frame(face, side, rng)
                order = names if total % 2 == 0 else names[::-1]  # alternate who goes first
                for n in order:
                    hit, fp, dt = _detect(detectors[n], frame, box)
                    hits[n][i] += hit
                    fps[n] += fp
                    seconds[n] += dt
                total += 1
                bar.update()
    return {"sizes": list(sizes), "frames_per_size": frames,
            "recall": {n: (hits[n] / frames).tolist() for n in names},
            "ms": {n: 1000 * seconds[n] / total for n in names},
            "fp_per_frame": {n: fps[n] / total for n in names}}


def print_table(res: dict) -> None:
    names = list(res["recall"])
    print(f"recall (IoU >= {HIT_IOU}), {res['frames_per_size']} frames per face size:")
    print(f"{'face px':>7} " + " ".join(f"{n:>14}" for n in names))
    for k, side in enumerate(res["sizes"]):
        print(f"{side:>7} " + " ".join(f"{res['recall'][n][k]:>14.2f}" for n in names))
    print(f"{'ms/frame':>7} " + " ".join(f"{res['ms'][n]:>14.1f}" for n in names))
    print(f"{'FP/frame':>7} " + " ".join(f"{res['fp_per_frame'][n]:>14.3f}" for n in names))


def plot(res: dict, path: Path, min_face: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, recall), marker in zip(res["recall"].items(), "os"):
        ax.plot(res["sizes"], recall, marker=marker,
                label=f"{name}: {res['ms'][name]:.0f} ms/frame, "
                      f"{res['fp_per_frame'][name]:.2f} FP/frame")
    ax.axvline(min_face, color="grey", ls=":", lw=1)
    ax.text(min_face, 0.02, f" --min-face {min_face}", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(res["sizes"], [str(s) for s in res["sizes"]])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("face side in a 640x480 frame (px)")
    ax.set_ylabel(f"recall (IoU >= {HIT_IOU})")
    ax.set_title(f"Haar on a 640x480 frame: full frame vs {VIDEO_MAX_SIDE}-px copy "
                 f"({res['frames_per_size']} FER2013 faces per size)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="FER2013 folder with test/<class>/*.jpg (default: where "
                        "emotion.study finds it)")
    p.add_argument("--frames", type=int, default=40, metavar="N",
                   help="frames per face size (default 40)")
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_SIZE, metavar="N",
                   help=f"minimum face side, as emotion.webcam's --min-face "
                        f"(default {DEFAULT_MIN_SIZE})")
    p.add_argument("--out", type=Path, default=Path("detect_scale.png"), metavar="PNG",
                   help="plot of recall against face size (default detect_scale.png)")
    args = p.parse_args(argv)
    data = args.data or fer2013_dir()
    if not any((data / "test").glob("*/*.jpg")):
        print(f"skipped: no FER2013 test faces (test/<class>/*.jpg) under {data}; "
              f"pass --data PATH or set FER2013_DIR", file=sys.stderr)
        return 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, 1-min load {load:.2f}, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads); frame "
          f"{FRAME[1]}x{FRAME[0]}, min face {args.min_face} px")
    res = run(data, args.frames, args.min_face)
    print_table(res)
    plot(res, args.out, args.min_face)
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
