"""Which algorithm each convolution runs: im2col + one GEMM, Winograd's F(m x m, 3x3)
with m = 2, 3 or 4, direct loops, or (1x1) GEMMs on the input itself, chosen per layer
from its shapes by a small cost model.

Every convolution can run as im2col; a 3x3 one with stride 1 and padding 0 or 1 also as
Winograd, (with Numba) a square stride-1 one as direct loops, and a 1x1 one with stride 1
and no padding as "pointwise": each image's (C, H*W) input already is its column matrix,
so one GEMM an image needs no copy, forward or backward. Winograd does fewer
multiplies (alpha^2 / (9 m^2) of im2col's, alpha = m + 2) but pays for tile transforms,
one GEMM call per tile position, and a transform of the weights on every call, and its
GEMMs have only C as their inner dimension. The model adds up, in seconds on one core:

    GEMM      multiply-adds / (PEAK * k / (k + K_HALF) * F / (F + F_HALF))   k: the
              GEMM's inner dimension (C*KH*KW for im2col, C for Winograd)
    copies    values written by im2col / COPY; by the tile transforms, a C- or F-vector
              per tile position, (C + CHANNEL_HALF) * TRANSFORM / COPY for C (and so for F)
    calls     GEMM calls * CALL (Winograd: alpha^2 per chunk of images), + SETUP
    weights   alpha^2 * C * F * 9 / WEIGHT_RATE (Winograd's filter transform); in eval mode,
              where the transform is kept between calls, 2 * C * F * 9 / COPY (the
              weights compared with the copy it was made from)
    direct    multiply-adds over flat rows (OH * (OW + KW - 1) outputs a plane) /
              DIRECT (3x3: the 9 taps in one pass), DIRECT_ROW (5 wide: a row of taps a
              pass) or DIRECT_TAP (other sizes: a pass a tap),
              + PLANE seconds per pass (image, C, F), + the padded input's copy / COPY
    pointwise im2col's estimate, scaled by how a whole step of the two compares, as
              pointwise's backward differs from im2col's most: im2col copies the input
              (forward), dout and the column gradient (backward), N*P*(2C + F) values /
              COPY; pointwise's three GEMMs an image run at P / (P + P_HALF) of a long
              one's (P = OH*OW columns), with a call an image, and it adds the F*C weight
              gradient up once an image, (N - 1)*F*C / COPY

and takes the cheapest candidate. The constants are round figures for one core of the
machines of benchmarks/README.md ("Performance chapter"), not a fit; the chapter holds the
per-layer timings against which to revise them. ``set_algorithm`` (or the environment
variable MINICNN_CONV_ALGORITHM, e.g. "winograd:4") forces one choice, for tests and
measurements.

``set_algorithm("measure")`` replaces the model by measurement, as cuDNN's benchmark mode
does: the first call of each convolution shape times every candidate (``candidates``) on
this machine, forward and backward twice in training, forward alone three times in eval
mode, and keeps the fastest for that shape (``engine.conv.measured_choice``). It costs
those passes once per shape, and which algorithm wins a near tie may differ between runs,
so results may differ in the last bits.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from minicnn.kernels import dispatch
from minicnn.kernels.winograd import tile_count

PEAK = 40e9         # multiply-adds per second of a large float32 GEMM on one core
K_HALF = 24         # inner dimension at which a GEMM runs at half its peak
F_HALF = 8          # output channels at which a GEMM runs at half its peak
COPY = 1.5e9        # values per second written by a copy or transform kernel
TRANSFORM = 2.0     # a tile transform's cost per value written, in copies
CHANNEL_HALF = 12   # a transform's fixed cost per tile position, in values: short channel
                    # vectors (C = 8 or 16) make the transforms, not the GEMMs, the cost
CALL = 5e-6         # fixed cost of one GEMM call, seconds
SETUP = 4e-4        # Winograd's fixed cost per layer call (buffers, thread counts), seconds
WEIGHT_RATE = 10e9  # multiply-adds per second of the filter transform
DIRECT = 20e9       # multiply-adds per second of the direct 3x3 loop (all taps in one pass)
DIRECT_ROW = 15e9   # ... of the direct loop over a 5-wide kernel (a row of 5 taps a pass)
DIRECT_TAP = 7.5e9  # ... over another kernel size (a pass a tap)
PLANE = 3e-8        # fixed cost of one direct pass over a plane (one image, C and F), s
P_HALF = 1          # pointwise: an image's GEMM runs at P / (P + P_HALF) of a long one's

ALGORITHMS = ("auto", "measure", "im2col", "winograd", "direct", "pointwise")


class Choice(NamedTuple):
    name: str  # "im2col", "winograd", "direct" or "pointwise"
    tile: int  # Winograd's output tile m (2, 3 or 4); 0 for the others


def _parse(spec: str) -> tuple[str, int | None]:
    name, _, tile = spec.partition(":")
    if name not in ALGORITHMS or tile not in ("", "2", "3", "4"):
        raise ValueError(f"unknown convolution algorithm {spec!r}: choose auto, measure, "
                         "im2col, direct, pointwise, winograd or winograd:2, winograd:3, "
                         "winograd:4")
    return name, int(tile) if tile else None


_forced = _parse(os.environ.get("MINICNN_CONV_ALGORITHM", "auto"))


def set_algorithm(name: str = "auto", tile: int | None = None) -> None:
    """Force every convolution's algorithm: "auto" (the cost model), "measure" (the
    fastest candidate, timed on each shape's first call), "im2col", "direct"
    (wherever it applies: stride 1, padding below the kernel size; elsewhere im2col),
    "pointwise" (1x1, stride 1, padding 0; elsewhere im2col) or "winograd" (wherever it
    applies: 3x3, stride 1, padding 0 or 1; elsewhere im2col),
    with m x m output tiles for ``tile`` = m (None: the cheapest tile)."""
    global _forced
    _forced = _parse(name if tile is None else f"{name}:{tile}")


def get_algorithm() -> tuple[str, int | None]:
    return _forced


@contextmanager
def algorithm(name: str = "auto", tile: int | None = None) -> Iterator[None]:
    """``set_algorithm`` inside the block, then back to the previous choice."""
    global _forced
    before = _forced
    set_algorithm(name, tile)
    try:
        yield
    finally:
        _forced = before


def winograd_applies(KH: int, KW: int, stride: int, padding: int) -> bool:
    return KH == KW == 3 and stride == 1 and padding in (0, 1)


def direct_applies(KH: int, KW: int, stride: int, padding: int) -> bool:
    # square, so that dx's padding KH - 1 - padding is one number, and at least 0
    return stride == 1 and KH == KW and padding < KH


def pointwise_applies(KH: int, KW: int, stride: int, padding: int) -> bool:
    return KH == KW == 1 and stride == 1 and padding == 0


def _gemm_seconds(macs: float, k: int, F: int) -> float:
    return macs / (PEAK * k / (k + K_HALF) * F / (F + F_HALF))


def im2col_seconds(N: int, C: int, F: int, KH: int, KW: int, OH: int, OW: int) -> float:
    K, P = C * KH * KW, OH * OW
    return _gemm_seconds(N * P * K * F, K, F) + N * P * K / COPY + CALL


def winograd_seconds(N: int, C: int, F: int, OH: int, OW: int, m: int,
                     training: bool = True) -> float:
    A2, T = (m + 2) ** 2, N * tile_count(OH, OW, m)
    values = T * A2 * (C + F + 2 * CHANNEL_HALF)  # input tiles (C) and output tiles (F)
    weights = A2 * C * F * 9 / WEIGHT_RATE if training else 2 * C * F * 9 / COPY
    return (_gemm_seconds(T * A2 * C * F, C, F) + values * TRANSFORM / COPY
            + A2 * CALL + SETUP + weights)


def direct_seconds(N: int, C: int, F: int, KH: int, KW: int, OH: int, OW: int) -> float:
    Hp, Wp = OH + KH - 1, OW + KW - 1
    rate = DIRECT if KH == KW == 3 else DIRECT_ROW if KW == 5 else DIRECT_TAP
    return N * C * F * (KH * KW * OH * Wp / rate + PLANE) + N * C * Hp * Wp / COPY


def pointwise_seconds(N: int, C: int, F: int, OH: int, OW: int) -> float:
    P = OH * OW
    gemms = 3 * _gemm_seconds(N * P * C * F, C, F)  # forward, dx and dw
    im2col_step = gemms + N * P * (2 * C + F) / COPY + 3 * CALL
    pointwise_step = gemms * (1 + P_HALF / P) + 3 * N * CALL + max(N - 1, 0) * F * C / COPY
    return im2col_seconds(N, C, F, 1, 1, OH, OW) * pointwise_step / im2col_step


def _compiled() -> bool:
    """Whether direct loops can run here: Numba present and its kernel tier selected."""
    return dispatch.numba_available() and dispatch.get_tier() == "numba"


def candidates(C: int, F: int, KH: int, KW: int, stride: int, padding: int) -> list[Choice]:
    """Every algorithm that can run this convolution here (direct loops only where they
    are compiled), Winograd once for each tile."""
    found = [Choice("im2col", 0)]
    if winograd_applies(KH, KW, stride, padding):
        found += [Choice("winograd", m) for m in (2, 3, 4)]
    if _compiled() and direct_applies(KH, KW, stride, padding):
        found.append(Choice("direct", 0))
    if pointwise_applies(KH, KW, stride, padding):
        found.append(Choice("pointwise", 0))
    return found


# measure mode's choices, by shape and dtype (``engine.conv.measured_choice`` fills it)
measured: dict[tuple, Choice] = {}


def choose(N: int, C: int, F: int, KH: int, KW: int, stride: int, padding: int,
           OH: int, OW: int, training: bool = True) -> Choice:
    """The algorithm for a convolution of N images with C input and F output channels,
    a KH x KW kernel and an OH x OW output, in training or (``training=False``) eval
    mode. Direct loops only where they are compiled: without Numba (or with another
    kernel tier) the model leaves them out."""
    return _choose(N, C, F, KH, KW, stride, padding, OH, OW, _forced, _compiled(), training)


def winograd_tile(N: int, C: int, F: int, OH: int, OW: int, training: bool = True) -> int:
    """The cheapest output tile m (2, 3 or 4; the smaller on a tie) of a Winograd
    convolution with an OH x OW output, or the forced one."""
    return _winograd_tile(N, C, F, OH, OW, _forced[1], training)


# Remembered per shape (and forced choice): the model's arithmetic is not free next to a
# small layer's forward at batch 1. Call ``forget_choices()`` after changing its constants.
@functools.lru_cache(maxsize=4096)
def _choose(N, C, F, KH, KW, stride, padding, OH, OW, forced, compiled=True,
            training=True) -> Choice:
    name = "auto" if forced[0] == "measure" else forced[0]  # the model's view of a layer
    costs = {}
    if name in ("auto", "im2col"):
        costs[Choice("im2col", 0)] = im2col_seconds(N, C, F, KH, KW, OH, OW)
    if name in ("auto", "winograd") and winograd_applies(KH, KW, stride, padding):
        m = _winograd_tile(N, C, F, OH, OW, forced[1], training)
        costs[Choice("winograd", m)] = winograd_seconds(N, C, F, OH, OW, m, training)
    if (name == "direct" or name == "auto" and compiled) and \
            direct_applies(KH, KW, stride, padding):
        costs[Choice("direct", 0)] = direct_seconds(N, C, F, KH, KW, OH, OW)
    if name in ("auto", "pointwise") and pointwise_applies(KH, KW, stride, padding):
        costs[Choice("pointwise", 0)] = pointwise_seconds(N, C, F, OH, OW)
    if not costs:  # the forced algorithm does not apply here
        return Choice("im2col", 0)
    return min(costs, key=costs.get)  # on a tie, the first: im2col


@functools.lru_cache(maxsize=4096)
def _winograd_tile(N, C, F, OH, OW, tile, training=True) -> int:
    if tile:
        return tile
    return min((2, 3, 4), key=lambda m: (winograd_seconds(N, C, F, OH, OW, m, training), m))


def forget_choices() -> None:
    """Drop the remembered choices (after changing PEAK, COPY, ... at run time), the
    measured ones too."""
    _choose.cache_clear()
    _winograd_tile.cache_clear()
    measured.clear()
