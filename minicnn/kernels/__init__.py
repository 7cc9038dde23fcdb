"""Kernels, one file per concept, each holding its naive, NumPy and Numba tiers side by
side: ``im2col`` (im2col, col2im, the GEMM result into NCHW), ``pool`` (max-pool),
``winograd`` (Winograd's tile and filter transforms), ``direct`` (convolution loops with no
columns, for few channels), ``batchnorm`` (per-channel passes) and ``activation`` (ReLU).
``dispatch`` picks the tier: every kernel takes ``tier=`` ("naive", "numpy", "numba"), and
``minicnn.set_backend`` sets the default.
"""

from minicnn.kernels import direct, winograd
from minicnn.kernels.activation import relu_backward, relu_forward
from minicnn.kernels.batchnorm import (
    channel_affine2,
    channel_moments,
    channel_normalize,
    channel_sums,
)
from minicnn.kernels.dispatch import TIERS, get_tier, numba_available, set_tier
from minicnn.kernels.im2col import (
    col2im,
    conv_output_size,
    im2col,
    im2col_into,
    output_hw,
    regroup_add_bias,
)
from minicnn.kernels.pool import maxpool_backward, maxpool_forward
from minicnn.kernels.winograd import (
    winograd_grad_output,
    winograd_input,
    winograd_input_grad,
    winograd_output,
    winograd_weight_grad,
    winograd_weights,
)

__all__ = [
    "TIERS", "channel_affine2", "channel_moments", "channel_normalize", "channel_sums",
    "col2im", "conv_output_size", "direct", "get_tier", "im2col", "im2col_into", "maxpool_backward",
    "maxpool_forward", "numba_available", "output_hw", "regroup_add_bias", "relu_backward",
    "relu_forward", "set_tier", "winograd", "winograd_grad_output", "winograd_input",
    "winograd_input_grad", "winograd_output", "winograd_weight_grad", "winograd_weights",
]
