"""PNG plots: training curves and the confusion matrix (matplotlib, no display needed)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from emotion.outputs import save_figure_atomically  # noqa: E402


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write the figure atomically, in the format its suffix names
    (``outputs.save_figure_atomically``), and close it."""
    try:
        save_figure_atomically(fig, path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def curves_figure(history: list[dict], title: str = "",
                  train_loss_label: str = "train") -> plt.Figure:
    """The figure ``plot_curves`` saves (returned for tests and notebooks)."""
    epochs = [h["epoch"] for h in history]
    # Markers when there are few points (one epoch is a single point per curve), lines only
    # for long runs; ticks on whole epochs, with half an epoch of room at both ends.
    style = "o-" if len(epochs) <= 40 else "-"
    val_label = "validation (plain cross-entropy)"
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], style, ms=4, label=train_loss_label)
    ax_loss.plot(epochs, [h["val_loss"] for h in history], style, ms=4, label=val_label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    losses = [v for h in history for v in (h["train_loss"], h["val_loss"]) if np.isfinite(v)]
    if losses:  # from 0, with room above the highest point for the legend
        ax_loss.set_ylim(0, 1.3 * max(max(losses), 1e-3))
    ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], style, ms=4, label="train")
    ax_acc.plot(epochs, [100 * h["val_acc"] for h in history], style, ms=4, label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 105))
    for ax in (ax_loss, ax_acc):
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(history: list[dict], path: str | os.PathLike, title: str = "",
                train_loss_label: str = "train") -> None:
    """Loss and accuracy per epoch, train vs validation, side by side in one PNG.

    ``train_loss_label`` names the training loss in the legend; emotion.train says there
    what it includes beyond the validation loss's plain cross-entropy (label smoothing,
    class weights, augmented images)."""
    save_figure(curves_figure(history, title, train_loss_label), path)


def plot_confusion(cm: np.ndarray, classes, path: str | os.PathLike, title: str = "") -> None:
    """Row-normalised confusion matrix (each row sums to 100%), with raw counts too."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (% of true class)")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{pct[i, j]:.0f}%\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if pct[i, j] > 60 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    save_figure(fig, path)
