"""Accuracy, from scores or from predicted labels."""

from __future__ import annotations

import numpy as np


def accuracy(scores_or_pred: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of samples whose prediction equals the label.

    scores_or_pred : (N, K) logits or probabilities (the prediction is the argmax of each
        row) or (N,) predicted class ids.
    labels : (N,) integer class ids.

    An empty batch has no accuracy: ValueError, rather than NaN.
    """
    scores = np.asarray(scores_or_pred)
    labels = np.asarray(labels)
    pred = scores.argmax(axis=1) if scores.ndim == 2 else scores
    if pred.ndim != 1 or labels.shape != pred.shape:
        raise ValueError(f"expected (N, K) scores or (N,) predictions and (N,) labels, got "
                         f"{scores.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set of samples is undefined")
    return float(np.mean(pred == labels))
