"""Expressions on the real-photo set: the shipped model (or ``--weights``) on every face of
benchmarks/realfaces whose expression is labelled, cropped from its hand-checked box the
way ``EmotionRecognizer.analyze`` crops a detected one (so detection plays no part).

    python benchmarks/realfaces/fetch.py                 # once: rebuild the set
    python benchmarks/bench_expression_real.py [--weights FILE] [--align]

Prints the count right per labelled class and each miss. The set's labels are what is
clear in public photos, mostly happy and neutral faces; it checks little beyond those.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_detect_real import load_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="model file (default: the shipped one)")
    p.add_argument("--align", action="store_true", help="level the eyes first")
    args = p.parse_args(argv)
    from emotion.faces import crop_faces, to_gray
    from emotion.labels import CLASSES
    from emotion.recognizer import EmotionRecognizer

    rec = EmotionRecognizer(args.weights, align=args.align)
    labels, images = load_set()
    right, total, misses = Counter(), Counter(), []
    for name, entry in labels["images"].items():
        faces = [f for f in entry["faces"] if f.get("expression")]
        if not faces:
            continue
        gray = to_gray(images[name])
        crops = crop_faces(gray, [tuple(f["box"]) for f in faces], rec.margin, align=args.align)
        for face, probs in zip(faces, rec.predict_faces(crops)):
            got = CLASSES[int(probs.argmax())]
            want = face["expression"]
            total[want] += 1
            if got == want:
                right[want] += 1
            else:
                misses.append(f"{name} {face['box']}: {want} taken for {got}")
    print(f"weights: {args.weights or 'shipped'}; align: {args.align}")
    for label in sorted(total):
        print(f"{label}: {right[label]} of {total[label]}")
    print(f"all: {sum(right.values())} of {sum(total.values())}")
    for line in misses:
        print("  miss:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
