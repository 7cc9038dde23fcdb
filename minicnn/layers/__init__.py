"""Layers: thin classes over ``minicnn.functional`` holding params, grads and caches."""

from minicnn.layers.activation import Flatten, ReLU
from minicnn.layers.base import LAYER_TYPES, Layer
from minicnn.layers.batchnorm import BatchNorm2D
from minicnn.layers.conv import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.dropout import Dropout
from minicnn.layers.pool import GlobalAvgPool2D, MaxPool2D

__all__ = [
    "LAYER_TYPES", "BatchNorm2D", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAvgPool2D",
    "Layer", "MaxPool2D", "ReLU",
]
