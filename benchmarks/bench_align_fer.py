"""Eye alignment on tilted faces: the shipped model's accuracy on FER2013 test faces rotated
by up to 20 degrees, with and without levelling the eyes first.

    python benchmarks/bench_align_fer.py [--data ../shared/data/fer2013] [--n 2000]

Each face (every k-th file of test/, all classes) is upscaled 48 -> 144 px, turned by an
angle drawn uniformly from [-20, 20] degrees (seed 0; edges replicated), and padded to
192 px with its edge pixels, so that the detector and the eye cascade have pixels to work
with. Rows:

* upright: the face not turned, cropped at the box where it was placed;
* turned, placed box: the turned face cropped at the same box, as it is;
* turned, placed box, aligned: the same, turned back by ``faces.eye_angle`` when it
  finds two eyes (the rate is given);
* turned, placed box, true angle: turned back by the angle it was turned by (the most
  alignment could give);
* detector rows: ``EmotionRecognizer.analyze`` end to end (Haar detection, then the crop),
  with ``align`` off and on; a face not found counts as wrong.

The model is ``EmotionRecognizer()``'s default weights with its default TTA. Nothing from
FER2013 is written anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion import faces  # noqa: E402
from emotion.labels import CLASSES  # noqa: E402
from emotion.recognizer import EmotionRecognizer  # noqa: E402

FACE, CANVAS, MAX_TILT = 144, 192, 20.0
BOX = ((CANVAS - FACE) // 2, (CANVAS - FACE) // 2, FACE, FACE)


def tilted(face48: np.ndarray, angle: float) -> np.ndarray:
    """A 48x48 face upscaled to FACE px, turned by ``angle`` degrees counter-clockwise,
    edge-padded to CANVAS px."""
    big = cv2.resize(face48, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    if angle:
        turn = cv2.getRotationMatrix2D((FACE / 2 - 0.5, FACE / 2 - 0.5), angle, 1.0)
        big = cv2.warpAffine(big, turn, (FACE, FACE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    pad = (CANVAS - FACE) // 2
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                         / "fer2013"))
    p.add_argument("--n", type=int, default=2000, help="faces to use (every k-th file)")
    args = p.parse_args(argv)
    files = sorted(Path(args.data, "test").glob("*/*.jpg"))
    if not files:
        sys.exit(f"{args.data}/test: no FER2013 test images")
    files = files[:: max(1, len(files) // args.n)][: args.n]
    labels = np.array([CLASSES.index(f.parent.name) for f in files])
    rng = np.random.default_rng(0)
    angles = rng.uniform(-MAX_TILT, MAX_TILT, len(files))
    rec = EmotionRecognizer()
    rec_aligned = EmotionRecognizer(align=True)
    rec_plain = EmotionRecognizer(align=False)

    crops: dict[str, list[np.ndarray]] = {k: [] for k in ("upright", "turned", "aligned", "true")}
    found_pair, errors = 0, []
    detected = {"off": [], "on": []}
    t0 = time.perf_counter()
    for f, angle in zip(files, angles):
        face = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        upright, turned = tilted(face, 0.0), tilted(face, float(angle))
        crops["upright"].append(faces.crop_face(upright, BOX))
        crops["turned"].append(faces.crop_face(turned, BOX))
        est = faces.eye_angle(turned, BOX)
        found_pair += est is not None
        crops["aligned"].append(faces.crop_face(turned, BOX, angle=est))
        crops["true"].append(faces.crop_face(turned, BOX, angle=-float(angle)))
        if est is not None:
            errors.append(est + float(angle))  # the face was turned by +angle: -angle levels it
        for key, r in (("off", rec_plain), ("on", rec_aligned)):
            results = r.analyze(turned)
            detected[key].append(CLASSES.index(results[0].label) if results else -1)
    n = len(files)
    print(f"{n} FER2013 test faces, turned by U(-{MAX_TILT:.0f}, {MAX_TILT:.0f}) degrees; "
          f"two eyes found on {found_pair} ({found_pair / n:.1%}); "
          f"{time.perf_counter() - t0:.0f} s; estimated angle minus the true one: median "
          f"{np.median(errors):+.1f}, median absolute {np.median(np.abs(errors)):.1f} degrees\n")
    print("| crop | accuracy |")
    print("|---|---|")
    names = {"upright": "upright, placed box", "turned": "turned, placed box",
             "aligned": "turned, placed box, aligned by the eyes",
             "true": "turned, placed box, turned back by the true angle"}
    for key, label in names.items():
        pred = np.argmax(rec.predict_faces(np.stack(crops[key])), axis=1)
        print(f"| {label} | {np.mean(pred == labels):.2%} |")
    for key, label in (("off", "turned, detector, not aligned"),
                       ("on", "turned, detector, aligned")):
        pred = np.array(detected[key])
        print(f"| {label} (found {np.mean(pred >= 0):.1%}) | {np.mean(pred == labels):.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
