"""Loss objects over ``functional.loss``."""

from __future__ import annotations

import numpy as np

from minicnn.functional.loss import softmax_cross_entropy
from minicnn.layers.base import FLOAT_DTYPES, float_arg


class SoftmaxCrossEntropy:
    """Fused softmax + cross-entropy on integer labels, matching
    ``torch.nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)``.

    ``loss = fn(logits, labels)`` returns the mean loss; ``fn.backward()`` then returns
    dL/dlogits (N, K), already divided by the batch's total weight.

    Inputs: logits float32/float64 (N, K) (integer logits are refused: their gradient would
    be truncated to integers); labels integer class ids (N,) in [0, K); ``class_weights``
    (K,) finite and >= 0, one per class (a different length is refused at the first call).
    A batch with no weight at all (N = 0, or every label's class weight 0) contributes
    nothing: loss 0.0 and a zero gradient (PyTorch gives NaN there).
    """

    def __init__(self, label_smoothing: float = 0.0,
                 class_weights: np.ndarray | None = None) -> None:
        self.label_smoothing = float_arg("SoftmaxCrossEntropy", "label_smoothing",
                                         label_smoothing, 0.0, 1.0, high_open=True)
        if class_weights is not None:
            class_weights = np.asarray(class_weights)
            if (class_weights.ndim != 1 or class_weights.dtype.kind not in "iuf"
                    or not np.isfinite(class_weights).all() or (class_weights < 0).any()):
                raise ValueError("SoftmaxCrossEntropy: class_weights must be a 1-D array of "
                                 f"finite numbers >= 0, one per class, got {class_weights!r}")
        self.class_weights = class_weights
        self._dlogits = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        if not isinstance(logits, np.ndarray) or logits.dtype not in FLOAT_DTYPES:
            what = logits.dtype if isinstance(logits, np.ndarray) else type(logits).__name__
            raise TypeError(f"SoftmaxCrossEntropy: logits must be a float32 or float64 array "
                            f"(the network's output), got {what}")
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: logits must be (N, K), got shape "
                             f"{logits.shape}")
        w = self.class_weights
        if w is not None and len(w) != logits.shape[1]:
            raise ValueError(f"SoftmaxCrossEntropy: {len(w)} class_weights for "
                             f"{logits.shape[1]} classes (logits {logits.shape})")
        with np.errstate(invalid="ignore", divide="ignore"):  # a weightless batch: below
            loss, dlogits = softmax_cross_entropy(logits, labels, self.label_smoothing, w)
        if len(logits) == 0 or (w is not None and w[np.asarray(labels)].sum() == 0):
            loss, dlogits = 0.0, np.zeros_like(logits)
        self._dlogits = dlogits
        return loss

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._dlogits is None:
            raise RuntimeError("call the loss (forward) before backward")
        return self._dlogits
