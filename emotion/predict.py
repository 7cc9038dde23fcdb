"""python -m emotion.predict: emotions of the faces in images, as a table, JSON or CSV.

    python -m emotion.predict photo.jpg holiday/ --annotate annotated/
    python -m emotion.predict photos/ --json > results.json
    python -m emotion.predict photos/ --csv --largest > faces.csv
    python -m emotion.predict fer_face.png --whole-image    # an already-cropped face

Folders are walked (recursively) for .jpg, .jpeg, .png, .bmp and .webp files; a file named
on the command line is read whatever its extension. Results go to stdout; messages and
per-file errors go to stderr, so ``--json``/``--csv`` output stays machine-readable.

Exit status: 0 when every file was read (an image with no face is not an error), 2 when the
weights cannot be loaded, or after processing the rest when any file failed.

Output formats
--------------
table : per image, one line per face: index, box, label, score and the 7 probabilities.
--json : ``[{"file": ..., "faces": [{"box": [x, y, w, h], "label": ..., "score": ...,
         "probabilities": {"angry": ..., ...}}]}]``; files that failed are left out (see stderr).
--csv : header ``file,face,x,y,w,h,label,score,angry,...,surprise``; one row per face.

Annotated copies (--annotate OUT_DIR)
-------------------------------------
``IMAGE`` named on the command line -> ``OUT_DIR/<stem>_annotated.<ext>``; a file found in
a folder ``F`` -> ``OUT_DIR/F/<path below F>/<stem>_annotated.<ext>`` (F is the folder's
own name; PNG when OpenCV cannot write the extension). A name that another input of the
same run already got (``x/me.jpg`` and ``y/me.jpg``, two folders both named ``photos``), or
that is itself one of the run's inputs, gets a number: ``me_annotated-2.jpg``, ``-3``, ...
So an input is never overwritten, even with OUT_DIR the inputs' own folder; an existing
file of that name that is not an input is replaced (a rerun refreshes its own outputs).
Each copy's path is printed on stderr.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emotion.backends import BACKENDS, use_backend
from emotion.cli import Bounded, not_a_file, path_text, run
from emotion.draw import draw_results
from emotion.faces import DEFAULT_MIN_SIZE, DetectorError, make_detector
from emotion.labels import CLASSES
from emotion.outputs import OutputNamer, check_folder, training_checkpoint_hint
from emotion.preprocess import DEFAULT_TTA, TTA_MODES
from emotion.recognizer import EmotionRecognizer, FaceResult, read_image
from minicnn.serialize import atomic_write

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
EXIT_USER_ERROR = 2


def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand the command-line inputs into image files.

    Returns
    -------
    files : (path, relative name) pairs; the relative name places an annotated copy under
        OUT_DIR (``annotated_name``): a file's own name, or for a folder's files the
        folder's name and their path below it.
    errors : messages for inputs that do not exist.
    """
    files: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        if not str(item):  # Path("") is ".": an unset shell variable must not walk the cwd
            errors.append("'': an empty path (an unset variable?); name a file or folder")
            continue
        try:
            if path.is_dir():
                found = sorted(p for p in path.rglob("*")
                               if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                               and not any(part.startswith(".")
                                           for part in p.relative_to(path).parts))
                if not found:
                    print(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in "
                          f"this folder", file=sys.stderr)
                # the folder's own name, also for "." or "..": never a path leaving OUT_DIR
                folder = Path(os.path.abspath(path)).name
                files += [(p, Path(folder) / p.relative_to(path)) for p in found]
            elif path.is_file():
                files.append((path, Path(path.name)))
            else:
                errors.append(f"{path}: {not_a_file(path, 'file or folder')}")
        except OSError as exc:  # a name too long, a folder that may not be read, ...
            errors.append(f"{path}: cannot be read ({exc.strerror or exc})")
    return files, errors


def format_table(path: Path, faces: list[FaceResult]) -> str:
    """A readable block for one image: a header line, then one row per face."""
    if not faces:
        return f"{path}: no face found"
    lines = [f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}",
             f"  {'#':>2}  {'box (x, y, w, h)':<22} {'label':<9} {'score':>5}  "
             + " ".join(f"{c:>8}" for c in CLASSES)]
    for i, f in enumerate(faces):
        box = "(" + ", ".join(str(v) for v in f.box) + ")"
        lines.append(f"  {i:>2}  {box:<22} {f.label:<9} {f.score:>5.2f}  "
                     + " ".join(f"{f.probabilities[c]:>8.3f}" for c in CLASSES))
    return "\n".join(lines)


CSV_HEADER = ["file", "face", "x", "y", "w", "h", "label", "score", *CLASSES]


def csv_rows(path: Path, faces: list[FaceResult]) -> list[list]:
    """One CSV row per face, in ``CSV_HEADER`` order."""
    return [[str(path), i, *f.box, f.label, f"{f.score:.6f}",
             *(f"{f.probabilities[c]:.6f}" for c in CLASSES)] for i, f in enumerate(faces)]


def writes_colour(suffix: str) -> bool:
    """Whether OpenCV writes a colour image under this suffix (its PBM and PGM writers
    take only gray images)."""
    return suffix.lower() not in (".pbm", ".pgm") and cv2.haveImageWriter(f"x{suffix}")


def write_image_atomic(path: Path, image: np.ndarray) -> Path:
    """Encode by the file's suffix (PNG when OpenCV cannot write that suffix) and write via
    a temp file and ``os.replace``, so a crash never leaves half an image. Returns the path."""
    if not writes_colour(path.suffix):
        path = path.with_name(path.name + ".png")
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the annotated image")
    atomic_write(path, lambda f: f.write(buf.tobytes()))
    return path


def annotated_name(out_dir: Path, rel: Path) -> Path:
    """Where the annotated copy of an input with relative name ``rel`` goes, before any
    numbering: ``out_dir/<rel's folder>/<stem>_annotated<ext>``, ``.png`` when OpenCV
    cannot write a colour image as ``<ext>``."""
    suffix = rel.suffix if rel.suffix and writes_colour(rel.suffix) else ".png"
    return out_dir / rel.parent / f"{rel.stem}_annotated{suffix}"


def annotate(image: np.ndarray, faces: list[FaceResult]) -> np.ndarray:
    """A copy of a BGR image (H, W, 3) with boxes, tags and probability bars (same size)."""
    return draw_results(image.copy(), faces)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.predict",
        description="Detect faces in images and classify their facial expression "
                    f"({', '.join(CLASSES)}).")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files and/or folders (walked for jpg, jpeg, png, bmp, webp)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON document")
    fmt.add_argument("--csv", action="store_true", help="print CSV, one row per face")
    p.add_argument("--annotate", metavar="OUT_DIR",
                   help="write annotated copies of the images into this folder, named "
                        "<stem>_annotated.<ext> (a folder's files keep the folder's name "
                        "and their path below it); a name taken by another input of the run "
                        "or by an input itself gets -2, -3, ...: inputs are never overwritten")
    p.add_argument("--whole-image", action="store_true",
                   help="skip face detection: each image is one face (for crops such as "
                        "FER2013's 48x48 images)")
    p.add_argument("--weights", type=path_text, metavar="W",
                   help="model file (default: the shipped model)")
    p.add_argument("--yunet", type=path_text, metavar="MODEL.onnx",
                   help="use OpenCV's YuNet face detector with this model instead of Haar")
    p.add_argument("--largest", action="store_true", help="keep only the largest face per image")
    p.add_argument("--min-face", type=Bounded(int, low=1), default=DEFAULT_MIN_SIZE,
                   metavar="N",
                   help=f"ignore faces smaller than N pixels (default {DEFAULT_MIN_SIZE})")
    p.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                   help=f"test-time augmentation (default {DEFAULT_TTA}: ten views; flip, "
                        "two views, is about 4x cheaper)")
    p.add_argument("--backend", choices=BACKENDS, default="minicnn",
                   help="what runs the network: minicnn (default) or opencv-dnn (the same "
                        "model exported to ONNX on the fly and run by OpenCV; needs onnx)")
    return p


def analyze(recognizer: EmotionRecognizer, image: np.ndarray,
            whole_image: bool = False) -> list[FaceResult]:
    """The faces of a BGR image; with ``whole_image`` the image itself is the one face (no
    detection), reported with the box (0, 0, width, height)."""
    if not whole_image:
        return recognizer.analyze(image)
    (face,) = recognizer.classify_faces([image])
    h, w = image.shape[:2]
    return [dataclasses.replace(face, box=(0, 0, w, h))]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)
    try:
        detector = make_detector(args.yunet, args.min_face, args.largest)
        recognizer = EmotionRecognizer(args.weights, detector=detector, tta=args.tta,
                                       min_face_size=args.min_face, largest_only=args.largest)
        use_backend(recognizer, args.backend)
    except (OSError, ValueError) as exc:
        print(f"error: {training_checkpoint_hint(args.weights) or exc}", file=sys.stderr)
        return EXIT_USER_ERROR

    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir is not None:
        try:  # a file in its place or an unwritable folder: say so once, before any work
            check_folder(out_dir, "--annotate")
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
    files, errors = find_images(args.inputs)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    namer = OutputNamer(path for path, _ in files)
    written = 0
    documents: list[dict] = []
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(CSV_HEADER)
    for path, rel in files:
        try:
            image = read_image(path)
            faces = analyze(recognizer, image, args.whole_image)
            if out_dir is not None:
                target = namer.claim(annotated_name(out_dir, rel))
                target = write_image_atomic(target, annotate(image, faces))
                written += 1
                print(f"{path}: annotated copy -> {target}", file=sys.stderr)
        except DetectorError as exc:  # would fail on every image: say it once and stop
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except (OSError, ValueError) as exc:
            # One bad file must not stop a folder of good ones: report it and move on.
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            errors.append(message)
            print(f"error: {message}", file=sys.stderr)
            continue
        if args.json:
            documents.append({"file": str(path), "faces": [f.to_dict() for f in faces]})
        elif writer:
            writer.writerows(csv_rows(path, faces))
        else:
            print(format_table(path, faces))
        sys.stdout.flush()
    if args.json:
        json.dump(documents, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if out_dir is not None:
        print(f"wrote {written} annotated cop{'y' if written == 1 else 'ies'} under {out_dir}",
              file=sys.stderr)
    if errors:
        print(f"{len(errors)} input(s) failed; see the errors above", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
