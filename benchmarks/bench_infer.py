"""Case "inference": the default model (``cfg.models[0]``) in eval mode, minicnn vs
PyTorch (same weights).

* latency: one (1, 1, 48, 48) face -> logits; the median over ``cfg.latency_calls``
  single calls, in ms (ratio = torch ms / minicnn ms).
* throughput: batches of ``cfg.infer_batch`` faces -> logits, in faces/s
  (ratio = minicnn / torch).

Both run the model as ``EmotionRecognizer`` does: with batch norm folded into the
convolutions and each ReLU fused into the convolution before it
(``minicnn.fuse.fold_batchnorm``). PyTorch gets the same folded network, with its ReLUs
as separate modules (``torch_models.py``).
PyTorch runs ``net.eval()`` under ``torch.no_grad()``; minicnn runs ``model.eval()``.
Pre-processing and face detection are not included: see the optional "inference-e2e"
case for the whole pipeline.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Config, Row, get_torch, measure, rate_row, time_row

GROUP = "inference"
TARGET = 1.0


def run(cfg: Config) -> list[Row]:
    from emotion.models import build
    from minicnn.fuse import fold_batchnorm

    name = cfg.models[0]
    model = fold_batchnorm(build(name, rng=0))  # eval mode, as the recognizer runs it
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 1, 48, 48), dtype=np.float32)
    many = rng.standard_normal((cfg.infer_batch, 1, 48, 48), dtype=np.float32)
    warm = max(cfg.warmup, 3) if not cfg.smoke else 1
    ours_lat = measure(lambda: model.forward(one), cfg, warmup=warm, repeat=cfg.latency_calls)
    ours_bat = measure(lambda: model.forward(many), cfg)

    theirs_lat = theirs_bat = None
    torch = get_torch()
    if torch is not None:
        from benchmarks.torch_models import torch_sequential

        net = torch_sequential(model).eval()
        t_one, t_many = torch.from_numpy(one), torch.from_numpy(many)
        with torch.no_grad():
            theirs_lat = measure(lambda: net(t_one), cfg, warmup=warm,
                                 repeat=cfg.latency_calls)
            theirs_bat = measure(lambda: net(t_many), cfg)

    return [
        time_row(GROUP, f"latency, 1 face ({name}, eval)", ours_lat * 1e3,
                 None if theirs_lat is None else theirs_lat * 1e3, "ms", TARGET,
                 note=f"median of {cfg.latency_calls} calls"),
        rate_row(GROUP, f"throughput, batch {cfg.infer_batch} ({name}, eval)",
                 cfg.infer_batch / ours_bat,
                 None if theirs_bat is None else cfg.infer_batch / theirs_bat,
                 "faces/s", TARGET, note=f"{ours_bat * 1e3:.0f} ms/batch"),
    ]
