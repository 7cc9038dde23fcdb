"""Case "gemm": how much of the plain matrix-multiply speed Conv2D keeps.

``engine.conv`` turns a convolution over a batch into chunked GEMMs; for a chunk of
n images (n from ``engine.conv.chunk_size``), with K = C*KH*KW and P = OH*OW:

    forward   (F, K) @ (K, n*P)                                   W2 @ cols
    backward  (F, n*P) @ (n*P, K)  and  (K, F) @ (F, n*P)          d2 @ cols.T, W2.T @ d2

(the first layer of a model skips the second backward GEMM: no dx). Here the same GEMMs,
with the same shapes and the same transposed views, are timed alone with NumPy's matmul,
run the way Conv2D runs them: the batch split between the threads
(``engine.conv.plan_chunks``), each thread doing its own chunks' GEMMs with BLAS on
one thread (``minicnn.threads.map_concurrently``). That is the GEMM rate. Conv2D's own
rate is 2*MACs per pass (backward: twice that, or once for the first layer) over its
measured time (shared with the "layers" case). Ratio = conv GFLOP/s / GEMM GFLOP/s, the
share of the time spent in useful GEMM work; the rest is im2col/col2im, layout transposes
and bias. Target: > 70% over all convs of the models.
"""

from __future__ import annotations

import numpy as np

from benchmarks.bench_layers import ConvShape, minicnn_conv_times, model_shapes
from benchmarks.common import Config, Row, measure, rate_row

GROUP = "gemm"
TARGET = 0.7


def _chunks(s: ConvShape, batch: int) -> tuple[int, int, list[list[int]]]:
    """(K, P, chunk widths n*P by thread) exactly as engine.conv splits a batch."""
    from minicnn.engine import threads
    from minicnn.engine.conv import plan_chunks
    from minicnn.kernels import output_hw

    OH, OW = output_hw(s.H, s.W, s.k, s.k, s.stride, s.pad)
    P, K = OH * OW, s.C * s.k * s.k
    plan = plan_chunks(batch, P, threads.parallel_parts(batch))
    return K, P, [[(stop - start) * P for start, stop in part] for part in plan]


def gemm_times(s: ConvShape, cfg: Config) -> tuple[float, float]:
    """Median seconds of the forward GEMMs and of the backward GEMMs of one conv call."""
    from minicnn.engine import threads

    K, _, parts = _chunks(s, cfg.batch)
    rng = np.random.default_rng(0)
    w2 = rng.standard_normal((s.F, K), dtype=np.float32)
    widths = {m for part in parts for m in part}
    cols = {m: rng.standard_normal((K, m), dtype=np.float32) for m in widths}
    d2 = {m: rng.standard_normal((s.F, m), dtype=np.float32) for m in widths}
    # outputs of each thread's own (as Conv2D's scratch buffers are)
    ys = [{m: np.empty((s.F, m), np.float32) for m in part} for part in parts]
    dcols = [{m: np.empty((K, m), np.float32) for m in part} for part in parts]

    def forward_part(i):
        for m in parts[i]:
            np.matmul(w2, cols[m], out=ys[i][m])

    def backward_part(i):
        for m in parts[i]:
            d2[m] @ cols[m].T
            if not s.first:
                np.matmul(w2.T, d2[m], out=dcols[i][m])

    ids = range(len(parts))
    return (measure(lambda: threads.map_concurrently(forward_part, ids), cfg),
            measure(lambda: threads.map_concurrently(backward_part, ids), cfg))


def run(cfg: Config) -> list[Row]:
    convs, _ = model_shapes(cfg.models)
    rows = []
    totals = {"fwd": [0.0, 0.0, 0.0], "bwd": [0.0, 0.0, 0.0]}  # flops, conv s, gemm s
    for s in convs:
        K, P, parts = _chunks(s, cfg.batch)
        fwd_flops = 2.0 * s.F * K * P * cfg.batch
        flops = {"fwd": fwd_flops, "bwd": fwd_flops * (1 if s.first else 2)}
        conv = dict(zip(("fwd", "bwd"), minicnn_conv_times(s, cfg)))
        gemm = dict(zip(("fwd", "bwd"), gemm_times(s, cfg)))
        for d in ("fwd", "bwd"):
            ours, base = flops[d] / conv[d] / 1e9, flops[d] / gemm[d] / 1e9
            rows.append(rate_row(GROUP, f"conv {d} {s.label()}", ours, base, "GFLOP/s",
                                 note=f"{len(parts)} thread(s) x {len(parts[0])} GEMM "
                                      f"chunk(s) of {parts[0][0]} columns, K={K}"))
            for i, v in enumerate((flops[d], conv[d], gemm[d])):
                totals[d][i] += v
    both = [a + b for a, b in zip(totals["fwd"], totals["bwd"])]
    for d, (f, conv_s, gemm_s) in (*totals.items(), ("fwd+bwd", both)):
        ours, base = f / conv_s / 1e9, f / gemm_s / 1e9
        rows.append(rate_row(GROUP, f"all convs {d} ({', '.join(cfg.models)})", ours, base,
                             "GFLOP/s", TARGET, note=f"share {ours / base:.0%}"))
    return rows
