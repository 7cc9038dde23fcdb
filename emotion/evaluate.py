"""python -m emotion.evaluate: measure a trained model honestly on a labelled split.

    python -m emotion.evaluate --weights emotion/weights/default.npz --data path/to/fer2013
    python -m emotion.evaluate --weights runs/default/best.npz --data fer2013.csv \
        --split private --tta crops --json report.json --confusion confusion.png

Prints accuracy, per-class precision / recall / F1, macro-F1 and the confusion matrix as a
table (or JSON with --json -), and can save the confusion matrix as a PNG. The faces go
through exactly the preprocessing and test-time augmentation the recognizer uses. The
folders of --json and --confusion are created, and checked to be writable, before the
evaluation starts; neither may be the weights or the data file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from emotion.cli import Bounded, path_text, run
from emotion.data import DataError, load_fer2013
from emotion.labels import CLASSES
from emotion.metrics import classification_report, format_report
from emotion.outputs import check_writable, same_file, training_checkpoint_hint
from emotion.plots import plot_confusion
from emotion.preprocess import DEFAULT_TTA, TTA_MODES, predict_proba
from emotion.recognizer import DEFAULT_WEIGHTS, load_weights
from minicnn.fuse import fold_batchnorm
from minicnn.serialize import WeightsError, atomic_write
from minicnn.threads import set_num_threads


def evaluate(weights, data, split: str = "test", tta: str = DEFAULT_TTA, log=print) -> dict:
    model = fold_batchnorm(load_weights(weights))  # as the recognizer runs it: faster
    ds = load_fer2013(data, log=log)
    if split not in ds:
        raise DataError(f"{data}: no split named {split!r} (have: {', '.join(ds)})")
    faces, labels = ds[split].images, ds[split].labels
    probs = predict_proba(model, faces, tta=tta)
    report = classification_report(labels, probs)
    report.update({"weights": str(weights), "data": str(data), "split": split, "tta": tta})
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.evaluate",
        description="Evaluate an emotion model: accuracy, per-class precision/recall/F1, "
                    "macro-F1 and the confusion matrix.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", type=path_text, default=str(DEFAULT_WEIGHTS),
                   help="model file (.npz); default: the shipped model")
    p.add_argument("--data", type=path_text, required=True,
                   help="FER2013 Kaggle folder or fer2013.csv")
    p.add_argument("--split", default="test",
                   help="which split to score (test = PublicTest; private with the CSV)")
    p.add_argument("--tta", default=DEFAULT_TTA, choices=TTA_MODES,
                   help="test-time augmentation: none, flip (2 views) or crops (10 views)")
    p.add_argument("--json", type=path_text, metavar="FILE",
                   help="also write the report as JSON ('-': stdout)")
    p.add_argument("--confusion", type=path_text, metavar="PNG",
                   help="save the confusion matrix as a PNG")
    p.add_argument("--threads", type=Bounded(int, low=1), default=os.cpu_count() or 1,
                   help="threads for the network (at least 1)")
    return p


def check_outputs(args: argparse.Namespace) -> None:
    """Fail before the evaluation, not after it: the output folders exist (created if
    needed) and take a file, no output is an input (the weights or the data file), and
    the two outputs are not one file. OSError otherwise."""
    outputs = [(opt, path) for opt, path in (("--json", args.json),
                                             ("--confusion", args.confusion))
               if path and path != "-"]
    for opt, path in outputs:
        for in_opt, in_path in (("--weights", args.weights), ("--data", args.data)):
            if in_path and same_file(path, in_path):
                raise OSError(f"{opt} {path} is the {in_opt} file ({in_path}): writing it "
                              "would replace it; choose another path")
        check_writable(path, opt)
    if len(outputs) == 2 and same_file(outputs[0][1], outputs[1][1]):
        raise OSError(f"--json and --confusion name the same file ({args.json})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_num_threads(args.threads)
    quiet = args.json == "-"
    try:
        check_outputs(args)
        report = evaluate(args.weights, args.data, args.split, args.tta,
                          log=(lambda m: print(m, file=sys.stderr)) if quiet else print)
    except WeightsError as err:
        print(f"error: {training_checkpoint_hint(args.weights) or err}", file=sys.stderr)
        return 2
    except (DataError, OSError) as err:  # FileNotFoundError is an OSError
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"{args.weights} on '{args.split}' of {args.data}, TTA {args.tta}")
        print(format_report(report))
    try:
        if args.json and args.json != "-":
            text = json.dumps(report, indent=2)
            atomic_write(args.json, lambda f: f.write(text.encode()))
        if args.confusion:
            plot_confusion(np.array(report["confusion"]), CLASSES, args.confusion,
                           title=f"{Path(args.weights).name}, '{args.split}', TTA {args.tta}")
    except OSError as err:
        print(f"error: cannot write the report: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
