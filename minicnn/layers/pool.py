"""Pooling layers: MaxPool2D and GlobalAvgPool2D."""

from __future__ import annotations

from minicnn.backends import ops
from minicnn.functional.pool import global_avgpool_backward, global_avgpool_forward
from minicnn.kernels import output_hw
from minicnn.layers.base import Layer, int_arg


class MaxPool2D(Layer):
    """Max over kernel_size x kernel_size windows; stride defaults to kernel_size.
    Ties send the gradient to the first maximum in the window."""

    saved = ("cache",)
    sample_ndim = 3

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = int_arg("MaxPool2D", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else int_arg("MaxPool2D", "stride",
                                                                       stride)
        self.cache = None

    def forward(self, x):
        self.check_input(x)
        self.ops = ops()  # the active backend's functions, kept for backward
        out, self.cache = self.ops.maxpool2d_forward(x, self.kernel_size, self.stride)
        return out

    def backward(self, dout, need_dx=True):
        return self.ops.maxpool2d_backward(dout, self.cache)

    def output_shape(self, input_shape):
        C, H, W = input_shape
        k = self.kernel_size
        return (C, *output_hw(H, W, k, k, self.stride, 0))

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}


class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""

    sample_ndim = 3

    def forward(self, x):
        self.check_input(x)
        out, self.x_shape = global_avgpool_forward(x)
        return out

    def backward(self, dout, need_dx=True):
        return global_avgpool_backward(dout, self.x_shape)

    def output_shape(self, input_shape):
        return (input_shape[0],)
