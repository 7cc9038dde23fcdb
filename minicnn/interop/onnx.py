"""A minicnn ``Sequential`` as an ONNX graph, for runtimes outside Python's reach.

    from minicnn.interop.onnx import save_onnx, to_onnx
    proto = to_onnx(model, input_shape=(1, 48, 48), softmax=True)
    save_onnx(proto, "model.onnx")          # OpenCV: cv2.dnn.readNetFromONNX("model.onnx")

The graph is the model in eval mode, float32, with a free batch axis ("N"):

    minicnn                      ONNX (opset 13)
    Conv2D                       Conv (pads from padding, "same" included)
    BatchNorm2D                  folded into the Conv before it (``fold=True``, as
                                 ``minicnn.fuse.fold_batchnorm`` does), else BatchNormalization
    activation="relu"            (on a Conv2D or BatchNorm2D) a separate Relu node
    ReLU                         Relu
    MaxPool2D                    MaxPool
    GlobalAvgPool2D              GlobalAveragePool + Flatten
    Flatten                      Flatten (axis 1: C-order, as minicnn flattens)
    Dense                        Gemm (transB: both keep W as (out_features, in_features))
    Dropout                      nothing (the identity in eval mode)

Opset 13 and IR version 7 are old enough for every OpenCV 4.x DNN module and onnxruntime
build of the last years, and have every operator above. The ``onnx`` package is imported
when a function here is called, never by ``import minicnn``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minicnn.model import Sequential

OPSET = 13
IR_VERSION = 7  # the IR version that came with opset 13 (onnx 1.8)
INPUT_NAME = "input"


def import_onnx():
    """The ``onnx`` module, or ImportError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the onnx package: pip install -e ".[onnx]" '
                          "(or pip install onnx)") from None
    return onnx


def _conv_nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
    inputs = [x, add_init(f"{i}.W", layer.params["W"])]
    if layer.bias:
        inputs.append(add_init(f"{i}.b", layer.params["b"]))
    k, p, s = layer.kernel_size, layer.pad, layer.stride
    return [helper.make_node("Conv", inputs, [out], name=f"{i}.Conv2D", kernel_shape=[k, k],
                             strides=[s, s], pads=[p, p, p, p], dilations=[1, 1], group=1)]


def _batchnorm_nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
    inputs = [x] + [add_init(f"{i}.{name}", arr) for name, arr in (
        ("gamma", layer.params["gamma"]), ("beta", layer.params["beta"]),
        ("running_mean", layer.buffers["running_mean"]),
        ("running_var", layer.buffers["running_var"]))]
    return [helper.make_node("BatchNormalization", inputs, [out], name=f"{i}.BatchNorm2D",
                             epsilon=float(layer.eps))]


def _dense_nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
    inputs = [x, add_init(f"{i}.W", layer.params["W"]), add_init(f"{i}.b", layer.params["b"])]
    return [helper.make_node("Gemm", inputs, [out], name=f"{i}.Dense", transB=1)]


def _maxpool_nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
    k, s = layer.kernel_size, layer.stride
    return [helper.make_node("MaxPool", [x], [out], name=f"{i}.MaxPool2D",
                             kernel_shape=[k, k], strides=[s, s])]


def _gap_nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
    return [helper.make_node("GlobalAveragePool", [x], [f"{out}.pooled"],
                             name=f"{i}.GlobalAvgPool2D"),
            helper.make_node("Flatten", [f"{out}.pooled"], [out], name=f"{i}.Flatten", axis=1)]


def _simple(op: str, **attrs):
    def nodes(i: int, layer, x: str, out: str, helper, add_init) -> list:
        return [helper.make_node(op, [x], [out], name=f"{i}.{type(layer).__name__}", **attrs)]
    return nodes


# minicnn layer type -> function(index, layer, input name, output name, helper, add_init)
# returning the ONNX nodes that compute the layer in eval mode; None: the identity.
EMITTERS = {
    "Conv2D": _conv_nodes,
    "BatchNorm2D": _batchnorm_nodes,
    "ReLU": _simple("Relu"),
    "MaxPool2D": _maxpool_nodes,
    "GlobalAvgPool2D": _gap_nodes,
    "Flatten": _simple("Flatten", axis=1),
    "Dense": _dense_nodes,
    "Dropout": None,
}


def to_onnx(model: Sequential, input_shape: tuple[int, ...], *, fold: bool = True,
            softmax: bool = False, metadata: dict[str, str] | None = None,
            graph_name: str = "minicnn"):
    """The model as an ``onnx.ModelProto`` (checked with ``onnx.checker``).

    Inputs
    ------
    model : any ``Sequential`` of minicnn's layers; it is not modified, and the graph
        computes its eval-mode function whatever mode it is in.
    input_shape : one sample's shape without the batch axis, e.g. (1, 48, 48); the graph's
        input is "input" of shape (N, *input_shape), float32.
    fold : fold each batch norm that follows a convolution into it (fewer nodes, what
        ``EmotionRecognizer`` runs); the others become BatchNormalization nodes either way.
    softmax : end with Softmax, output "probabilities" (N, K); otherwise "logits" (N, K).
    metadata : strings stored as the model's metadata_props (e.g. the class names).

    Raises ValueError naming the layer for a layer with no ONNX equivalent or for a model
    that does not accept ``input_shape``; ImportError when onnx is not installed.
    """
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    from minicnn.fuse import fold_batchnorm

    for i, layer in enumerate(model.layers):
        if type(layer).__name__ not in EMITTERS:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has no ONNX equivalent; "
                             f"exportable layers: {', '.join(EMITTERS)}")
    src = fold_batchnorm(model, relu=False) if fold else model
    input_shape = tuple(int(d) for d in input_shape)
    dtype = next(iter(src.parameters().values()), np.zeros(0, np.float32)).dtype
    try:  # the shapes must chain; predict_proba runs eval mode and restores the mode after
        out_shape = src.predict_proba(np.zeros((1, *input_shape), dtype)).shape[1:]
    except Exception as exc:  # any shape error inside the network means the same thing
        raise ValueError(f"the model does not accept input of shape {input_shape}: {exc}") \
            from None
    if len(out_shape) != 1:
        raise ValueError(f"the model outputs shape {out_shape} per sample; ONNX export "
                         "expects a vector (end with Dense, Flatten or GlobalAvgPool2D)")

    initializers: list = []

    def add_init(name: str, arr: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32),
                                                    name=name))
        return name

    nodes: list = []
    x = INPUT_NAME
    for i, layer in enumerate(src.layers):
        emit = EMITTERS[type(layer).__name__]
        if emit is None:
            continue
        out = f"{i}.out"
        nodes += emit(i, layer, x, out, helper, add_init)
        if getattr(layer, "activation", None) == "relu":  # a fused ReLU, unfused again
            nodes.append(helper.make_node("Relu", [out], [f"{i}.relu"], name=f"{i}.relu"))
            out = f"{i}.relu"
        x = out
    final = "probabilities" if softmax else "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", [x], [final], name="softmax", axis=1))
    elif nodes:
        nodes[-1].output[0] = final  # the last node writes the graph's output directly
    else:  # only dropout layers: the identity
        nodes.append(helper.make_node("Identity", [x], [final], name="identity"))

    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info(final, TensorProto.FLOAT, ["N", *out_shape])],
        initializer=initializers)
    proto = helper.make_model(graph, producer_name="minicnn",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    from minicnn import __version__

    proto.producer_version = __version__
    if metadata:
        helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto, full_check=True)  # also runs shape inference
    return proto


def save_onnx(proto, path: str | os.PathLike) -> Path:
    """Write an ``onnx.ModelProto`` (or serialized bytes) atomically: a temp file in the
    same folder, then ``os.replace``, so a crash never leaves half a model. Returns the
    path."""
    from minicnn.serialize import atomic_write

    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return Path(path)
