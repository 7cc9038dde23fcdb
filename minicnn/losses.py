"""Loss objects over ``functional.loss``."""

from __future__ import annotations

import numpy as np

from minicnn.functional.loss import softmax_cross_entropy


class SoftmaxCrossEntropy:
    """Fused softmax + cross-entropy on integer labels, matching
    ``torch.nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)``.

    ``loss = fn(logits, labels)`` returns the mean loss; ``fn.backward()`` then returns
    dL/dlogits (N, K), already divided by the batch's total weight.
    """

    def __init__(self, label_smoothing: float = 0.0,
                 class_weights: np.ndarray | None = None) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.class_weights = None if class_weights is None else np.asarray(class_weights)
        self._dlogits = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        loss, self._dlogits = softmax_cross_entropy(logits, labels, self.label_smoothing,
                                                    self.class_weights)
        return loss

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._dlogits is None:
            raise RuntimeError("call the loss (forward) before backward")
        return self._dlogits
