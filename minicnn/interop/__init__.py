"""Bridges from minicnn to other frameworks, each an optional dependency imported only
when its function is called (``import minicnn`` never imports them):

* ``minicnn.interop.onnx``  : a model as an ONNX graph, for OpenCV's DNN module,
  onnxruntime and everything else that reads ONNX (``pip install -e ".[onnx]"``).
* ``minicnn.interop.torch`` : a model as a ``torch.nn.Sequential`` and back, state dicts
  included (``pip install -e ".[compare]"``).

Both rest on minicnn using PyTorch's NCHW layout and weight shapes, which ONNX shares:
weights cross unchanged, without a transpose.
"""
