"""Classification metrics from predictions: accuracy, confusion matrix, per-class
precision / recall / F1 and macro-F1 (the unweighted mean over classes, so the rare
"disgust" class counts as much as "happy")."""

from __future__ import annotations

import numpy as np

from emotion.labels import CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(CLASSES)) -> np.ndarray:
    """cm[i, j] = how many faces of true class i were predicted as class j."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_report(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """All metrics as a JSON-ready dict."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, probs.shape[1])
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(CLASSES[:probs.shape[1]])
        },
        "confusion": cm.tolist(),
    }


def format_report(report: dict) -> str:
    """A plain-text table of a ``classification_report``."""
    lines = [f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}"
                     f"{m['support']:>10d}")
    lines.append(f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   "
                 f"n = {report['n']}")
    names = list(report["per_class"])
    lines.append("")
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * 10 + "".join(f"{n[:7]:>8}" for n in names))
    for name, row in zip(names, report["confusion"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8d}" for v in row))
    return "\n".join(lines)
