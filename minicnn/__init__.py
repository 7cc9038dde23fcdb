"""minicnn: a readable convolutional-network framework in NumPy, accelerated with Numba.

    import numpy as np, minicnn
    from minicnn.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    model = minicnn.Sequential([Conv2D(1, 8, 3, padding="same"), ReLU(), MaxPool2D(2),
                                Flatten(), Dense(8 * 24 * 24, 7)], rng=0)
"""

from minicnn.losses import SoftmaxCrossEntropy
from minicnn.model import Recording, Sequential
from minicnn.serialize import WeightsError
from minicnn.serialize import load_model as load

__all__ = ["Recording", "Sequential", "SoftmaxCrossEntropy", "WeightsError", "load"]
__version__ = "0.1.0"
