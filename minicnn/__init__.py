"""minicnn: a readable convolutional-network framework in NumPy, accelerated with Numba.

    import numpy as np, minicnn
    from minicnn.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    model = minicnn.Sequential([Conv2D(1, 8, 3, padding="same"), ReLU(), MaxPool2D(2),
                                Flatten(), Dense(8 * 24 * 24, 7)], rng=0)

Every op has two implementations: the reference (``minicnn.functional``) and the fast
engine (``minicnn.engine``, the default); ``minicnn.set_backend("reference" | "fast")``
or ``with minicnn.backend(...)`` picks one (``minicnn.backends``).
"""

from minicnn import data, metrics
from minicnn.backends import backend, get_backend, set_backend
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.model import Recording, Sequential
from minicnn.serialize import WeightsError
from minicnn.serialize import load_model as load

__all__ = ["Recording", "Sequential", "SoftmaxCrossEntropy", "WeightsError", "backend", "data",
           "get_backend", "load", "metrics", "set_backend"]
__version__ = "0.1.0"
