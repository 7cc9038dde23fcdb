"""Inference backends: what runs the network inside ``EmotionRecognizer``.

    minicnn     the model itself (the default): NumPy + Numba, batch norm folded
    opencv-dnn  the same model exported to ONNX in memory (``minicnn.interop.onnx``) and run
                by OpenCV's DNN module, which OpenCV builds with its own optimised CPU
                kernels; needs the onnx package (``pip install -e ".[onnx]"``) to export

    recognizer = EmotionRecognizer()
    use_backend(recognizer, "opencv-dnn")       # same answers (to ~1e-6), other engine

The export happens on the fly from the weights the recognizer loaded, so both backends
always run the same model and no exported file can go stale. (``python -m emotion.export``
writes the same graph to a file, for programs that have OpenCV or onnxruntime but not
this package.)
"""

from __future__ import annotations

import cv2
import numpy as np

from emotion.preprocess import INPUT_SIZE

BACKENDS = ("minicnn", "opencv-dnn")


class OpenCVDNNModel:
    """A minicnn model exported to ONNX and run by ``cv2.dnn``, with the
    ``predict_proba(x, batch_size)`` that ``preprocess.predict_proba`` calls on a model.

    Inputs
    ------
    model : a ``minicnn.Sequential`` mapping (N, 1, 48, 48) to K scores (any mode; the
        export computes its eval-mode function).

    Raises ImportError (no onnx package) or ValueError (a layer without an ONNX equivalent).
    """

    def __init__(self, model, input_shape: tuple[int, ...] = (1, INPUT_SIZE, INPUT_SIZE)):
        from minicnn.interop.onnx import to_onnx

        proto = to_onnx(model, input_shape, softmax=True)
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(proto.SerializeToString(), np.uint8))
        self.layers = model.layers  # for code that reads the architecture (class count)
        self.training = False

    def predict_proba(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Softmax probabilities (N, K) for float32 input (N, 1, 48, 48), in batches."""
        out = []
        for i in range(0, len(x), batch_size):
            self.net.setInput(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))
            out.append(self.net.forward().copy())  # forward() may reuse its output buffer
        return np.concatenate(out)


def use_backend(recognizer, name: str):
    """Switch ``recognizer`` (an ``EmotionRecognizer``) to the named backend, one of
    ``BACKENDS``; returns it. Raises ValueError with the reason (unknown name, the onnx
    package missing, a model OpenCV cannot load)."""
    if name == "minicnn":
        return recognizer
    if name != "opencv-dnn":
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    try:
        recognizer.model = OpenCVDNNModel(recognizer.model)
    except ImportError as exc:
        raise ValueError(f"backend opencv-dnn: {exc}") from None
    except cv2.error as exc:
        raise ValueError(f"backend opencv-dnn: OpenCV could not load the exported model "
                         f"({str(exc).strip()})") from None
    return recognizer
