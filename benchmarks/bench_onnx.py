"""Case "opencv-dnn": the same model run by minicnn and, exported to ONNX
(``minicnn.interop.onnx``), by OpenCV's DNN module, which ``--backend opencv-dnn`` of
``emotion.predict`` and ``emotion.webcam`` uses; and by onnxruntime when it is installed.

* latency: one (1, 1, 48, 48) face -> probabilities; the median over
  ``cfg.latency_calls`` single calls, in ms (ratio = runtime ms / minicnn ms).
* throughput: batches of ``cfg.infer_batch`` faces, in faces/s (ratio = minicnn / runtime).

The model is ``cfg.models[0]`` with batch norm folded, as ``EmotionRecognizer`` runs it;
every runtime ends with the softmax and gets ``cfg.threads`` threads. The case is optional:
without the onnx package it is skipped (ImportError).

    python -m benchmarks --only opencv-dnn
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Config, Row, measure, rate_row, time_row

GROUP = "opencv-dnn"


def runtimes(model, threads: int) -> dict[str, object]:
    """name -> a function (N, 1, 48, 48) float32 -> probabilities, for each ONNX runtime
    installed (OpenCV DNN always). ImportError when onnx is missing."""
    import cv2

    from minicnn.interop.onnx import to_onnx

    data = to_onnx(model, (1, 48, 48), softmax=True).SerializeToString()
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))

    def opencv(x):
        net.setInput(x)
        return net.forward()

    found = {"OpenCV DNN": opencv}
    try:
        import onnxruntime
    except ImportError:
        return found
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    found["onnxruntime"] = lambda x: session.run(None, {"input": x})[0]
    return found


def run(cfg: Config) -> list[Row]:
    from emotion.models import build
    from minicnn.fuse import fold_batchnorm

    name = cfg.models[0]
    model = fold_batchnorm(build(name, rng=0))  # eval mode, as the recognizer runs it
    found = runtimes(model, cfg.threads)
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 1, 48, 48), dtype=np.float32)
    many = rng.standard_normal((cfg.infer_batch, 1, 48, 48), dtype=np.float32)
    warm = max(cfg.warmup, 3) if not cfg.smoke else 1
    ours_lat = measure(lambda: model.predict_proba(one), cfg, warmup=warm,
                       repeat=cfg.latency_calls)
    ours_bat = measure(lambda: model.predict_proba(many), cfg)
    rows = []
    for runtime, fn in found.items():
        diff = float(np.abs(fn(many) - model.predict_proba(many)).max())
        lat = measure(lambda fn=fn: fn(one), cfg, warmup=warm, repeat=cfg.latency_calls)
        bat = measure(lambda fn=fn: fn(many), cfg)
        rows += [
            time_row(GROUP, f"latency, 1 face ({name}) vs {runtime}", ours_lat * 1e3,
                     lat * 1e3, "ms", note=f"median of {cfg.latency_calls} calls"),
            rate_row(GROUP, f"throughput, batch {cfg.infer_batch} ({name}) vs {runtime}",
                     cfg.infer_batch / ours_bat, cfg.infer_batch / bat, "faces/s",
                     note=f"{ours_bat * 1e3:.0f} vs {bat * 1e3:.0f} ms/batch; "
                          f"max |dp| {diff:.1e}"),
        ]
    return rows
