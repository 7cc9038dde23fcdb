"""Batch-parallel mode (``minicnn.engine.threads``): the work is split between threads, and
the results must not depend on how it was split."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from winograd_helpers import winograd_everywhere

from minicnn import engine as F
from minicnn.engine import conv as conv_module
from minicnn.engine import threads


def test_map_concurrently_runs_each_item_on_its_own_single_threaded_thread():
    before = threads.get_num_threads()
    barrier = threading.Barrier(3, timeout=10)  # fails unless all three items run at once

    def work(item):
        barrier.wait()
        return item, threading.get_ident(), threads.get_num_threads()

    results = threads.map_concurrently(work, ["a", "b", "c"])
    assert [r[0] for r in results] == ["a", "b", "c"]  # in the order of the items
    idents = [r[1] for r in results]
    assert len(set(idents)) == 3 and idents[0] == threading.get_ident()  # the first: here
    for _, _, counts in results:
        assert counts["numba"] in (None, 1)
        assert counts["blas"] in (None, 1)
    assert threads.get_num_threads() == before  # Numba and BLAS have their threads back
    parallel = before["numba"] > 1 and threads._numba_threadsafe()
    assert threads.parallel_parts(64) == (min(64, before["numba"]) if parallel else 1)


@pytest.mark.parametrize("failing", [0, 1])
def test_map_concurrently_raises_an_error_after_all_items_are_done(failing):
    before = threads.get_num_threads()
    finished = []

    def work(item):
        if item == failing:
            raise ValueError(f"item {item} failed")
        threading.Event().wait(0.2)
        finished.append(item)
        return item

    with pytest.raises(ValueError, match=f"item {failing} failed"):
        threads.map_concurrently(work, [0, 1, 2])
    assert sorted(finished) == [i for i in (0, 1, 2) if i != failing]
    assert threads.get_num_threads() == before


def test_map_concurrently_inside_a_worker_runs_in_order_there():
    def inner(item):
        return threading.get_ident()

    def outer(item):
        assert threads.parallel_parts(64) == 1
        return set(threads.map_concurrently(inner, [1, 2, 3])), threading.get_ident()

    for inner_idents, outer_ident in threads.map_concurrently(outer, [0, 1]):
        assert inner_idents == {outer_ident}
    assert threads.map_concurrently(lambda item: item * 2, [5]) == [10]


def test_parallel_parts_follows_the_thread_count():
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        assert threads.parallel_parts(64) == 1
        counts = threads.set_num_threads(2)
        if counts["numba"] == 2:
            assert threads.parallel_parts(64) == 2
            assert threads.parallel_parts(1) == 1
    finally:
        threads.set_num_threads(before["numba"] or before["blas"] or 1)


@given(st.integers(0, 300), st.integers(1, 3000), st.integers(1, 8), st.integers(1, 4608))
def test_plan_chunks_covers_the_batch_once_in_balanced_parts(N, P, parts, column):
    parts = max(1, min(parts, N))
    plan = conv_module.plan_chunks(N, P, parts, column)
    assert len(plan) == parts
    flat = [c for part in plan for c in part]
    assert [i for s, e in flat for i in range(s, e)] == list(range(N))
    sizes = [sum(e - s for s, e in part) for part in plan]
    assert max(sizes) - min(sizes) <= 1
    for part, size in zip(plan, sizes):
        n = conv_module.chunk_size(size, P, column) if size else 0
        assert all(0 < e - s <= n for s, e in part)
        assert len(part) == (-(-size // n) if size else 0)  # as few chunks as will do
        if part:  # of near-equal size
            assert max(e - s for s, e in part) - min(e - s for s, e in part) <= 1


def test_short_columns_get_proportionally_larger_chunks():
    target, short = conv_module.TARGET_COLUMNS, conv_module.SHORT_COLUMN
    # 64 images of 16x16 outputs: 1024 columns are 4 images; a stride-2 first layer's
    # 27-value columns get 288 / 27 times as many, an im2col layer's 576-value ones do not
    assert conv_module.chunk_size(64, 256, 576) == target // 256
    assert conv_module.chunk_size(64, 256, short) == target // 256
    assert conv_module.chunk_size(64, 256, 27) == -(-target * short // 27 // 256)
    assert conv_module.chunk_size(64, 256, 144) == 2 * target // 256


@st.composite
def conv_cases(draw):
    N, C, F_ = draw(st.integers(1, 7)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H, W = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    k = draw(st.sampled_from([1, 3]))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    return (N, C, H, W), (F_, C, k, k), stride, padding, draw(st.integers(0, 2**31 - 1))


@given(conv_cases(), st.sampled_from([1, 30, 4096]), st.sampled_from([0, 2**30]),
       st.booleans())
def test_conv_results_do_not_depend_on_the_split(case, target_columns, cache_budget,
                                                 winograd):
    """1, 2 or 3 threads, chunks of one image or of several, columns kept or recomputed,
    im2col or Winograd: the same output and gradients (up to the order of the dw and db
    sums)."""
    x_shape, w_shape, stride, padding, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    old = (conv_module.TARGET_COLUMNS, conv_module.CACHE_COLUMNS_BYTES, threads.parallel_parts,
           conv_module.MIN_SPLIT_IMAGES)
    conv_module.TARGET_COLUMNS, conv_module.CACHE_COLUMNS_BYTES = target_columns, cache_budget
    conv_module.MIN_SPLIT_IMAGES = 1  # split even two images, to test the split
    try:
        results = []
        for parts in (1, 2, 3):
            threads.parallel_parts = lambda n, parts=parts: max(1, min(n, parts))
            with winograd_everywhere(winograd):
                out, cache = F.conv2d_forward(x, w, b, stride, padding)
                assert len(cache.plan) == min(parts, x_shape[0])
                dout = np.random.default_rng(seed + 1).standard_normal(out.shape)
                results.append((out, *F.conv2d_backward(dout, cache)))
        for other in results[1:]:
            for got, want in zip(other, results[0]):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    finally:
        (conv_module.TARGET_COLUMNS, conv_module.CACHE_COLUMNS_BYTES,
         threads.parallel_parts, conv_module.MIN_SPLIT_IMAGES) = old


def test_two_or_three_images_run_as_one_part_and_four_are_split():
    """A face and its mirror image (the webcam's every frame) run as one part, with BLAS
    on every thread: faster than an image a thread (engine/conv.py, MIN_SPLIT_IMAGES)."""
    old = threads.parallel_parts
    threads.parallel_parts = lambda n: max(1, min(n, 2))
    try:
        w = np.ones((4, 3, 3, 3))
        for N, parts in ((1, 1), (2, 1), (3, 1), (4, 2), (64, 2)):
            _, cache = F.conv2d_forward(np.ones((N, 3, 8, 8)), w, None, 1, 1)
            assert len(cache.plan) == parts, N
    finally:
        threads.parallel_parts = old


@pytest.mark.parametrize("first_call", ["conv", "dense"])
def test_the_first_engine_product_warms_blas_on_every_thread_at_once(monkeypatch, first_call):
    """A cold OpenBLAS buffer runs small products several times more slowly, so the
    engine's first convolution or dense layer runs one product on each thread that
    batch-parallel work uses, all at the same moment (so that each has a buffer of its
    own), on one-thread BLAS; later calls warm nothing."""
    x, w = np.ones((4, 2, 5, 5)), np.ones((3, 2, 3, 3))
    monkeypatch.setattr(threads, "_warm", {"threads": 0, "checked": False})
    parts = max(1, threads.parallel_parts(1 << 30))
    barrier = threading.Barrier(parts, timeout=10)
    seen = []

    def product(item):
        barrier.wait()  # fails unless every thread's product runs at once
        seen.append((threading.get_ident(), threads.get_num_threads()["blas"]))

    monkeypatch.setattr(threads, "_warm_product", product)
    for _ in range(2):  # the second call warms nothing
        if first_call == "conv":
            F.conv2d_forward(x, w, None, 1, 1)
        else:
            F.dense_forward(x.reshape(4, -1), np.ones((3, 50)), np.zeros(3))
    assert len(seen) == parts and len({ident for ident, _ in seen}) == parts
    assert all(blas in (None, 1) for _, blas in seen)
    assert threads._warm["threads"] == parts


def test_set_num_threads_has_warm_blas_warm_the_threads_it_adds(monkeypatch):
    before = threads.get_num_threads()
    if threads.set_num_threads(2)["numba"] != 2 or threads.parallel_parts(64) != 2:
        threads.set_num_threads(before["numba"] or before["blas"] or 1)
        pytest.skip("two batch-parallel threads cannot run here")
    seen = []
    monkeypatch.setattr(threads, "_warm_product", seen.append)
    try:
        monkeypatch.setattr(threads, "_warm", {"threads": 1, "checked": True})
        threads.warm_blas()
        assert seen == []  # checked: a flag test, nothing more
        threads.set_num_threads(2)
        threads.warm_blas()
        assert sorted(seen) == [0, 1] and threads._warm == {"threads": 2, "checked": True}
    finally:
        threads.set_num_threads(before["numba"] or before["blas"] or 1)


def test_warm_blas_in_a_worker_leaves_the_warming_to_its_caller(monkeypatch):
    monkeypatch.setattr(threads, "_warm", {"threads": 0, "checked": False})
    seen = []
    monkeypatch.setattr(threads, "_warm_product", seen.append)
    threads.map_concurrently(lambda _: threads.warm_blas(), range(2))
    assert seen == [] and threads._warm["threads"] == 0


def test_blas_threads_sets_and_restores_the_count():
    before = threads.get_num_threads()["blas"]
    if before is None:
        pytest.skip("OpenBLAS's thread count cannot be reached here")
    with pytest.raises(RuntimeError):
        with threads.blas_threads(1):
            assert threads.get_num_threads()["blas"] == 1
            raise RuntimeError("the count comes back even so")
    assert threads.get_num_threads()["blas"] == before


def test_minicnn_threads_reexports_the_engine_counts():
    """Applications set the counts through ``minicnn.threads`` (emotion.train does)."""
    from minicnn import threads as public

    assert public.set_num_threads is threads.set_num_threads
    assert public.get_num_threads() == threads.get_num_threads()


def _twin_kernels() -> list[tuple[object, str]]:
    """(module, name) of every kernel declared with ``@parallel_njit``, read from the
    kernel files' source."""
    import importlib
    import pathlib
    import re

    folder = pathlib.Path(F.__file__).parent.parent / "kernels"
    found = []
    for path in sorted(folder.glob("*.py")):
        module = importlib.import_module(f"minicnn.kernels.{path.stem}")
        for name in re.findall(r"^@parallel_njit\(.*\)\ndef (\w+)", path.read_text(), re.M):
            found.append((module, name))
    return found


@contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    """Numba (and BLAS) on ``n`` threads inside the block; each gets its own count back."""
    before = threads.get_num_threads()
    try:
        if threads.set_num_threads(n)["numba"] != n:
            pytest.skip(f"needs Numba with {n} threads")
        yield
    finally:
        threads.set_num_threads(before["blas"] or before["numba"] or 1)
        if before["numba"]:
            import numba

            numba.set_num_threads(before["numba"])


def test_every_parallel_kernel_has_a_serial_twin_of_the_same_source():
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT: the kernels are plain functions")
    kernels = _twin_kernels()
    for module, name in kernels:
        kernel = getattr(module, name)
        assert isinstance(kernel, numba.core.registry.CPUDispatcher), name
        assert kernel.targetoptions.get("parallel"), name
        assert not kernel.serial.targetoptions.get("parallel"), name
        assert kernel.serial.py_func.__code__ is kernel.py_func.__code__, name
    assert len(kernels) >= 14, kernels  # the kernels with prange, in six files


def test_dispatch_runs_the_serial_twin_for_small_inputs_and_in_workers():
    from minicnn.kernels import dispatch

    calls = []

    def kernel(*args):
        calls.append("parallel")

    kernel.serial = lambda *args: calls.append("serial")

    def plain(*args):  # a kernel without a twin (plain @njit) is called as it is
        calls.append("plain")

    with _numba_threads(2):
        dispatch.run(kernel, dispatch.SERIAL_BYTES - 1)
        dispatch.run(kernel, dispatch.SERIAL_BYTES)
        threads.map_concurrently(lambda _: dispatch.run(kernel, dispatch.SERIAL_BYTES), [0, 1])
        dispatch.run(plain, 0)
    assert calls == ["serial", "parallel", "serial", "serial", "plain"]


class _Spy:
    """Stands in for a kernel in its module: logs which variant ``dispatch.run`` called."""

    def __init__(self, kernel, name: str, log: list):
        self.kernel, self.name, self.log = kernel, name, log

    def __call__(self, *args):
        self.log.append((self.name, "parallel"))
        return self.kernel(*args)

    def serial(self, *args):
        self.log.append((self.name, "serial"))
        return self.kernel.serial(*args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv", ["im2col", "winograd"])
def test_a_training_step_is_the_same_with_parallel_kernels_and_with_their_serial_twins(
        monkeypatch, dtype, conv):
    """Every kernel of a step (im2col and col2im or Winograd's weight transforms, batch
    norm with ReLU, max-pool, ReLU, Adam) once as the parallel kernel on 2 threads, once as
    its serial twin: the same outputs, gradients and updated weights. Three images: too
    few to split between threads, so the convolutions' kernels run on the calling thread
    with Numba's two. A spy on each kernel checks which variant ran."""
    import minicnn
    from minicnn.engine.algorithm import algorithm
    from minicnn.engine.conv import MIN_SPLIT_IMAGES
    from minicnn.kernels import dispatch
    from minicnn.layers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from minicnn.optim import Adam

    assert 3 < MIN_SPLIT_IMAGES  # else the convolutions' kernels run in workers, serially
    log: list[tuple[str, str]] = []
    for module, name in _twin_kernels():
        monkeypatch.setattr(module, name, _Spy(getattr(module, name), name, log))

    def step(serial_bytes):
        monkeypatch.setattr(dispatch, "SERIAL_BYTES", serial_bytes)
        log.clear()
        model = minicnn.Sequential([
            Conv2D(3, 8, 3, padding=1), BatchNorm2D(8, activation="relu"), MaxPool2D(2),
            Conv2D(8, 8, 3, padding=1, stride=2), ReLU(), Flatten(), Dense(8 * 4 * 4, 5),
        ], rng=0)
        model.astype(dtype)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
        loss = minicnn.SoftmaxCrossEntropy()
        opt = Adam(model.parameters(), lr=1e-2)
        out = model.forward(x)
        value = loss(out, rng.integers(0, 5, 3))
        model.backward(loss.backward())
        grads = {k: v.copy() for k, v in model.gradients().items()}
        opt.step(model.gradients())
        params = {k: v.copy() for k, v in model.parameters().items()}
        return out, value, grads, params, set(log)

    with _numba_threads(2), algorithm(conv):
        *parallel, ran_parallel = step(0)  # every kernel on Numba's threads
        *serial, ran_serial = step(2**62)  # every kernel as its serial twin
    needed = {"channel_moments_numba", "channel_normalize_numba", "channel_sums_numba",
              "maxpool_forward_numba", "maxpool_backward_numba", "relu_forward_numba",
              "relu_backward_numba", "adam_update_numba", "im2col_numba", "col2im_numba"}
    if conv == "winograd":
        needed |= {"winograd_weights_numba", "winograd_weight_grad_numba"}
    names = {name for name, _ in ran_parallel}
    assert needed <= names, needed - names
    assert ran_parallel == {(name, "parallel") for name in names}
    assert ran_serial == {(name, "serial") for name in names}
    tol = 1e-5 if dtype == np.float32 else 1e-12
    out_p, loss_p, grads_p, params_p = parallel
    out_s, loss_s, grads_s, params_s = serial
    np.testing.assert_allclose(out_p, out_s, rtol=tol, atol=tol)
    assert loss_p == pytest.approx(loss_s, rel=tol)
    for name, (a, b) in {"grad": (grads_p, grads_s), "weight": (params_p, params_s)}.items():
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=tol, atol=tol,
                                       err_msg=f"{name} {key}")
