"""The reference: pure forward/backward function pairs, one file per op, each short and
written as the textbook has it (conv2d is im2col over the whole batch and one matrix
product). ``minicnn.engine`` computes the same functions fast; layers call whichever
``minicnn.set_backend`` selects. Gradient checks and the PyTorch cross-checks target these
functions directly."""

from minicnn.functional.activation import relu_backward, relu_forward
from minicnn.functional.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from minicnn.functional.conv import conv2d_backward, conv2d_forward
from minicnn.functional.dense import dense_backward, dense_forward
from minicnn.functional.dropout import dropout_backward, dropout_forward
from minicnn.functional.loss import log_softmax, softmax, softmax_cross_entropy
from minicnn.functional.pool import (
    global_avgpool_backward,
    global_avgpool_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

__all__ = [
    "batchnorm2d_backward", "batchnorm2d_forward", "conv2d_backward", "conv2d_forward",
    "dense_backward", "dense_forward", "dropout_backward", "dropout_forward",
    "global_avgpool_backward", "global_avgpool_forward", "log_softmax", "maxpool2d_backward",
    "maxpool2d_forward", "relu_backward", "relu_forward", "softmax", "softmax_cross_entropy",
]
