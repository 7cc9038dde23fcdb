"""Weight averaging against a snapshot ensemble: two or more weight files of one lineage
(the ends of a run's warm restarts, say) scored on FER2013 test, alone and combined.

    python benchmarks/bench_average.py runs/x/best.npz runs/x/final.npz \
        [--data ../shared/data/fer2013] [--save averaged.npz]

Rows, each with accuracy, macro-F1 and per-class recall, for flip and ten-crop TTA:

* each file alone;
* the ensemble: the files' class probabilities averaged (the network time of all of them);
* the average: one network whose every weight is the mean of the files' (stochastic
  weight averaging, Izmailov et al., 2018), with its batch-norm statistics measured
  afresh on the training faces (un-augmented, shuffled, 256 at a time, every batch
  weighted alike): the files' own running statistics belong to their own weights, not to the
  mean of them. It costs one network's time.

``--save`` writes the average as a model file (metadata from the last file); it refuses
an existing file. It reproduces the rows of the model card's "Averaging the warm
restarts' weights". Nothing from FER2013 is written anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion.data import load_fer2013  # noqa: E402
from emotion.metrics import classification_report  # noqa: E402
from emotion.preprocess import predict_proba, to_model_input  # noqa: E402
from emotion.recognizer import load_weights  # noqa: E402
from minicnn.layers.batchnorm import BatchNorm2D  # noqa: E402


def refit_batchnorm(model, faces: np.ndarray, batch: int = 256, seed: int = 0) -> None:
    """Measure every batch norm's running mean and variance afresh on ``faces``: the
    mean over batches of each batch's statistics (momentum 1/k at the k-th batch, as
    ``torch.optim.swa_utils.update_bn``), with everything else in eval mode. The faces
    are shuffled first: batches of one class (the files are stored class by class)
    would leave the differences between classes out of the variance."""
    faces = faces[np.random.default_rng(seed).permutation(len(faces))]
    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm2D)]
    model.eval()
    saved = [n.momentum for n in norms]
    for n in norms:
        n.buffers["running_mean"][...] = 0.0
        n.buffers["running_var"][...] = 1.0
        n.training = True
    try:
        starts = range(0, len(faces) - 1, batch)  # a last batch of 1 has no variance
        for k, s in enumerate(tqdm(starts, desc="batch-norm statistics", unit="batch")):
            for n in norms:
                n.momentum = 1.0 / (k + 1)
            model.forward(to_model_input(faces[s:s + batch]))
    finally:
        for n, m in zip(norms, saved):
            n.momentum, n.training = m, False
        model.eval()


def report(name: str, labels: np.ndarray, probs: np.ndarray) -> dict:
    r = classification_report(labels, probs)
    recall = " ".join(f"{c} {v['recall']:.3f}" for c, v in r["per_class"].items())
    print(f"{name:28s} acc {100 * r['accuracy']:.2f}%  macro-F1 {r['macro_f1']:.4f}  "
          f"recall: {recall}", flush=True)
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", help="two or more model files of one architecture")
    p.add_argument("--data", default="../shared/data/fer2013")
    p.add_argument("--save", help="write the averaged model here (must not exist)")
    args = p.parse_args(argv)
    if len(args.weights) < 2:
        p.error("give at least two weight files")
    if args.save and Path(args.save).exists():
        p.error(f"--save {args.save} exists; choose another path (nothing was changed)")
    models = [load_weights(w) for w in args.weights]
    shapes = [{k: v.shape for k, v in m.parameters().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        p.error("the files hold different architectures; only weights of one network can "
                "be averaged")
    ds = load_fer2013(args.data, log=None, progress=False)
    faces, labels = ds["test"].images, ds["test"].labels

    averaged = load_weights(args.weights[0])
    params = [m.parameters() for m in models]
    for key, value in averaged.parameters().items():
        value[...] = np.mean([p[key].astype(np.float64) for p in params], axis=0)
    refit_batchnorm(averaged, ds["train"].images)

    for tta in ("flip", "crops"):
        probs = [predict_proba(m, faces, tta=tta) for m in models]
        for w, pr in zip(args.weights, probs):
            report(f"{Path(w).parent.name}/{Path(w).name} {tta}", labels, pr)
        report(f"ensemble {tta}", labels, np.mean(probs, axis=0))
        report(f"average {tta}", labels, predict_proba(averaged, faces, tta=tta))
    if args.save:
        averaged.save(args.save, metadata={**models[-1].metadata,
                                           "averaged_from": [str(w) for w in args.weights]})
        print(f"saved {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
