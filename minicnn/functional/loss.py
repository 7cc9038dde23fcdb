"""Softmax cross-entropy, fused and numerically stable, with PyTorch's exact semantics
for label smoothing and class weights (``torch.nn.CrossEntropyLoss``, reduction "mean").

Inputs: logits z (N, K), integer labels y (N,). With p = softmax(z) computed after
shifting each row by its maximum (so exp never overflows), log p = z - max - log-sum-exp,
label smoothing s and class weights w (all ones when not given):

    L = [ (1 - s) * sum_i w[y_i] * (-log p[i, y_i])
          + (s / K) * sum_i sum_k w[k] * (-log p[i, k]) ] / sum_i w[y_i]

and because d(-log p[i, k]) / dz_i = p_i - onehot(k):

    dL/dz_i = [ (1 - s) * w[y_i] * (p_i - onehot(y_i)) + (s / K) * (sum(w) * p_i - w) ]
              / sum_i w[y_i]

Without weights and smoothing this is the textbook (p - onehot(y)) / N.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of z (N, K), stable for large logits."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(z))


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """logits (N, K); labels (N,), integer class ids in [0, K); label_smoothing s in
    [0, 1); class_weights (K,) or None. Returns (L, dL/dlogits (N, K)): the loss averaged
    over the batch with weights w[y_i], and its gradient (derivation above)."""
    N, K = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {N} integer class ids, got {labels.dtype} {labels.shape}")
    if N and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"labels must lie in [0, {K}), got {labels.min()}..{labels.max()}")
    smooth = float(label_smoothing)
    w = (np.ones(K, dtype=logits.dtype) if class_weights is None
         else np.asarray(class_weights, dtype=logits.dtype))
    logp = log_softmax(logits)
    rows = np.arange(N)
    wy = w[labels]                      # (N,)
    norm = wy.sum()
    nll = -logp[rows, labels]           # (N,)
    loss = (1 - smooth) * (wy * nll).sum()
    if smooth:
        loss += smooth / K * -(logp * w).sum()
    loss /= norm
    p = np.exp(logp)
    dz = p * ((1 - smooth) * wy)[:, None]
    dz[rows, labels] -= (1 - smooth) * wy
    if smooth:
        dz += smooth / K * (w.sum() * p - w)
    dz /= norm
    return float(loss), dz.astype(logits.dtype, copy=False)
