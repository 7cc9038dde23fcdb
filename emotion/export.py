"""python -m emotion.export: the emotion model as an ONNX file, for OpenCV, onnxruntime, a
browser or a phone.

    python -m emotion.export --onnx emotion.onnx                  # the shipped model
    python -m emotion.export --onnx v2.onnx --weights runs/v2/best.npz

The file maps "input" (N, 1, 48, 48) float32 to "probabilities" (N, 7) in the order of
``emotion.labels.CLASSES``, batch norm folded into the convolutions (``--logits`` ends
before the softmax instead). Its metadata (``metadata_props``) records the classes and the
preprocessing a caller must apply first: a 48x48 gray face, minus its mean, divided by
max(its standard deviation, 4) (``emotion.preprocess.to_model_input``).

After writing, the file is loaded back with OpenCV's DNN module (and onnxruntime when
installed) and checked against minicnn on a few synthetic faces; ``--no-check`` skips it.
Exit status 0 on success, 2 for a user error (missing or bad weights, no onnx package, an
output that would overwrite the weights), with one line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion.cli import path_text
from emotion.labels import CLASSES
from emotion.outputs import check_writable
from emotion.preprocess import INPUT_SIZE, PREPROCESSING, to_model_input
from emotion.recognizer import DEFAULT_WEIGHTS, load_weights

EXIT_USER_ERROR = 2
CHECK_TOLERANCE = 1e-4  # probabilities; the exports measure about 1e-6 off (tests/test_onnx.py)


def onnx_metadata(weights: Path) -> dict[str, str]:
    """What a program reading the file needs to use it correctly, as strings."""
    return {
        "classes": json.dumps(list(CLASSES)),
        "input_size": str(INPUT_SIZE),
        "preprocessing": PREPROCESSING,
        "preprocessing_formula": "x = (face - mean(face)) / max(std(face), 4.0) on a 48x48 "
                                 "uint8 gray face, as float32 (N, 1, 48, 48)",
        "source_weights": weights.name,
    }


def export(weights: str | os.PathLike | None, out: str | os.PathLike, softmax: bool = True):
    """Export a model file to ``out`` atomically; returns (the minicnn model in eval mode,
    the ONNX bytes). Raises FileNotFoundError, ValueError (``minicnn.WeightsError``, an
    output that is the weights file itself) or ImportError (no onnx package)."""
    from minicnn.interop.onnx import save_onnx, to_onnx

    source = DEFAULT_WEIGHTS if weights is None else Path(weights)
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; give the output file's name (e.g. "
                         f"{out / 'emotion.onnx'})")
    if out.exists() and source.exists() and os.path.samefile(out, source):
        raise ValueError(f"{out}: is the weights file being exported; choose another name")
    model = load_weights(weights).eval()
    check_writable(out, "--onnx")  # OSError naming the folder, rather than a bare errno
    proto = to_onnx(model, (1, INPUT_SIZE, INPUT_SIZE), softmax=softmax,
                    metadata=onnx_metadata(source), graph_name="emotion")
    data = proto.SerializeToString()
    save_onnx(data, out)
    return model, data


def check_export(model, data: bytes, softmax: bool = True, n: int = 16) -> dict[str, float]:
    """Largest |difference| between minicnn and each runtime that loads ``data`` (OpenCV DNN
    always, onnxruntime when installed), on ``n`` synthetic faces; probabilities with
    ``softmax``, otherwise logits."""
    import cv2

    from emotion.synthetic import make_synthetic

    faces, _ = make_synthetic(max(1, -(-n // len(CLASSES))), 0)
    x = to_model_input(faces[:n])
    ref = model.predict_proba(x) if softmax else model.eval().forward(x)
    net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
    net.setInput(x)
    diffs = {"opencv-dnn": float(np.abs(net.forward() - ref).max())}
    try:
        import onnxruntime
    except ImportError:
        return diffs
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    diffs["onnxruntime"] = float(np.abs(session.run(None, {"input": x})[0] - ref).max())
    return diffs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.export",
        description="Export the emotion model to ONNX (OpenCV DNN, onnxruntime, ...).")
    p.add_argument("--onnx", type=path_text, required=True, metavar="OUT.onnx",
                   help="the file to write")
    p.add_argument("--weights", type=path_text, metavar="W",
                   help=f"model file to export (default: the shipped {DEFAULT_WEIGHTS.name})")
    p.add_argument("--logits", action="store_true",
                   help='end the graph with the logits ("logits") instead of the softmax')
    p.add_argument("--no-check", action="store_true",
                   help="do not load the file back into OpenCV (and onnxruntime) to compare")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    softmax = not args.logits
    try:
        model, data = export(args.weights, args.onnx, softmax=softmax)
    except (OSError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {args.onnx} ({len(data) / 1e6:.1f} MB, opset 13): input (N, 1, 48, 48) -> "
          f"{'probabilities' if softmax else 'logits'} (N, {len(CLASSES)})")
    if args.no_check:
        return 0
    diffs = check_export(model, data, softmax)
    what = "probabilities" if softmax else "logits"
    for runtime, diff in diffs.items():
        print(f"checked: {runtime} {what} within {diff:.1e} of minicnn's on 16 faces")
    bad = {k: v for k, v in diffs.items() if not v <= CHECK_TOLERANCE}
    if bad:
        print(f"error: {', '.join(bad)} disagree(s) with minicnn by more than "
              f"{CHECK_TOLERANCE:g}; the file was written but should not be trusted",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
