"""python -m emotion.train: train a facial-emotion classifier on FER2013 with minicnn.

    python -m emotion.train --data path/to/fer2013 --out runs/default
    python -m emotion.train --out runs/quick            # no data found: the synthetic set
    python -m emotion.train --out runs/default --resume  # continue a killed run

Every epoch writes, atomically, into the output folder:

    checkpoint.npz   weights, optimizer state, epoch, RNG state, config and history; --resume
                     continues from it and reaches the same result as an uninterrupted run
                     (bit for bit with the same --threads; see below)
    best.npz         the weights with the best validation accuracy so far (a model file;
                     when the last restart trains with other class weights, as in the
                     FER2013 recipe, the best of its epochs once it has begun)
    metrics.json     per-epoch history, then the final evaluation
    curves.png       loss and accuracy, train vs validation

and at the end final.npz (last weights) and confusion.png (best weights, validation set);
config.json holds the settings from the start (a run sized by --minutes rewrites its
epochs there if it re-plans after one of its first epochs). A folder holding any of these
files is a run: a new run refuses it (--resume continues it). Temporary files an
interrupted write left behind (``.checkpoint.npz.*.tmp`` and the like) are removed at the
start.

Safeguards. Every option is range-checked (argparse exits 2 with a message). A NaN or
infinite loss, or a NaN or infinite value in any weight or batch-norm statistic (checked
after every step, cheaply: one sum per array), stops the run at once with a message naming
the array; no weights file is ever written with a non-finite value, so the last checkpoint
stays loadable. --resume refuses a checkpoint whose settings, epoch or optimizer state do
not fit. Ctrl-C stops with a message saying exactly which epoch is saved.

Threads. --threads does not change what is computed, only the order of some floating-point
sums (each thread sums its share of a convolution's weight gradient), so results differ in
the last bits between thread counts, and these differences grow over an epoch. A resume
with the same --threads is bit-exact; with another --threads it continues correctly but is
not bit-exact (it says so).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import minicnn
from emotion.augment import AugmentConfig, augment_batch, random_windows
from emotion.cli import Bounded, is_interrupt, path_text
from emotion.data import DataError, Dataset, class_counts, load_fer2013
from emotion.labels import CLASSES
from emotion.metrics import classification_report, format_report
from emotion.models import ARCHITECTURES, build
from emotion.outputs import check_folder
from emotion.plots import plot_confusion, plot_curves
from emotion.preprocess import INPUT_SIZE, PREPROCESSING, predict_proba, to_model_input
from emotion.synthetic import synthetic_splits
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.fuse import fold_batchnorm
from minicnn.optim import SGD, Adam, AdamW, Constant, CosineWarmup, OneCycle, Restart, StepLR
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
# The recipe's first one-cycle on FER2013: the shipped model's 35 epochs where they fit
# in --minutes (REAL_MINUTES) with the restarts, else as many as fit, at least
# REAL_FIRST_CYCLE_MIN; the run's own step time decides (``plan_first_cycle``).
REAL_FIRST_CYCLE, REAL_FIRST_CYCLE_MIN, REAL_MINUTES = 35, 10, 150
# Where even that floor does not fit, the recipe's restarts are shortened, to no fewer than
# REAL_RESTART_MIN epochs each (``plan_epochs``).
REAL_RESTART_MIN = 5
SYNTHETIC_EPOCHS = 10
# Share of --minutes the plan fills: epochs vary by several percent on a shared machine.
PLAN_SHARE = 0.95
# A run sized by --minutes plans again after each of its first REPLAN_EPOCHS epochs, from
# their measured times: the 8 steps timed before the run can be 10% off an epoch's pace.
# A new plan keeps the first plan's rise of the one-cycle's learning rate (the first 30%
# of that cycle, still under way) and moves only its fall, by at most REPLAN_BAND of it.
REPLAN_EPOCHS, REPLAN_BAND = 3, 0.2
ONECYCLE_RISE = 0.3  # OneCycle's default pct_start
WEIGHT_CAP = 3.0  # --class-weights capped: no class above 3x the median class's weight
# the shipped model's recipe ends in REAL_RESTARTS warm restarts of REAL_RESTART epochs each,
# the last with capped class weights; where the first cycle's 35 epochs would not fit with
# all of them, it runs REAL_RESTARTS_MIN (v4's two) instead (``plan_restart_count``).
REAL_RESTART, REAL_RESTARTS, REAL_RESTARTS_MIN, REAL_RESTART_LR = 15, 3, 2, 1e-3
REAL_ARCH, SYNTHETIC_ARCH = "wide", "small"
# Options that may differ between a run and its --resume without changing the result
# (threads: only in the last bits, see the module docstring; out: the folder may move;
# minutes: a resume keeps the epochs the run planned).
RESUME_FREE = {"resume", "threads", "progress", "stop_after_epoch", "data", "cache", "out",
               "minutes"}
# Any of these in --out means a run was started there: a new run refuses the folder.
RUN_FILES = ("checkpoint.npz", "best.npz", "final.npz", "metrics.json", "curves.png",
             "confusion.png", "config.json")


class TrainingError(RuntimeError):
    """A run that cannot continue (NaN loss, nothing to resume, mismatched resume)."""


class Interrupted(Exception):
    """Ctrl-C during training; the message says what is saved and how to continue."""


# ----------------------------------------------------------------------------- options
# The allowed range of every numeric option (argparse applies them; resolve_config again).
RANGES = {
    "limit": Bounded(int, low=0),
    "epochs": Bounded(int, low=1),
    "minutes": Bounded(float, low=0, low_open=True),
    "batch_size": Bounded(int, low=1),
    "lr": Bounded(float, low=0, low_open=True),
    "momentum": Bounded(float, low=0, high=1, high_open=True),
    "warmup_epochs": Bounded(float, low=0),
    "restart_epochs": Bounded(int, low=0),
    "restarts": Bounded(int, low=1),
    "restart_lr": Bounded(float, low=0, low_open=True),
    "crop": Bounded(int, low=0),
    "step_epochs": Bounded(int, low=1),
    "gamma": Bounded(float, low=0, low_open=True),
    "weight_decay": Bounded(float, low=0),
    "label_smoothing": Bounded(float, low=0, high=1, high_open=True),
    "mixup": Bounded(float, low=0),
    "seed": Bounded(int, low=0),
    "threads": Bounded(int, low=1),
    "stop_after_epoch": Bounded(int, low=0),
}


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help, except for on/off flags, options whose
    default depends on others (None: the help text says what it is) and help text that
    already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS
                or not action.option_strings or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.train",
        description="Train a 7-class facial-emotion CNN (angry, disgust, fear, happy, neutral, "
                    "sad, surprise) on FER2013 with minicnn, on the CPU.",
        formatter_class=HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", type=path_text, metavar="PATH",
                   help="FER2013 as a Kaggle folder (train/<class>/*.jpg, test/<class>/*.jpg) "
                        f"or fer2013.csv. Default: ${DATA_ENV_VAR}, else the first of "
                        f"{', '.join(str(x) for x in DEFAULT_DATA_LOCATIONS)} that exists, "
                        "else the built-in synthetic faces")
    d.add_argument("--synthetic", action="store_true",
                   help="train on procedurally drawn synthetic faces (quickstart, no download)")
    d.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images or malformed CSV rows instead of stopping")
    d.add_argument("--limit", type=RANGES["limit"], default=0, metavar="N",
                   help="use only N training images, a seeded random subset (0: all), for "
                        "quick experiments")
    d.add_argument("--no-cache", dest="cache", action="store_false",
                   help="do not read or write the decoded-image cache")
    m = p.add_argument_group("model and optimisation")
    m.add_argument("--arch", default=None, choices=sorted(ARCHITECTURES),
                   help=f"architecture (see emotion/models.py); default: '{REAL_ARCH}' on "
                        f"FER2013 (the shipped model's), '{SYNTHETIC_ARCH}' on the synthetic set")
    m.add_argument("--init", type=path_text, metavar="PATH",
                   help="start from the weights of this model file (saved from the same "
                        "--arch, e.g. a finished run's best.npz) instead of random ones: a "
                        "new learning-rate cycle on a trained model")
    m.add_argument("--epochs", type=RANGES["epochs"], default=None, metavar="N",
                   help="at least 1; default on FER2013: the shipped model's recipe, "
                        f"{REAL_FIRST_CYCLE} one-cycle epochs and {REAL_RESTARTS} warm restarts of "
                        f"{REAL_RESTART} ({REAL_FIRST_CYCLE + REAL_RESTARTS * REAL_RESTART} in "
                        f"all), with {REAL_RESTARTS_MIN} restarts, then a shorter first cycle, "
                        "where that would not fit in --minutes on this machine; "
                        f"{SYNTHETIC_EPOCHS} on the synthetic set")
    m.add_argument("--minutes", type=RANGES["minutes"], default=None, metavar="M",
                   help="without --epochs on FER2013: run the recipe's last warm restart only "
                        f"where its first cycle of {REAL_FIRST_CYCLE} epochs fits with it, "
                        "then shorten that first cycle to what fits in M minutes here, measured "
                        "by timing a few steps before the run, and planned again from the "
                        f"times of its first {REPLAN_EPOCHS} epochs; below "
                        f"{REAL_FIRST_CYCLE_MIN} first-cycle epochs, shorten the restarts "
                        f"instead, to {REAL_RESTART_MIN} epochs each at least (default: "
                        f"{REAL_MINUTES})")
    m.add_argument("--batch-size", type=RANGES["batch_size"], default=64, metavar="N",
                   help="images per step (at least 1)")
    m.add_argument("--optimizer", default="adamw", choices=["sgd", "adam", "adamw"],
                   help="sgd (Nesterov momentum), adam, or adamw (decoupled weight decay)")
    m.add_argument("--lr", type=RANGES["lr"], default=None,
                   help="peak learning rate, > 0 (default: 0.05 for sgd, 2e-3 for adam/adamw)")
    m.add_argument("--momentum", type=RANGES["momentum"], default=0.9,
                   help="SGD momentum (Nesterov), in [0, 1); 0 for plain SGD")
    m.add_argument("--schedule", default="onecycle",
                   choices=["onecycle", "cosine", "step", "constant"],
                   help="learning-rate schedule, stepped every batch")
    m.add_argument("--warmup-epochs", type=RANGES["warmup_epochs"], default=1.0,
                   help="linear warm-up length for the cosine schedule and the warm restarts")
    m.add_argument("--restart-epochs", type=RANGES["restart_epochs"], default=None,
                   metavar="N",
                   help="end with warm restarts of N epochs each (--restarts of them, "
                        "the last epochs of --epochs): each a new cycle with a fresh "
                        "optimizer state, a linear warm-up of --warmup-epochs, then a half "
                        f"cosine from --restart-lr to 0; 0: none. Default: {REAL_RESTART} on "
                        "FER2013 without --epochs (the shipped model's recipe), else 0")
    m.add_argument("--restarts", type=RANGES["restarts"], default=None, metavar="K",
                   help=f"how many warm restarts of --restart-epochs (default: "
                        f"{REAL_RESTARTS} in the shipped model's recipe, or "
                        f"{REAL_RESTARTS_MIN} where --minutes has no time for the last; "
                        "else 1)")
    m.add_argument("--restart-lr", type=RANGES["restart_lr"], default=REAL_RESTART_LR,
                   help="peak learning rate of each warm restart")
    m.add_argument("--step-epochs", type=RANGES["step_epochs"], default=10,
                   help="step schedule: multiply the lr by --gamma every this many epochs")
    m.add_argument("--gamma", type=RANGES["gamma"], default=0.1,
                   help="step schedule: the lr's factor every --step-epochs (> 0)")
    m.add_argument("--weight-decay", type=RANGES["weight_decay"], default=None,
                   help="weight decay (>= 0), not applied to biases or batch norm: decoupled "
                        "for adamw (default 0.05), an L2 penalty for sgd (default 5e-4) and "
                        "adam (default 0)")
    m.add_argument("--label-smoothing", type=RANGES["label_smoothing"], default=0.1,
                   help="share of each target spread evenly over the classes, in [0, 1)")
    m.add_argument("--mixup", type=RANGES["mixup"], default=0.0, metavar="ALPHA",
                   help="mixup (Zhang et al., 2018): train on lam * a + (1 - lam) * b for "
                        "each face a and a randomly paired face b of the batch (possibly "
                        "a itself), with the loss of a's label weighted lam and b's "
                        "1 - lam, lam drawn from Beta(ALPHA, ALPHA) for each step (0.2 is "
                        "usual); the training accuracy counts the label with the larger "
                        "share. 0: off")
    m.add_argument("--class-weights", default="sqrt",
                   choices=["none", "sqrt", "balanced", "capped"],
                   help="loss weight per class (the last warm restart's: see "
                        "--final-class-weights): none, 1/sqrt(frequency), 1/frequency "
                        "(helps the rare 'disgust' class), or 1/frequency with no class "
                        f"above {WEIGHT_CAP:g}x the median class's weight")
    m.add_argument("--final-class-weights", default=None,
                   choices=["none", "sqrt", "balanced", "capped"],
                   help="class weights of the last warm restart alone (deferred "
                        "re-weighting: the features are learnt on the natural mix, the "
                        "last cycle evens out the classes). Default: capped on FER2013 "
                        "without --epochs (the README's recipe, with its restarts) when "
                        "--class-weights is sqrt, otherwise the same as --class-weights; "
                        "a resume keeps the run's own. When it differs, best.npz is the "
                        "best of the last restart's epochs")
    m.add_argument("--crop", type=RANGES["crop"], default=0, metavar="N",
                   help="train the first cycle (the epochs before the warm restarts, "
                        "which it needs) on a random N x N window of each augmented face, "
                        "which costs less per step; those epochs are validated on centre "
                        "windows, and the restarts train and validate on whole faces. 0: off")
    m.add_argument("--no-augment", dest="augment", action="store_false",
                   help="turn off training-time augmentation")
    m.add_argument("--photo-augment", dest="photo_augment", action="store_true", default=None,
                   help="also simulate the faults of real photos (gamma, blur, JPEG "
                        "re-compression) and tilt heads by up to 15 degrees instead of 10; "
                        "default: on for FER2013 (the shipped model's recipe), off on the "
                        "synthetic set")
    m.add_argument("--no-photo-augment", dest="photo_augment", action="store_false",
                   help="no photo faults, tilt up to 10 degrees (the v1 model's recipe)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=RANGES["seed"], default=0,
                   help="seeds the initial weights, the --limit subset, shuffling, "
                        "augmentation and dropout (>= 0)")
    r.add_argument("--out", type=path_text, default="runs/default", metavar="DIR",
                   help="output folder")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (the folder may "
                        "have moved; the other settings must be the run's own)")
    r.add_argument("--threads", type=RANGES["threads"], default=os.cpu_count() or 1,
                   help="threads for the Numba kernels and the BLAS matrix products; changes "
                        "results in the last bits (the order of sums), so a resume with "
                        "another --threads continues but is not bit-exact")
    r.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (one summary line per epoch is still printed)")
    r.add_argument("--stop-after-epoch", type=RANGES["stop_after_epoch"], default=0,
                   help=argparse.SUPPRESS)
    return p


def option_defaults() -> dict:
    """{setting: its default} as the parser declares them (None where resolved later)."""
    parser = build_parser()
    return {a.dest: a.default for a in parser._actions if a.dest != "help"}


def resolve_config(args: argparse.Namespace | dict) -> dict:
    """The run's settings: the options with the optimizer-dependent defaults filled in.
    TrainingError when a value is out of its range (argparse already refuses those; this
    guards a config built in code)."""
    cfg = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    if cfg["lr"] is None:
        cfg["lr"] = 0.05 if cfg["optimizer"] == "sgd" else 2e-3
    if cfg["weight_decay"] is None:
        cfg["weight_decay"] = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}[cfg["optimizer"]]
    for name, rule in RANGES.items():
        if cfg.get(name) is not None:
            problem = rule.check(cfg[name])
            if problem:
                raise TrainingError(f"--{name.replace('_', '-')} {problem}")
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
    where there is no checkpoint, and a file or an unwritable folder in --out's place;
    before any data is loaded or anything written."""
    check_folder(out, "--out")
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


# The temporary names of this module's atomic writes: atomic_savez's and
# plots.save_figure's ".<name>.<random>.tmp", write_metrics' and write_config's
# ".<name>.tmp" (and ".<name>.tmp.png", save_figure's before it took random names).
TEMP_FILE = re.compile(r"^\.(?:(?:checkpoint|best|final)\.npz\.[^/]+\.tmp"
                       r"|(?:metrics|config)\.json\.tmp"
                       r"|(?:curves|confusion)\.png\.(?:[^/]+\.)?tmp(?:\.png)?)$")


def remove_temp_files(out: Path) -> list[str]:
    """Delete the temporary files an interrupted atomic write left in ``out`` (a kill
    during a checkpoint write leaves a ``.checkpoint.npz.*.tmp`` as large as the
    checkpoint); returns their names."""
    if not out.is_dir():
        return []
    removed = []
    for path in sorted(out.iterdir()):
        if TEMP_FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


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
    for split in ("train", val):  # every file skipped (--skip-bad): nothing to learn or check
        if len(ds[split]) == 0:
            raise DataError(f"{path}: the '{split}' split has no readable images")
    return ds, str(path), val


def class_weight_vector(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Loss weights per class, normalised so the average weight over samples is 1.
    "capped": 1/frequency, but no class weighs more than ``WEIGHT_CAP`` times the median
    class (on FER2013, disgust's 436 faces would otherwise count as much as 4,000)."""
    if mode == "none":
        return None
    counts = class_counts(labels).astype(np.float64)
    present = counts > 0
    w = np.zeros_like(counts)  # a class absent from training gets no weight at all
    w[present] = 1 / np.sqrt(counts[present]) if mode == "sqrt" else 1 / counts[present]
    if mode == "capped":
        w[present] = np.minimum(w[present], WEIGHT_CAP * np.median(w[present]))
    w *= len(labels) / (w * counts).sum()
    return w.astype(np.float32)


# ----------------------------------------------------------------------------- pieces
def make_optimizer(cfg: dict, model: minicnn.Sequential):
    return optimizer_for(cfg, model.parameters())


def optimizer_for(cfg: dict, params: dict[str, np.ndarray]):
    """The configured optimizer over ``params`` (updated in place)."""
    no_decay = [name for name, p in params.items() if p.ndim == 1]  # biases, BN scales
    if cfg["optimizer"] == "sgd":
        return SGD(params, cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["momentum"] > 0,
                   weight_decay=cfg["weight_decay"], no_decay=no_decay)
    cls = Adam if cfg["optimizer"] == "adam" else AdamW
    return cls(params, cfg["lr"], weight_decay=cfg["weight_decay"], no_decay=no_decay)


def make_schedule(cfg: dict, steps_per_epoch: int):
    """The learning rate of every step: --schedule over the epochs before the warm
    restarts, then each restart's warm-up and half cosine (``schedules.Restart``)."""
    starts = restart_steps(cfg, steps_per_epoch)
    schedule = _first_schedule(cfg, starts[0] if starts else cfg["epochs"] * steps_per_epoch,
                               steps_per_epoch)
    total = (cfg.get("restart_epochs") or 0) * steps_per_epoch
    warm = min(int(cfg["warmup_epochs"] * steps_per_epoch), total - 1)
    for start in starts:
        schedule = Restart(schedule, start, CosineWarmup(
            cfg["restart_lr"], total_steps=max(total, 1), warmup_steps=max(warm, 0)))
    return schedule


def restart_steps(cfg: dict, steps_per_epoch: int) -> list[int]:
    """The steps at which the warm restarts begin (and the optimizer starts afresh)."""
    restart = cfg.get("restart_epochs") or 0
    count = cfg.get("restarts") or 1
    if not restart:
        return []
    return [(cfg["epochs"] - k * restart) * steps_per_epoch for k in range(count, 0, -1)]


def _first_schedule(cfg: dict, total: int, steps_per_epoch: int):
    if cfg["schedule"] == "onecycle":
        if "planned_first" not in cfg:
            return OneCycle(cfg["lr"], total_steps=max(total, 2), pct_start=ONECYCLE_RISE)
        # a re-planned run keeps the rise of its first plan's planned_first epochs
        rise = ONECYCLE_RISE * cfg["planned_first"] * steps_per_epoch
        return OneCycle(cfg["lr"], total_steps=max(total, 2), pct_start=min(rise / total, 1.0))
    if cfg["schedule"] == "cosine":
        warm = min(int(cfg["warmup_epochs"] * steps_per_epoch), total - 1)
        return CosineWarmup(cfg["lr"], total_steps=max(total, 1), warmup_steps=max(warm, 0))
    if cfg["schedule"] == "step":
        return StepLR(cfg["lr"], step_size=cfg["step_epochs"] * steps_per_epoch,
                      gamma=cfg["gamma"])
    return Constant(cfg["lr"])


def mix_batch(x: np.ndarray, alpha: float, rng: np.random.Generator,
              y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mixup: (lam * x + (1 - lam) * x[perm], y[perm], lam) for lam ~ Beta(alpha, alpha)
    and a random permutation perm of the batch; the loss is then lam times the loss on y
    plus (1 - lam) times the loss on y[perm]."""
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    mixed = x * x.dtype.type(lam) + x[perm] * x.dtype.type(1 - lam)
    return mixed, y[perm], lam


def evaluate_split(model, images, labels, tta: str = "none",
                   window: int = 0) -> tuple[float, float, np.ndarray]:
    """(mean cross-entropy, accuracy, probabilities) in eval mode; ``window``: on the
    centre window x window of each standardised face instead (no TTA), as ``--crop`` trains."""
    if len(images) == 0:
        return float("nan"), float("nan"), np.zeros((0, len(CLASSES)))
    # eval mode's function with each batch norm folded into its convolution, as the
    # recognizer runs it: the same outputs up to rounding, with two passes fewer a layer
    folded = fold_batchnorm(model)
    if window:
        o = (INPUT_SIZE - window) // 2
        x = np.ascontiguousarray(to_model_input(images)[:, :, o:o + window, o:o + window])
        probs = folded.predict_proba(x)
    else:
        probs = predict_proba(folded, images, tta=tta)
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
    return loss, float((probs.argmax(1) == labels).mean()), probs


def model_metadata(cfg: dict, extra: dict | None = None) -> dict:
    meta = {"classes": list(CLASSES), "input_size": INPUT_SIZE, "preprocessing": PREPROCESSING,
            "arch": cfg["arch"], "train_config": {k: v for k, v in cfg.items()
                                                  if k not in RESUME_FREE}}
    meta.update(extra or {})
    return meta


# ----------------------------------------------------------------------------- checks
def _describe(key: str, model) -> str:
    """'param/3.W' -> "weight W of layer 3 (Conv2D)", for messages."""
    kind, _, name = key.partition("/")
    index, _, slot = name.partition(".")
    try:
        layer = f"layer {index} ({type(model.layers[int(index)]).__name__})"
    except (ValueError, IndexError):
        return key
    if slot.startswith("running_"):
        what = {"running_mean": "running mean", "running_var": "running variance"}.get(
            slot, slot)
        return f"batch-norm {what} of {layer}"
    return f"{'parameter' if kind == 'param' else kind} {slot} of {layer}"


def first_nonfinite(arrays: dict[str, np.ndarray]) -> str | None:
    """The key of the first float array holding a NaN or an infinity, else None. Cheap
    enough for every step: one sum per array (a NaN or inf makes the sum non-finite), and
    the exact element check only for an array whose sum is not finite (which can also be
    an overflow of large finite values)."""
    with np.errstate(over="ignore", invalid="ignore"):
        for key, a in arrays.items():
            if a.dtype.kind == "f" and not math.isfinite(float(a.sum())) \
                    and not np.isfinite(a).all():
                return key
    return None


def divergence_hint(cfg: dict) -> str:
    """What to change after a NaN or inf, naming the setting most likely at fault."""
    step = cfg["lr"] * cfg["weight_decay"]
    if step >= 1:
        return (f"--weight-decay {cfg['weight_decay']:g} times --lr {cfg['lr']:g} is {step:g}: "
                "each step shrinks a weight by more than its size; lower --weight-decay")
    return (f"The training diverged at --lr {cfg['lr']:g} ({cfg['optimizer']}); try a lower "
            "--lr")


def _type_name(value) -> str:
    return type(value).__name__


def check_state(path: Path, state, cfg: dict) -> dict:
    """The checkpoint's training state (epoch, history, best epoch, ...), checked against
    the run's settings: TrainingError saying what is wrong."""
    def bad(what: str) -> TrainingError:
        return TrainingError(f"{path}: {what}; the checkpoint is damaged or was not written by "
                             "emotion.train; start a new run with another --out")

    if not isinstance(state, dict):
        raise bad(f"its state is a JSON {_type_name(state)}, not an object")
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad(f"its epoch is {epoch!r}, not a count of epochs")
    if epoch > cfg["epochs"]:
        raise TrainingError(f"{path}: the checkpoint is at epoch {epoch}, beyond --epochs "
                            f"{cfg['epochs']}; the run cannot continue to fewer epochs than it "
                            "has done (a longer run is a new run: use another --out)")
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch or \
            not all(isinstance(h, dict) for h in history):
        raise bad(f"its history is not a list of {epoch} epoch records")
    for key in ("best_val_acc", "train_seconds"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise bad(f"its {key} is {value!r}, not a finite number")
    best = state.get("best_epoch")
    if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best <= epoch:
        raise bad(f"its best_epoch is {best!r}, not an epoch up to {epoch}")
    if not isinstance(state.get("rng"), dict):
        raise bad("its random-number-generator state is missing")
    return state


def optimizer_keys(cfg: dict, model) -> set[str]:
    """The state entries the configured optimizer keeps after a step ("<param>/<slot>",
    without "__t__"): asked of a fresh one that takes one step on copies of the model's
    parameters, so the check follows minicnn.optim rather than a list kept here."""
    probe = optimizer_for(cfg, {k: v.copy() for k, v in model.parameters().items()})
    probe.step({k: np.zeros_like(v) for k, v in probe.params.items()})
    return set(probe.state_arrays()) - {"__t__"}


def check_optimizer_state(path: Path, arrays: dict[str, np.ndarray], model, cfg: dict) -> None:
    """The optimizer part of a checkpoint: its step count, and for every parameter exactly
    the slots this optimizer keeps, of the parameter's shape, float and finite."""
    def bad(what: str) -> TrainingError:
        return TrainingError(f"{path}: the optimizer state {what}; the checkpoint is damaged "
                             "(or from another --optimizer); start a new run with another --out")

    t = arrays.get("__t__")
    if t is None or t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
        raise bad("has no valid step count ('opt/__t__')")
    params = model.parameters()
    expected = optimizer_keys(cfg, model) if int(t) > 0 else set()
    found = set(arrays) - {"__t__"}
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise bad("does not match the model and optimizer"
                  + (f": missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"
                     if missing else "")
                  + (f": unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}"
                     if extra else ""))
    for key in sorted(found):
        arr, want = arrays[key], params[key.rsplit("/", 1)[0]]
        if arr.shape != want.shape or arr.dtype.kind != "f":
            raise bad(f"entry {key!r} is {arr.dtype}{arr.shape}, expected float{want.shape}")
        if not np.isfinite(arr).all():
            raise bad(f"entry {key!r} holds NaN or infinite values")


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model, opt, rng, cfg: dict, state: dict) -> None:
    arrays = {f"model/{k}": v for k, v in model_arrays(model).items()}
    arrays.update({f"opt/{k}": v for k, v in opt.state_arrays().items()})
    state = dict(state, rng=rng.bit_generator.state)
    arrays["config"] = json_array(cfg)
    arrays["state"] = json_array(state)
    atomic_savez(path, arrays)


_MISSING = object()
# What a checkpoint written before an option existed ran with, where that is not the
# option's default now.
ADDED_LATER = {"photo_augment": False, "restart_epochs": 0, "restarts": 1, "crop": 0,
               "mixup": 0.0}


def added_later(key: str, saved_cfg: dict):
    """What a checkpoint without ``key`` ran with (``_MISSING``: unknown)."""
    if key == "final_class_weights":  # before it existed, one set of weights ran throughout
        return saved_cfg.get("class_weights", _MISSING)
    return ADDED_LATER.get(key, _MISSING)


def changed_settings(cfg: dict, saved_cfg: dict) -> list[str]:
    """The settings that differ between this run and the checkpoint's: every key but
    ``RESUME_FREE`` ones. A key the checkpoint does not have (an option added since) counts
    as unchanged when this run uses that option's default."""
    defaults = option_defaults()
    changed = []
    for key in sorted(set(cfg) | set(saved_cfg)):
        if key in RESUME_FREE:
            continue
        saved = saved_cfg[key] if key in saved_cfg else added_later(key, saved_cfg)
        if saved is _MISSING and key in defaults and cfg.get(key) == defaults[key]:
            continue
        if cfg.get(key) != saved:
            changed.append(key)
    return changed


def load_checkpoint(path: Path, model, opt, rng, cfg: dict, say=print) -> dict:
    arrays = read_npz(path)
    saved_cfg = read_json_entry(arrays, "config", path)
    if not isinstance(saved_cfg, dict):
        raise TrainingError(f"{path}: its config is a JSON {_type_name(saved_cfg)}, not an "
                            "object; not a checkpoint of emotion.train")
    changed = changed_settings(cfg, saved_cfg)
    if changed:
        def was(key):
            saved = saved_cfg[key] if key in saved_cfg else added_later(key, saved_cfg)
            return repr("(not set)" if saved is _MISSING else saved)

        diffs = ", ".join(f"{k}: {was(k)} -> {cfg.get(k)!r}" for k in changed)
        raise TrainingError(f"{path}: the run was started with different settings ({diffs}); "
                            "resume with the original options or use a new --out")
    state = check_state(path, read_json_entry(arrays, "state", path), cfg)
    model_part = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    check_arrays(path, model_part, model_arrays(model))
    opt_part = {k[len("opt/"):]: v for k, v in arrays.items() if k.startswith("opt/")}
    check_optimizer_state(path, opt_part, model, cfg)
    model.load_arrays(model_part)
    opt.load_state_arrays(opt_part)
    try:
        rng.bit_generator.state = state.pop("rng")
    except (TypeError, ValueError, KeyError) as exc:
        raise TrainingError(f"{path}: its random-number-generator state is invalid ({exc}); "
                            "start a new run with another --out") from None
    if saved_cfg.get("threads") not in (None, cfg["threads"]):
        say(f"note: the run used --threads {saved_cfg['threads']}, this resume --threads "
            f"{cfg['threads']}: it continues correctly, but not bit for bit as an "
            "uninterrupted run would (thread counts change the order of some sums)")
    return state


def write_config(out: Path, cfg: dict) -> None:
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(cfg, indent=2))
    os.replace(tmp, out / "config.json")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- the loop
def train(cfg: dict, say=print) -> dict:
    """Run (or resume) training as configured; returns the final metrics dict.

    Raises TrainingError / DataError / WeightsError for a run that cannot start or
    continue, and ``Interrupted`` (its message says what is saved) on Ctrl-C. A new run
    that stops before its first epoch is saved removes what it wrote (config.json), so
    the same command can simply be run again."""
    progress = {"started": False, "saved": 0, "epoch": 1, "written": []}
    try:
        return _train(cfg, say, progress)
    except BaseException as exc:
        if progress["saved"] == 0:
            for path in progress["written"]:
                path.unlink(missing_ok=True)
        if is_interrupt(exc):
            raise Interrupted(interrupt_message(cfg, progress)) from exc
        raise


def sized_by_minutes(cfg: dict) -> bool:
    """Whether the run's epochs are the FER2013 recipe's, sized to --minutes (no --epochs).
    TrainingError for --minutes where it cannot apply."""
    if cfg.get("minutes") is not None and (cfg["epochs"] is not None or cfg["synthetic"]):
        raise TrainingError("--minutes sizes the FER2013 recipe's epochs: it cannot be used "
                            "with --epochs" + ("" if cfg["epochs"] is not None else
                                               " or on the synthetic set"))
    return cfg["epochs"] is None and not cfg["synthetic"]


def fill_recipe(cfg: dict) -> dict:
    """The defaults that depend on the data, in place: on FER2013 the README's recipe
    (``REAL_ARCH``, a one-cycle of ``REAL_FIRST_CYCLE`` epochs and then ``REAL_RESTARTS``
    warm restarts of ``REAL_RESTART``, photo faults on; ``plan_run`` may then shorten the
    first cycle to fit --minutes), on the synthetic set a quick one.
    TrainingError when the restarts would not leave a first epoch."""
    if cfg["arch"] is None:
        cfg["arch"] = SYNTHETIC_ARCH if cfg["synthetic"] else REAL_ARCH
    recipe_epochs = cfg["epochs"] is None
    if cfg.get("photo_augment") is None:
        cfg["photo_augment"] = not cfg["synthetic"]
    recipe_restarts = recipe_epochs and not cfg["synthetic"]
    if cfg.get("restart_epochs") is None:  # the recipe's restarts go with its epochs
        cfg["restart_epochs"] = REAL_RESTART if recipe_restarts else 0
    if cfg.get("restarts") is None:
        cfg["restarts"] = REAL_RESTARTS if recipe_restarts else 1
    if recipe_epochs:
        cfg["epochs"] = SYNTHETIC_EPOCHS if cfg["synthetic"] else \
            REAL_FIRST_CYCLE + cfg["restarts"] * cfg["restart_epochs"]
    if (cfg.get("crop") or 0) > INPUT_SIZE:
        raise TrainingError(f"--crop {cfg['crop']} is larger than the {INPUT_SIZE}x{INPUT_SIZE} "
                            f"faces")
    if cfg.get("crop") and not cfg["restart_epochs"]:
        raise TrainingError(f"--crop {cfg['crop']} trains the epochs before the first warm "
                            "restart on windows, so it needs --restart-epochs: the restarts "
                            "teach the network whole faces")
    if cfg["restart_epochs"] * cfg["restarts"] >= cfg["epochs"]:
        raise TrainingError(f"{cfg['restarts']} x --restart-epochs {cfg['restart_epochs']} "
                            f"must be fewer than --epochs {cfg['epochs']} (the restarts are "
                            f"the last epochs of the run)")
    if cfg.get("final_class_weights") is None:  # deferred re-weighting is part of the recipe
        recipe = recipe_restarts and cfg["restart_epochs"] and cfg["class_weights"] == "sqrt"
        cfg["final_class_weights"] = "capped" if recipe else cfg["class_weights"]
    if cfg["final_class_weights"] != cfg["class_weights"] and not cfg["restart_epochs"]:
        raise TrainingError(f"--final-class-weights {cfg['final_class_weights']} weighs the "
                            "classes of the last warm restart, so it needs --restart-epochs")
    return cfg


def plan_first_cycle(epoch_seconds: float, seconds_left: float, restart_epochs: int) -> int:
    """The recipe's first-cycle epochs: as many as fit in ``seconds_left`` after the
    ``restart_epochs`` of the restarts, at ``epoch_seconds`` an epoch; at most
    ``REAL_FIRST_CYCLE`` (the shipped model's), at least ``REAL_FIRST_CYCLE_MIN``."""
    fit = int(seconds_left // max(epoch_seconds, 1e-9)) - restart_epochs
    return max(REAL_FIRST_CYCLE_MIN, min(REAL_FIRST_CYCLE, fit))


def plan_restart_count(epoch_seconds: float, seconds_left: float, restarts: int,
                       restart_epochs: int) -> int:
    """How many of the recipe's ``restarts`` warm restarts of ``restart_epochs`` to run:
    all where they fit in ``seconds_left`` after a whole first cycle
    (``REAL_FIRST_CYCLE``), else one fewer at a time down to ``REAL_RESTARTS_MIN`` (v4's
    two): where not all fit, v4's own recipe comes before a shorter first cycle."""
    fit = int(seconds_left // max(epoch_seconds, 1e-9))
    while (restart_epochs and restarts > REAL_RESTARTS_MIN
           and fit < REAL_FIRST_CYCLE + restarts * restart_epochs):
        restarts -= 1
    return restarts


def plan_epochs(epoch_seconds: float, seconds_left: float, restarts: int,
                restart_epochs: int) -> tuple[int, int]:
    """(first-cycle epochs, epochs of each of the ``restarts`` restarts) that fit in
    ``seconds_left``: the first cycle shrinks first (``plan_first_cycle``); only where its
    floor and the restarts do not fit are the restarts shortened, evenly, to no fewer than
    ``REAL_RESTART_MIN`` epochs each (the restarts bring most of the accuracy of a short
    run), and an epoch the split leaves over goes to the first cycle. Where even that does
    not fit, the shortest plan: the caller says so."""
    first = plan_first_cycle(epoch_seconds, seconds_left, restarts * restart_epochs)
    fit = int(seconds_left // max(epoch_seconds, 1e-9)) - first
    if restarts and fit < restarts * restart_epochs:
        restart_epochs = max(min(REAL_RESTART_MIN, restart_epochs), fit // restarts)
        # what the even split leaves over goes to the first cycle
        first = plan_first_cycle(epoch_seconds, seconds_left, restarts * restart_epochs)
    return first, restart_epochs


def time_epoch(cfg: dict, x_train, y_train, x_val, batch: int, steps_per_epoch: int,
               weights, aug: AugmentConfig) -> tuple[float, float, float]:
    """(seconds of a training step, of a validation pass, of an epoch) on this machine now:
    a throwaway copy of the network (its own weights and random numbers, so the run is the
    same as with --epochs) takes 3 steps to warm up, then the median of 8 is timed, and
    the validation of up to 512 faces is scaled to the whole split."""
    model = build(cfg["arch"], rng=0)
    rng = np.random.default_rng(0)
    model.rng = rng
    for layer in model.layers:
        layer.rng = rng
    opt = make_optimizer(cfg, model)
    opt.lr = 1e-6  # the steps only need to run, not to learn
    times = []
    for _ in range(3 + 8):
        started = time.perf_counter()
        idx = rng.integers(0, len(x_train), batch)
        faces = augment_batch(x_train[idx], rng, aug) if aug.enabled else x_train[idx]
        logits = model.forward(to_model_input(faces))
        _, dlogits = softmax_cross_entropy(logits, y_train[idx], cfg["label_smoothing"],
                                           weights)
        model.backward(dlogits, need_input_grad=False)
        opt.step(model.gradients())
        times.append(time.perf_counter() - started)
    step = float(np.median(times[3:]))
    n = min(len(x_val), 512)
    started = time.perf_counter()
    evaluate_split(model, x_val[:n], np.zeros(n, dtype=np.int64))
    val = (time.perf_counter() - started) * len(x_val) / max(n, 1)
    return step, val, step * steps_per_epoch + val


def augment_config(cfg: dict) -> AugmentConfig:
    if not cfg["augment"]:
        return AugmentConfig.none()
    return AugmentConfig.photo() if cfg.get("photo_augment") else AugmentConfig()


def saved_config(out: Path) -> dict | None:
    """The settings of the run in ``out``: its checkpoint's (a re-plan writes it before
    config.json), else config.json's; None when neither can be read."""
    try:
        saved = read_json_entry(read_npz(out / "checkpoint.npz", keys={"config"}), "config",
                                out / "checkpoint.npz")
        if isinstance(saved, dict):
            return saved
    except (OSError, WeightsError, KeyError, TypeError, ValueError):
        pass
    try:
        saved = json.loads((out / "config.json").read_text())
        return saved if isinstance(saved, dict) else None
    except (OSError, ValueError):
        return None


def saved_plan(out: Path) -> dict:
    """The plan of a run in ``out``: {"epochs": ..., "planned_first": ... (where the run
    re-planned), "restarts": ..., "restart_epochs": ...}, from ``saved_config``."""
    try:
        saved = saved_config(out)
        return {"epochs": int(saved["epochs"]),
                **({key: int(saved[key]) for key in ("planned_first", "restarts",
                                                     "restart_epochs") if key in saved})}
    except (KeyError, TypeError, ValueError):
        pass
    raise TrainingError(f"{out / 'config.json'}: missing or unreadable, so the run's "
                        "epochs are unknown; resume with the run's --epochs")


def seconds_for_epochs(cfg: dict, elapsed: float, val: float) -> float:
    """Seconds the epochs still to run may take: ``PLAN_SHARE`` of --minutes, less the
    ``elapsed`` seconds and the final report's three validation passes of ``val`` s."""
    return cfg["minutes"] * 60 * PLAN_SHARE - elapsed - 3 * val


def measured_pace(cfg: dict, history: list[dict], elapsed: float) -> tuple[float, float]:
    """(seconds an epoch, seconds the whole run's epochs may take) from the median time of
    the epochs run so far (``history``) and the ``elapsed`` seconds since the start: what
    ``plan_run`` would have planned with, knowing that pace."""
    epoch = float(np.median([r["seconds"] for r in history]))
    val = float(np.median([r["seconds"] - r["train_seconds"] for r in history]))
    return epoch, seconds_for_epochs(cfg, elapsed, val) + len(history) * epoch


def replan_restart_count(cfg: dict, history: list[dict], elapsed: float, each: int) -> int:
    """How many of the recipe's warm restarts of ``each`` epochs to run, again at the
    measured pace (``plan_restart_count``): fewer where the machine turned slower than
    the probe said, back to all of them where it turned faster."""
    epoch, budget = measured_pace(cfg, history, elapsed)
    return plan_restart_count(epoch, budget, REAL_RESTARTS, each)


def replan_restarts(cfg: dict, history: list[dict], elapsed: float) -> int:
    """The recipe's restart length again at the measured pace (``plan_epochs``, at most
    ``REAL_RESTART``): shorter where the machine turned slower than the probe said, back
    towards the recipe's where it turned faster."""
    epoch, budget = measured_pace(cfg, history, elapsed)
    return plan_epochs(epoch, budget, cfg["restarts"], REAL_RESTART)[1]


def replan_first_cycle(cfg: dict, history: list[dict], elapsed: float, planned: int) -> int:
    """The first cycle's epochs again, from the median time of the epochs run so far
    (``history``) and the ``elapsed`` seconds since the start, as ``plan_run`` would plan
    them knowing that pace; the fall of the ``planned`` first plan's one-cycle moves by at
    most ``REPLAN_BAND``, and the rise is kept."""
    epoch, budget = measured_pace(cfg, history, elapsed)
    first = plan_first_cycle(epoch, budget, cfg["restarts"] * cfg["restart_epochs"])
    rise = ONECYCLE_RISE * planned
    band = max(1, round(REPLAN_BAND * (planned - rise)))
    return max(min(first, planned + band), planned - band, math.ceil(rise) + 1)


def sync_config(out: Path, plan: dict) -> None:
    """Make config.json's plan the checkpoint's, where a run stopped between writing the
    two after a re-plan."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(saved, dict) and any(saved.get(k) != v for k, v in plan.items()):
        write_config(out, {**saved, **plan})


def plan_run(cfg: dict, out: Path, x_train, y_train, x_val, batch: int, steps_per_epoch: int,
             weights, elapsed: float, say, own_restarts: int | None = None,
             own_count: int | None = None) -> int:
    """The first cycle's epochs of a run sized by --minutes: a resumed run keeps its own
    (``saved_plan``); a new one times an epoch here (``time_epoch``) and fits the run,
    with the final report (three validation passes), in ``PLAN_SHARE`` of --minutes less
    the ``elapsed`` seconds of loading. Unless the user gave --restarts (``own_count``),
    it may run fewer of the recipe's restarts (``plan_restart_count``), in
    ``cfg["restarts"]``; unless the user gave --restart-epochs (``own_restarts``), it may
    shorten them too (``plan_epochs``), in ``cfg["restart_epochs"]``."""
    if cfg["resume"]:
        plan = saved_plan(out)
        sync_config(out, plan)
        if "planned_first" in plan:
            cfg["planned_first"] = plan["planned_first"]
        if own_restarts is None and "restart_epochs" in plan:  # as the run shortened them
            cfg["restart_epochs"] = plan["restart_epochs"]
        if own_count is None and "restarts" in plan:  # as many as the run planned
            cfg["restarts"] = plan["restarts"]
        return plan["epochs"] - cfg["restarts"] * cfg["restart_epochs"]
    step, val, epoch = time_epoch(cfg, x_train, y_train, x_val, batch, steps_per_epoch,
                                  weights, augment_config(cfg))
    left = seconds_for_epochs(cfg, elapsed, val)
    recipe_count, recipe_each = cfg["restarts"], cfg["restart_epochs"]
    if own_count is None:
        cfg["restarts"] = plan_restart_count(epoch, left, recipe_count, recipe_each)
    if own_restarts is None:  # the recipe's restarts: shortened where the floor does not fit
        first, cfg["restart_epochs"] = plan_epochs(epoch, left, cfg["restarts"], recipe_each)
    else:
        first = plan_first_cycle(epoch, left, cfg["restarts"] * recipe_each)
    total = first + cfg["restarts"] * cfg["restart_epochs"]
    say(f"--minutes {cfg['minutes']:g}: a step takes {1e3 * step:.0f} ms here and a "
        f"validation {val:.1f} s, so an epoch about {epoch:.0f} s; first cycle "
        f"{first} epochs" + (" (the shipped model's)" if first == REAL_FIRST_CYCLE else
                             f" (the shipped model had {REAL_FIRST_CYCLE})")
        + (f", {cfg['restarts']} warm restarts (the recipe's {recipe_count} where its first "
           "cycle fits with them)" if cfg["restarts"] < recipe_count else "")
        + (f", restarts of {cfg['restart_epochs']} (the shipped model's: {REAL_RESTART})"
           if cfg["restart_epochs"] < recipe_each else "")
        + f", {total} in all: about {total * epoch / 60:.0f} minutes")
    if total * epoch > left:
        say(f"warning: even the shortest plan takes longer than --minutes {cfg['minutes']:g} "
            f"on this machine now (about {(total * epoch + elapsed + 3 * val) / 60:.0f} "
            "minutes in all); it runs anyway (stop it, and pass --epochs, for a shorter "
            "plan of your own)")
    return first


def _train(cfg: dict, say, progress: dict) -> dict:
    """``train``'s body; ``progress`` tells ``train`` what is saved when it stops:
    "started" (the folder is in use), "saved" (the checkpoint's epoch), "epoch" (the one
    running) and "written" (files this process created)."""
    began = time.perf_counter()
    threads = set_num_threads(cfg["threads"])
    out = Path(cfg["out"])
    check_out_dir(out, cfg["resume"])
    progress["out"] = out
    removed = remove_temp_files(out)
    if removed:
        say(f"removed {plural(len(removed), 'temporary file')} an interrupted write left in "
            f"{out}: {', '.join(removed)}")
    ds, source, val_name = load_data(cfg, say)
    sized = sized_by_minutes(cfg)
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
    weights = class_weight_vector(y_train, cfg["class_weights"])
    if cfg["resume"] and cfg.get("final_class_weights") is None:
        # a resume keeps the run's own last-restart weights (a run from before the option:
        # its one set), whatever the recipe's default is now
        saved = saved_config(out) or {}
        cfg["final_class_weights"] = saved.get("final_class_weights", saved.get("class_weights"))
    own_restarts, own_count = cfg.get("restart_epochs"), cfg.get("restarts")
    fill_recipe(cfg)
    if sized:
        cfg["minutes"] = cfg.get("minutes") or REAL_MINUTES
        first = plan_run(cfg, out, x_train, y_train, val_split.images, batch, steps_per_epoch,
                         weights, time.perf_counter() - began, say, own_restarts, own_count)
        cfg["epochs"] = first + cfg["restarts"] * cfg["restart_epochs"]
        planned = cfg.get("planned_first", first)  # the probe's plan

    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    model = build(cfg["arch"], rng=cfg["seed"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    model.rng = rng  # one Generator for shuffling, augmentation and dropout: one state to save
    for layer in model.layers:
        layer.rng = rng
    opt = make_optimizer(cfg, model)
    schedule = make_schedule(cfg, steps_per_epoch)
    fresh_starts = set(restart_steps(cfg, steps_per_epoch))
    first_restart = min(fresh_starts, default=cfg["epochs"] * steps_per_epoch)
    final_weights = class_weight_vector(y_train, cfg["final_class_weights"])
    crop = cfg.get("crop") or 0
    aug = augment_config(cfg)

    if cfg.get("init") and not cfg["resume"]:
        try:
            model.load_weights(cfg["init"])
        except (OSError, minicnn.WeightsError) as exc:
            raise TrainingError(f"--init {cfg['init']}: {exc}") from None
        model.metadata = {}
        say(f"starting from the weights in {cfg['init']}")

    state = {"epoch": 0, "history": [], "best_val_acc": -1.0, "best_epoch": 0,
             "train_seconds": 0.0}
    check_out_dir(out, cfg["resume"])  # again: the folder may have changed while loading
    if cfg["resume"]:
        state = load_checkpoint(ckpt_path, model, opt, rng, cfg, say)
        say(f"resuming {out} after epoch {state['epoch']} of {cfg['epochs']}")
        last_first = reweighted_from(cfg)
        if last_first and state["epoch"] >= last_first > state["best_epoch"] > 0:
            say(f"note: the checkpoint's best epoch ({state['best_epoch']}) comes before the "
                "last restart (an older version chose it over the whole run); best.npz "
                "will be the best of the last restart's epochs still to run")
    progress.update(started=True, saved=state["epoch"], epoch=state["epoch"] + 1)
    written = progress["written"]
    if not cfg["resume"]:
        write_config(out, cfg)
        written.append(out / "config.json")
    say(f"train {len(x_train)} faces, validation '{val_name}' {len(val_split)} faces; "
        f"arch {cfg['arch']}: {model.num_parameters():,} parameters, "
        f"{model.macs((1, INPUT_SIZE, INPUT_SIZE)) / 1e6:.1f} M MACs per face; "
        f"threads {threads}; {plural(cfg['epochs'], 'epoch')} x "
        f"{plural(steps_per_epoch, 'step')} of {batch}"
        + (f", ending in {plural(cfg['restarts'], 'warm restart')} of {cfg['restart_epochs']}"
           if cfg["restart_epochs"] else "")
        + (f"; {crop}x{crop} windows until the first restart" if crop else ""))
    if weights is not None:
        say("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, weights)))
    if reweighted_from(cfg):
        say(f"class weights of the last warm restart ({cfg['final_class_weights']}): "
            + (", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, final_weights))
               if final_weights is not None else "none")
            + "; best.npz will be the best of its epochs")

    def stop(what: str, epoch: int, step: int) -> TrainingError:
        kept = (f"the last good checkpoint (epoch {progress['saved']}) is kept in {ckpt_path}"
                if progress["saved"] else "no epoch had finished, so nothing is saved")
        return TrainingError(f"{what} at epoch {epoch}, batch {step} (lr {opt.lr:.3g}); "
                             f"stopping. {kept[0].upper()}{kept[1:]}. {divergence_hint(cfg)}.")

    history = state["history"]
    epoch = state["epoch"]
    while epoch < cfg["epochs"]:  # a re-plan may move the end
        epoch += 1
        progress["epoch"] = epoch
        started = time.perf_counter()
        model.train()
        # the epochs before the first restart train on windows (restarts start at an epoch)
        window = crop if crop and epoch * steps_per_epoch <= first_restart else 0
        # the last restart trains with its own class weights (a re-plan may move it)
        last_first = reweighted_from(cfg)
        w = final_weights if last_first and epoch >= last_first else weights
        order = rng.permutation(len(x_train))
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg['epochs']}", leave=False,
                   disable=not cfg["progress"], unit="batch", dynamic_ncols=True)
        try:
            for i in bar:
                idx = order[i * batch:(i + 1) * batch]
                faces = augment_batch(x_train[idx], rng, aug) if aug.enabled else x_train[idx]
                step = (epoch - 1) * steps_per_epoch + i
                x, y = to_model_input(faces), y_train[idx]
                if window:  # standardised as a whole face, as at test
                    x = random_windows(x[:, 0], window, rng)[:, None]
                if cfg.get("mixup"):
                    x, y_other, lam = mix_batch(x, cfg["mixup"], rng, y)
                if step in fresh_starts:  # a warm restart: Adam's moments start afresh
                    opt = make_optimizer(cfg, model)
                opt.lr = schedule(step)
                logits = model.forward(x)
                loss, dlogits = softmax_cross_entropy(logits, y, cfg["label_smoothing"], w)
                # the loss is linear in the two targets, so is its gradient (y[perm] has
                # y's class weights, so the two terms share one normaliser)
                if cfg.get("mixup"):
                    loss_b, dlogits_b = softmax_cross_entropy(logits, y_other,
                                                              cfg["label_smoothing"], w)
                    loss = lam * loss + (1 - lam) * loss_b
                    dlogits = lam * dlogits + (1 - lam) * dlogits_b
                    y = y if lam >= 0.5 else y_other  # the larger share, for the accuracy
                if not math.isfinite(loss) or not np.isfinite(logits).all():
                    what = (f"the loss became {loss}" if not math.isfinite(loss)
                            else "the network's outputs became NaN or infinite")
                    raise stop(what, epoch, i + 1)
                model.backward(dlogits, need_input_grad=False)
                opt.step(model.gradients())
                bad = first_nonfinite(model_arrays(model))
                if bad is not None:
                    raise stop(f"the {_describe(bad, model)} became NaN or infinite", epoch,
                               i + 1)
                loss_sum += loss * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                if i % 10 == 0 or i == steps_per_epoch - 1:
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                    lr=f"{opt.lr:.2g}")
        finally:
            bar.close()
        train_seconds = time.perf_counter() - started
        # an epoch on windows is validated on centre windows, and cannot be the best epoch:
        # the network has not yet learnt whole faces (the pooling of a 40x40 window, for
        # example, can leave out rows that a 48x48 face's keeps)
        val_loss, val_acc, _ = evaluate_split(model, val_split.images, val_split.labels,
                                              window=window)
        if len(val_split) and not math.isfinite(val_loss):
            raise stop(f"the validation loss became {val_loss}", epoch, steps_per_epoch)
        # Nothing non-finite is ever saved: the previous checkpoint stays the good one.
        bad = first_nonfinite({**model_arrays(model),
                               **{f"opt/{k}": v for k, v in opt.state_arrays().items()}})
        if bad is not None:
            raise stop(f"the {_describe(bad, model)} became NaN or infinite", epoch,
                       steps_per_epoch)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "val_loss": val_loss, "val_acc": val_acc, "lr": opt.lr,
                  "train_seconds": round(train_seconds, 2), "seconds": round(seconds, 2)}
        if window:
            record["val_window"] = window
        history.append(record)
        state["train_seconds"] += seconds
        # the last restart's first epoch replaces a best from before it (reweighted_from)
        entering = last_first is not None and epoch >= last_first > state["best_epoch"]
        improved = not window and (entering or val_acc > state["best_val_acc"])
        if improved:
            state["best_val_acc"], state["best_epoch"] = val_acc, epoch
            model.save(out / "best.npz", metadata=model_metadata(
                cfg, {"epoch": epoch, "val_acc": val_acc, "val_split": val_name}))
            written.append(out / "best.npz")
        state["epoch"] = epoch
        replanned = None
        # (not on windows: a window epoch is faster than the restarts' whole-face ones)
        if sized and not cfg["resume"] and not crop and epoch <= REPLAN_EPOCHS:
            elapsed = time.perf_counter() - began
            # the recipe's restarts have not begun yet: their number and length follow
            # the pace too
            count = cfg["restarts"] if own_count is not None else replan_restart_count(
                cfg, history, elapsed, REAL_RESTART if own_restarts is None else own_restarts)
            each = (replan_restarts({**cfg, "restarts": count}, history, elapsed)
                    if own_restarts is None else cfg["restart_epochs"])
            first = replan_first_cycle({**cfg, "restarts": count, "restart_epochs": each},
                                       history, elapsed, planned)
            restarts = count * each
            if first + restarts != cfg["epochs"] or (count, each) != (
                    cfg["restarts"], cfg["restart_epochs"]):
                replanned = (f"{cfg['epochs']} -> {first + restarts} epochs, the first cycle "
                             f"{first}" + (f", warm restarts {cfg['restarts']} -> {count}"
                                           if count != cfg["restarts"] else "")
                             + (f", restarts of {cfg['restart_epochs']} -> {each}"
                                if each != cfg["restart_epochs"] else ""))
                cfg["epochs"], cfg["planned_first"] = first + restarts, planned
                cfg["restarts"], cfg["restart_epochs"] = count, each
                schedule = make_schedule(cfg, steps_per_epoch)
                fresh_starts = set(restart_steps(cfg, steps_per_epoch))
                first_restart = min(fresh_starts, default=cfg["epochs"] * steps_per_epoch)
        save_checkpoint(ckpt_path, model, opt, rng, cfg, state)
        progress["saved"] = epoch
        if replanned:
            write_config(out, cfg)
        write_metrics(out, cfg, history, state, None)
        plot_curves(history, out / "curves.png", title=f"{cfg['arch']} on {Path(source).name}",
                    train_loss_label=train_loss_label(cfg))
        say(f"epoch {epoch:3d}/{cfg['epochs']}  train loss {record['train_loss']:.4f} "
            f"acc {100 * record['train_acc']:.2f}%  val loss {val_loss:.4f} "
            f"acc {100 * val_acc:.2f}%" + (f" ({window}x{window} centres)" if window else "")
            + f"  {seconds:.0f}s" + ("  *best" if improved else ""))
        if replanned:
            say(f"--minutes {cfg['minutes']:g}: re-planned from the epochs so far "
                f"({np.median([r['seconds'] for r in history]):.0f} s each): "
                f"{replanned}")
        if cfg["stop_after_epoch"] and epoch >= cfg["stop_after_epoch"]:
            say(f"stopping after epoch {epoch} as asked; continue with --resume")
            return {"stopped_at": epoch}

    progress["epoch"] = cfg["epochs"] + 1
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
        f"{state['best_epoch']}"
        + (" (of the last restart's epochs)"
           if state["best_epoch"] >= (reweighted_from(cfg) or math.inf) else "")
        + f"; outputs in {out}")
    return final


def reweighted_from(cfg: dict) -> int | None:
    """The first epoch of the last warm restart when it trains with other class weights
    (--final-class-weights), else None: from this epoch on the loss takes those weights,
    and best.npz is the best of the last restart's epochs (re-weighting trades a little
    accuracy for even recall, so over the whole run the best epoch would almost always
    come before it and leave it out)."""
    final = cfg.get("final_class_weights") or cfg["class_weights"]
    if final == cfg["class_weights"] or not cfg.get("restart_epochs"):
        return None
    return cfg["epochs"] - cfg["restart_epochs"] + 1


def interrupt_message(cfg: dict, progress: dict) -> str:
    """What an interrupted run has saved, and how to go on."""
    saved, epoch, out = progress["saved"], progress["epoch"], progress.get("out")
    if not progress["started"]:
        return "interrupted before training started; no run files were written"
    if saved == 0:
        return (f"interrupted during epoch 1 of {cfg['epochs']}, before any epoch finished: "
                "nothing is saved (the run's config.json was removed again); run the same "
                "command to start again")
    during = (f"during epoch {epoch} of {cfg['epochs']}" if epoch <= cfg["epochs"]
              else "after the last epoch, during the final evaluation")
    first = reweighted_from(cfg)
    best = "of the last restart's epochs" if first and saved >= first else "epoch"
    return (f"interrupted {during}; {out / 'checkpoint.npz'} holds epoch {saved} "
            f"(best.npz the best {best} so far): continue with --resume --out {out}")


def train_loss_label(cfg: dict) -> str:
    """The legend entry of the training loss in curves.png: what it includes beyond the
    plain cross-entropy the validation loss is."""
    extras = []
    if cfg["label_smoothing"]:
        extras.append(f"label smoothing {cfg['label_smoothing']:g}")
    if cfg["class_weights"] != "none":
        extras.append(f"{cfg['class_weights']} class weights")
    final = cfg.get("final_class_weights") or cfg["class_weights"]
    if final != cfg["class_weights"]:
        extras.append(f"{final} class weights in the last restart")
    if cfg["augment"]:
        extras.append("augmented")
    if cfg.get("mixup"):
        extras.append(f"mixup {cfg['mixup']:g}")
    return "train" + (f" ({', '.join(extras)})" if extras else "")


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
    except Interrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    except (DataError, WeightsError, TrainingError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemError) as exc:
        if not is_interrupt(exc):
            raise
        print("\ninterrupted before training started; no run files were written",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
