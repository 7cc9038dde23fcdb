"""The engine: the fast path behind ``minicnn.set_backend("fast")`` (the default).

It offers the same functions as ``minicnn.functional`` (the reference), computing the
same results faster: convolutions in chunks of images split between threads, in reused
memory, as im2col + GEMM, Winograd, direct loops or (1x1) pointwise GEMMs, whichever a
cost model chooses per layer (or, under ``set_algorithm("measure")``, whichever ran
fastest on the layer's first call; ``engine.algorithm``); batch norm (with its fused
ReLU), max-pool and ReLU in single parallel passes of the Numba kernels. Ops that the
reference already runs at the speed of one NumPy call (dropout, global average pooling,
the loss) are the reference's own; dense layers split their GEMMs between the engine's
threads.
tests/test_backend_equality.py checks every op against the reference.
"""

from minicnn.engine.activation import relu_backward, relu_forward
from minicnn.engine.algorithm import get_algorithm, set_algorithm
from minicnn.engine.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from minicnn.engine.conv import conv2d_backward, conv2d_forward
from minicnn.engine.dense import dense_backward, dense_forward
from minicnn.engine.pool import maxpool2d_backward, maxpool2d_forward
from minicnn.functional.dropout import dropout_backward, dropout_forward
from minicnn.functional.loss import log_softmax, softmax, softmax_cross_entropy
from minicnn.functional.pool import global_avgpool_backward, global_avgpool_forward

__all__ = [
    "batchnorm2d_backward", "batchnorm2d_forward", "conv2d_backward",
    "conv2d_forward", "dense_backward", "dense_forward", "dropout_backward", "dropout_forward",
    "get_algorithm", "global_avgpool_backward", "global_avgpool_forward", "log_softmax",
    "maxpool2d_backward", "maxpool2d_forward", "relu_backward", "relu_forward",
    "set_algorithm", "softmax", "softmax_cross_entropy",
]
