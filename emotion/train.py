"""python -m emotion.train: train a facial-emotion classifier on FER2013 with minicnn.

    python -m emotion.train --data path/to/fer2013 --out runs/default
    python -m emotion.train --out runs/quick            # no data found: the synthetic set
    python -m emotion.train --out runs/default --resume  # continue a killed run

Every epoch writes, atomically, into the output folder:

    checkpoint.npz   weights, optimizer state, epoch, RNG state, config and history; --resume
                     continues from it and reaches the same result as an uninterrupted run
    best.npz         the weights with the best validation accuracy so far (a model file)
    metrics.json     per-epoch history, then the final evaluation
    curves.png       loss and accuracy, train vs validation

and at the end final.npz (last weights) and confusion.png (best weights, validation set).
A NaN or infinite loss stops the run with a message; the last good checkpoint is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import minicnn
from emotion.augment import AugmentConfig, augment_batch
from emotion.data import DataError, Dataset, class_counts, load_fer2013
from emotion.labels import CLASSES
from emotion.metrics import classification_report, format_report
from emotion.models import ARCHITECTURES, build
from emotion.plots import plot_confusion, plot_curves
from emotion.preprocess import INPUT_SIZE, PREPROCESSING, predict_proba, to_model_input
from emotion.synthetic import synthetic_splits
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.optim import SGD, Adam, AdamW, Constant, CosineWarmup, OneCycle, StepLR
from minicnn.serialize import (
    WeightsError,
    atomic_savez,
    check_arrays,
    json_array,
    model_arrays,
    read_json_entry,
    read_npz,
)
from minicnn.threads import set_num_threads

DATA_ENV_VAR = "FER2013_DIR"
DEFAULT_DATA_LOCATIONS = (Path("data/fer2013"), Path("~/data/fer2013"),
                          Path("~/.cache/minicnn-emotion/fer2013"))
VALIDATION_SPLITS = ("test", "val", "private")
REAL_EPOCHS, SYNTHETIC_EPOCHS = 35, 10
# Options that may differ between a run and its --resume without changing the result.
RESUME_FREE = {"resume", "threads", "progress", "stop_after_epoch", "data", "cache"}
# Any of these in --out means a run was started there: a new run refuses the folder.
RUN_FILES = ("checkpoint.npz", "best.npz", "final.npz", "metrics.json", "curves.png",
             "confusion.png", "config.json")


class TrainingError(RuntimeError):
    """A run that cannot continue (NaN loss, nothing to resume, mismatched resume)."""


# ----------------------------------------------------------------------------- options
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.train",
        description="Train a 7-class facial-emotion CNN (angry, disgust, fear, happy, neutral, "
                    "sad, surprise) on FER2013 with minicnn, on the CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="PATH",
                   help="FER2013 as a Kaggle folder (train/<class>/*.jpg, test/<class>/*.jpg) "
                        f"or fer2013.csv. Default: ${DATA_ENV_VAR}, else the first of "
                        f"{', '.join(str(x) for x in DEFAULT_DATA_LOCATIONS)} that exists, "
                        "else the built-in synthetic faces")
    d.add_argument("--synthetic", action="store_true",
                   help="train on procedurally drawn synthetic faces (quickstart, no download)")
    d.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images or malformed CSV rows instead of stopping")
    d.add_argument("--limit", type=int, default=0, metavar="N",
                   help="use only N training images (0: all), for quick experiments")
    d.add_argument("--no-cache", dest="cache", action="store_false",
                   help="do not read or write the decoded-image cache")
    m = p.add_argument_group("model and optimisation")
    m.add_argument("--arch", default=None, choices=sorted(ARCHITECTURES),
                   help="architecture (see emotion/models.py); default: 'default' on FER2013, "
                        "'small' on the synthetic set")
    m.add_argument("--epochs", type=int, default=None,
                   help=f"default: {REAL_EPOCHS} on FER2013 (the shipped model's recipe), "
                        f"{SYNTHETIC_EPOCHS} on the synthetic set")
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--optimizer", default="adamw", choices=["sgd", "adam", "adamw"])
    m.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 0.05 for sgd, 2e-3 for adam/adamw)")
    m.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov)")
    m.add_argument("--schedule", default="onecycle",
                   choices=["onecycle", "cosine", "step", "constant"],
                   help="learning-rate schedule, stepped every batch")
    m.add_argument("--warmup-epochs", type=float, default=1.0,
                   help="linear warm-up length for the cosine schedule")
    m.add_argument("--step-epochs", type=int, default=10,
                   help="step schedule: multiply the lr by --gamma every this many epochs")
    m.add_argument("--gamma", type=float, default=0.1)
    m.add_argument("--weight-decay", type=float, default=None,
                   help="weight decay, not applied to biases or batch norm: decoupled for "
                        "adamw (default 0.05), an L2 penalty for sgd (default 5e-4) and adam "
                        "(default 0)")
    m.add_argument("--label-smoothing", type=float, default=0.1)
    m.add_argument("--class-weights", default="sqrt", choices=["none", "sqrt", "balanced"],
                   help="loss weight per class: none, 1/sqrt(frequency), or 1/frequency "
                        "(helps the rare 'disgust' class)")
    m.add_argument("--no-augment", dest="augment", action="store_false",
                   help="turn off training-time augmentation")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="runs/default", metavar="DIR", help="output folder")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    r.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for the Numba kernels and the BLAS matrix products")
    r.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (one summary line per epoch is still printed)")
    r.add_argument("--stop-after-epoch", type=int, default=0, help=argparse.SUPPRESS)
    return p


def resolve_config(args: argparse.Namespace) -> dict:
    cfg = dict(vars(args))
    if cfg["lr"] is None:
        cfg["lr"] = 0.05 if cfg["optimizer"] == "sgd" else 2e-3
    if cfg["weight_decay"] is None:
        cfg["weight_decay"] = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}[cfg["optimizer"]]
    for name in ("epochs", "batch_size"):
        if cfg[name] is not None and cfg[name] < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1")
    return cfg


# ----------------------------------------------------------------------------- data
def find_data(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    for candidate in DEFAULT_DATA_LOCATIONS:
        if candidate.expanduser().exists():
            return candidate.expanduser()
    return None


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse to start a new run where one was started (any of ``RUN_FILES``), and to resume
    where there is no checkpoint; before any data is loaded or anything written."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    ckpt = out / "checkpoint.npz"
    if resume and not ckpt.is_file():
        if found:
            raise TrainingError(f"nothing to resume: {ckpt} does not exist (the folder holds "
                                f"{', '.join(found)} of an earlier run, which cannot continue "
                                "without it); choose another --out")
        raise TrainingError(f"nothing to resume: {ckpt} does not exist")
    if not resume and found:
        how = ("pass --resume to continue it" if ckpt.is_file() else
               "it has no checkpoint.npz to continue from")
        raise TrainingError(f"{out} already holds a run ({', '.join(found)}); {how}, or choose "
                            "another --out (nothing was changed)")


def load_data(cfg: dict, say) -> tuple[Dataset, str, str]:
    """Returns (dataset, description, name of the validation split)."""
    path = None if cfg["synthetic"] else find_data(cfg["data"])
    if path is None:
        reason = ("--synthetic given" if cfg["synthetic"] else
                  f"no FER2013 data found (no --data, ${DATA_ENV_VAR} unset, none of "
                  f"{', '.join(str(p) for p in DEFAULT_DATA_LOCATIONS)} exists)")
        say(f"{reason}: training on the synthetic face set")
        cfg["synthetic"] = True
        return synthetic_splits(seed=cfg["seed"]), "synthetic faces", "test"
    say(f"data: {path}")
    ds = load_fer2013(path, skip_bad=cfg["skip_bad"], cache_dir=True if cfg["cache"] else None,
                      progress=cfg["progress"], log=say)
    if "train" not in ds:
        raise DataError(f"{path}: no training split (expected a train/ folder or Training rows)")
    val = next((s for s in VALIDATION_SPLITS if s in ds), None)
    if val is None:
        raise DataError(f"{path}: no validation split (expected test/, val/ or PublicTest rows)")
    return ds, str(path), val


def class_weight_vector(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Loss weights per class, normalised so the average weight over samples is 1."""
    if mode == "none":
        return None
    counts = class_counts(labels).astype(np.float64)
    present = counts > 0
    w = np.zeros_like(counts)  # a class absent from training gets no weight at all
    w[present] = 1 / np.sqrt(counts[present]) if mode == "sqrt" else 1 / counts[present]
    w *= len(labels) / (w * counts).sum()
    return w.astype(np.float32)


# ----------------------------------------------------------------------------- pieces
def make_optimizer(cfg: dict, model: minicnn.Sequential):
    params = model.parameters()
    no_decay = [name for name, p in params.items() if p.ndim == 1]  # biases, BN scales
    if cfg["optimizer"] == "sgd":
        return SGD(params, cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["momentum"] > 0,
                   weight_decay=cfg["weight_decay"], no_decay=no_decay)
    cls = Adam if cfg["optimizer"] == "adam" else AdamW
    return cls(params, cfg["lr"], weight_decay=cfg["weight_decay"], no_decay=no_decay)


def make_schedule(cfg: dict, steps_per_epoch: int):
    total = cfg["epochs"] * steps_per_epoch
    if cfg["schedule"] == "onecycle":
        return OneCycle(cfg["lr"], total_steps=max(total, 2))
    if cfg["schedule"] == "cosine":
        warm = min(int(cfg["warmup_epochs"] * steps_per_epoch), total - 1)
        return CosineWarmup(cfg["lr"], total_steps=max(total, 1), warmup_steps=max(warm, 0))
    if cfg["schedule"] == "step":
        return StepLR(cfg["lr"], step_size=cfg["step_epochs"] * steps_per_epoch,
                      gamma=cfg["gamma"])
    return Constant(cfg["lr"])


def evaluate_split(model, images, labels, tta: str = "none") -> tuple[float, float, np.ndarray]:
    """(mean cross-entropy, accuracy, probabilities) in eval mode."""
    if len(images) == 0:
        return float("nan"), float("nan"), np.zeros((0, len(CLASSES)))
    probs = predict_proba(model, images, tta=tta)
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
    return loss, float((probs.argmax(1) == labels).mean()), probs


def model_metadata(cfg: dict, extra: dict | None = None) -> dict:
    meta = {"classes": list(CLASSES), "input_size": INPUT_SIZE, "preprocessing": PREPROCESSING,
            "arch": cfg["arch"], "train_config": {k: v for k, v in cfg.items()
                                                  if k not in RESUME_FREE}}
    meta.update(extra or {})
    return meta


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model, opt, rng, cfg: dict, state: dict) -> None:
    arrays = {f"model/{k}": v for k, v in model_arrays(model).items()}
    arrays.update({f"opt/{k}": v for k, v in opt.state_arrays().items()})
    state = dict(state, rng=rng.bit_generator.state)
    arrays["config"] = json_array(cfg)
    arrays["state"] = json_array(state)
    atomic_savez(path, arrays)


def load_checkpoint(path: Path, model, opt, rng, cfg: dict) -> dict:
    arrays = read_npz(path)
    saved_cfg = read_json_entry(arrays, "config", path)
    state = read_json_entry(arrays, "state", path)
    changed = sorted(k for k in set(cfg) | set(saved_cfg)
                     if k not in RESUME_FREE and cfg.get(k) != saved_cfg.get(k))
    if changed:
        diffs = ", ".join(f"{k}: {saved_cfg.get(k)!r} -> {cfg.get(k)!r}" for k in changed)
        raise TrainingError(f"{path}: the run was started with different settings ({diffs}); "
                            "resume with the original options or use a new --out")
    model_part = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    check_arrays(path, model_part, model_arrays(model))
    model.load_arrays(model_part)
    opt.load_state_arrays({k[len("opt/"):]: v for k, v in arrays.items() if k.startswith("opt/")})
    rng.bit_generator.state = state.pop("rng")
    return state


# ----------------------------------------------------------------------------- the loop
def train(cfg: dict, say=print) -> dict:
    """Run (or resume) training as configured; returns the final metrics dict."""
    threads = set_num_threads(cfg["threads"])
    out = Path(cfg["out"])
    check_out_dir(out, cfg["resume"])
    ds, source, val_name = load_data(cfg, say)
    if cfg["arch"] is None:
        cfg["arch"] = "small" if cfg["synthetic"] else "default"
    if cfg["epochs"] is None:
        cfg["epochs"] = SYNTHETIC_EPOCHS if cfg["synthetic"] else REAL_EPOCHS
    train_split, val_split = ds["train"], ds[val_name]
    x_train, y_train = train_split.images, train_split.labels
    if cfg["limit"] and cfg["limit"] < len(x_train):
        # a seeded random subset: the files are stored class by class, so a prefix would
        # hold only the first few classes
        keep = np.sort(np.random.default_rng(cfg["seed"]).permutation(len(x_train))[:cfg["limit"]])
        x_train, y_train = x_train[keep], y_train[keep]
    if len(x_train) < 2:
        raise DataError(f"{source}: need at least 2 training images, found {len(x_train)}")
    batch = min(cfg["batch_size"], len(x_train))
    steps_per_epoch = len(x_train) // batch  # drop the ragged last batch: batch norm needs >1

    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    model = build(cfg["arch"], rng=cfg["seed"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    model.rng = rng  # one Generator for shuffling, augmentation and dropout: one state to save
    for layer in model.layers:
        layer.rng = rng
    opt = make_optimizer(cfg, model)
    schedule = make_schedule(cfg, steps_per_epoch)
    weights = class_weight_vector(y_train, cfg["class_weights"])
    aug = AugmentConfig() if cfg["augment"] else AugmentConfig.none()

    state = {"epoch": 0, "history": [], "best_val_acc": -1.0, "best_epoch": 0,
             "train_seconds": 0.0}
    check_out_dir(out, cfg["resume"])  # again: the folder may have changed while loading
    if cfg["resume"]:
        state = load_checkpoint(ckpt_path, model, opt, rng, cfg)
        say(f"resuming {out} after epoch {state['epoch']} of {cfg['epochs']}")
    with open(out / "config.json", "w") as f:
        json.dump(cfg, f, indent=2)

    say(f"train {len(x_train)} faces, validation '{val_name}' {len(val_split)} faces; "
        f"arch {cfg['arch']}: {model.num_parameters():,} parameters, "
        f"{model.macs((1, INPUT_SIZE, INPUT_SIZE)) / 1e6:.1f} M MACs per face; "
        f"threads {threads}; {cfg['epochs']} epochs x {steps_per_epoch} steps of {batch}")
    if weights is not None:
        say("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, weights)))

    history = state["history"]
    for epoch in range(state["epoch"] + 1, cfg["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(x_train))
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg['epochs']}", leave=False,
                   disable=not cfg["progress"], unit="batch", dynamic_ncols=True)
        for i in bar:
            idx = order[i * batch:(i + 1) * batch]
            faces = augment_batch(x_train[idx], rng, aug) if aug.enabled else x_train[idx]
            x, y = to_model_input(faces), y_train[idx]
            step = (epoch - 1) * steps_per_epoch + i
            opt.lr = schedule(step)
            logits = model.forward(x)
            loss, dlogits = softmax_cross_entropy(logits, y, cfg["label_smoothing"], weights)
            if not math.isfinite(loss) or not np.isfinite(logits).all():
                bar.close()
                raise TrainingError(
                    f"the loss became {loss} at epoch {epoch}, batch {i + 1} (lr {opt.lr:.3g}); "
                    f"stopping. The last good checkpoint (epoch {state['epoch']}) is kept in "
                    f"{ckpt_path}. Try a lower --lr.")
            model.backward(dlogits, need_input_grad=False)
            opt.step(model.gradients())
            loss_sum += loss * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if i % 10 == 0 or i == steps_per_epoch - 1:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                lr=f"{opt.lr:.2g}")
        bar.close()
        train_seconds = time.perf_counter() - started
        val_loss, val_acc, _ = evaluate_split(model, val_split.images, val_split.labels)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "val_loss": val_loss, "val_acc": val_acc, "lr": opt.lr,
                  "train_seconds": round(train_seconds, 2), "seconds": round(seconds, 2)}
        history.append(record)
        state["train_seconds"] += seconds
        improved = val_acc > state["best_val_acc"]
        if improved:
            state["best_val_acc"], state["best_epoch"] = val_acc, epoch
            model.save(out / "best.npz", metadata=model_metadata(
                cfg, {"epoch": epoch, "val_acc": val_acc, "val_split": val_name}))
        state["epoch"] = epoch
        save_checkpoint(ckpt_path, model, opt, rng, cfg, state)
        write_metrics(out, cfg, history, state, None)
        plot_curves(history, out / "curves.png", title=f"{cfg['arch']} on {Path(source).name}")
        say(f"epoch {epoch:3d}/{cfg['epochs']}  train loss {record['train_loss']:.4f} "
            f"acc {100 * record['train_acc']:.2f}%  val loss {val_loss:.4f} "
            f"acc {100 * val_acc:.2f}%  {seconds:.0f}s" + ("  *best" if improved else ""))
        if cfg["stop_after_epoch"] and epoch >= cfg["stop_after_epoch"]:
            say(f"stopping after epoch {epoch} as asked; continue with --resume")
            return {"stopped_at": epoch}

    model.save(out / "final.npz", metadata=model_metadata(cfg, {"epoch": cfg["epochs"]}))
    best = minicnn.load(out / "best.npz")
    final = {"source": source, "val_split": val_name, "best_epoch": state["best_epoch"],
             "wall_seconds": round(state["train_seconds"], 1)}
    for tta in ("none", "flip"):
        _, _, probs = evaluate_split(best, val_split.images, val_split.labels, tta=tta)
        final[f"tta_{tta}"] = classification_report(val_split.labels, probs)
    plot_confusion(np.array(final["tta_flip"]["confusion"]), CLASSES, out / "confusion.png",
                   title=f"best epoch {state['best_epoch']}, '{val_name}' split, flip TTA")
    write_metrics(out, cfg, history, state, final)
    say(format_report(final["tta_flip"]))
    say(f"best validation accuracy {100 * final['tta_none']['accuracy']:.2f}% "
        f"({100 * final['tta_flip']['accuracy']:.2f}% with flip TTA) at epoch "
        f"{state['best_epoch']}; outputs in {out}")
    return final


def write_metrics(out: Path, cfg: dict, history: list, state: dict, final: dict | None) -> None:
    doc = {"config": cfg, "history": history, "best_epoch": state["best_epoch"],
           "best_val_acc": state["best_val_acc"], "final": final}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, out / "metrics.json")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(message: str) -> None:
        tqdm.write(message)
        sys.stdout.flush()

    try:
        train(resolve_config(args), say)
    except (DataError, WeightsError, TrainingError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; the last finished epoch is saved: continue with --resume "
              f"--out {args.out}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
