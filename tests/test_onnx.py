"""ONNX export (minicnn.interop.onnx, python -m emotion.export) checked with real runtimes:
OpenCV's DNN module always, onnxruntime when installed. Also the opencv-dnn backend of
the recognizer and of the predict and webcam CLIs, and the benchmark case.

Everything here skips cleanly without the onnx package, except the check that importing
minicnn and emotion imports neither onnx nor torch. The real-face test (200 FER2013 test
faces through the shipped model) is marked slow and skips without the data."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_helpers import FER_TEST, FakeDetector, save_small_model, synthetic_canvas
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_stacks import layer_stacks, randomize_batchnorm

from emotion.labels import CLASSES
from emotion.models import build
from emotion.preprocess import to_model_input
from minicnn.layers import LAYER_TYPES, BatchNorm2D, Dropout, ReLU

TOL = 1e-4  # probabilities, as the issue asks; the measured differences are about 1e-6


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


def run_opencv(data: bytes, x: np.ndarray) -> np.ndarray:
    net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
    net.setInput(np.ascontiguousarray(x, np.float32))
    return net.forward()


def runtimes(data: bytes) -> dict:
    """name -> function(x) -> the graph's output, for each runtime installed."""
    found = {"opencv-dnn": lambda x: run_opencv(data, x)}
    try:
        import onnxruntime
    except ImportError:
        return found
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    found["onnxruntime"] = lambda x: session.run(None, {"input": x.astype(np.float32)})[0]
    return found


def assert_runtimes_agree(data: bytes, x: np.ndarray, reference: np.ndarray, rtol: float):
    scale = max(float(np.abs(reference).max()), 1.0)
    for name, run in runtimes(data).items():
        out = run(x)
        assert out.shape == reference.shape, name
        diff = float(np.abs(out - reference).max())
        assert diff <= rtol * scale, f"{name}: max |diff| {diff:.2e}"


# ---------------------------------------------------------------------------- exporter
@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("softmax", [True, False])
def test_small_model_runs_the_same_in_opencv_and_onnxruntime(onnx, fold, softmax):
    from minicnn.interop.onnx import to_onnx

    model = randomize_batchnorm(build("small", rng=0), np.random.default_rng(0)).train()
    proto = to_onnx(model, (1, 48, 48), fold=fold, softmax=softmax)
    assert model.training  # the model is left as it was
    x = np.random.default_rng(1).standard_normal((5, 1, 48, 48)).astype(np.float32)
    model.eval()
    reference = model.predict_proba(x) if softmax else model.forward(x)
    assert [o.name for o in proto.graph.output] == ["probabilities" if softmax else "logits"]
    assert_runtimes_agree(proto.SerializeToString(), x, reference, 1e-5)


@settings(max_examples=25)
@given(layer_stacks(dtype=np.float32), st.booleans())
def test_drawn_stacks_export_to_the_same_function(onnx, drawn, fold):
    """Every layer type in arbitrary valid stacks: strides, paddings ("same" too), biases
    or none, fused and separate ReLUs, batch norm after a conv (folded or not), flatten or
    global pooling heads, a batch of 3 (the batch axis is free)."""
    from minicnn.interop.onnx import to_onnx

    model, shape = drawn
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    data = to_onnx(model, shape, fold=fold).SerializeToString()
    assert_runtimes_agree(data, x, model.forward(x), 1e-5)


def test_every_minicnn_layer_type_has_an_onnx_translation(onnx):
    from minicnn.interop.onnx import EMITTERS

    own = {name for name, cls in LAYER_TYPES.items()
           if cls.__module__.startswith("minicnn.layers.")}
    assert len(own) >= 8 and own <= set(EMITTERS), own - set(EMITTERS)


def test_eval_mode_graph_unfuses_relus_and_drops_dropout(onnx):
    """The default model's batch norms carry fused ReLUs: each becomes a Relu node, after a
    BatchNormalization (fold=False) or after the Conv it was folded into (fold=True)."""
    from minicnn.interop.onnx import to_onnx

    model = build("default", rng=0)
    fused = sum(isinstance(la, BatchNorm2D) and la.activation == "relu" for la in model.layers)
    assert fused == 7 and any(isinstance(la, Dropout) for la in model.layers)
    for fold in (False, True):
        ops = [n.op_type for n in to_onnx(model, (1, 48, 48), fold=fold).graph.node]
        assert ops.count("Relu") == fused and "Dropout" not in ops
        assert ops.count("BatchNormalization") == (0 if fold else fused)
        assert ops.count("Conv") == 7 and ops[-1] == "Gemm"


def test_float64_models_export_as_float32(onnx):
    from minicnn.interop.onnx import to_onnx

    model = build("small", rng=2).astype(np.float64).eval()
    proto = to_onnx(model, (1, 48, 48))
    assert {t.data_type for t in proto.graph.initializer} == {onnx.TensorProto.FLOAT}
    x = np.random.default_rng(3).standard_normal((2, 1, 48, 48))
    assert_runtimes_agree(proto.SerializeToString(), x, model.forward(x), 1e-5)


def test_layers_without_onnx_equivalent_and_bad_shapes_are_named(onnx, monkeypatch):
    from minicnn.interop import onnx as exporter

    model = build("seed", rng=0)
    with pytest.raises(ValueError, match=r"does not accept input of shape \(1, 40, 40\)"):
        exporter.to_onnx(model, (1, 40, 40))  # the Flatten + Dense head is sized for 48
    monkeypatch.delitem(exporter.EMITTERS, "ReLU")
    with pytest.raises(ValueError, match=r"layer 2 \(ReLU\) has no ONNX equivalent"):
        exporter.to_onnx(model, (1, 48, 48))
    assert isinstance(model.layers[2], ReLU)


def test_missing_onnx_package_gives_an_install_hint(monkeypatch):
    from minicnn.interop.onnx import to_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[onnx\]"'):
        to_onnx(build("small", rng=0), (1, 48, 48))


def test_save_onnx_is_atomic_and_replaces_an_older_file(onnx, tmp_path):
    from minicnn.interop.onnx import save_onnx, to_onnx

    out = tmp_path / "sub" / "m.onnx"
    out.parent.mkdir()
    out.write_bytes(b"old")
    data = to_onnx(build("small", rng=0), (1, 48, 48)).SerializeToString()
    assert save_onnx(data, out) == out and out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["m.onnx"]  # no temp file left


def test_importing_minicnn_and_emotion_imports_neither_onnx_nor_torch():
    code = ("import sys, minicnn, minicnn.interop.onnx, minicnn.interop.torch, "
            "emotion.predict, emotion.webcam, emotion.export, emotion.backends; "
            "bad = {'torch', 'onnx', 'onnxruntime'} & set(sys.modules); "
            "sys.exit(f'imported {bad}' if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


# ----------------------------------------------------------------- python -m emotion.export
def test_export_cli_writes_a_checked_file_with_metadata(onnx, weights, tmp_path, capsys):
    from emotion import export

    out = tmp_path / "out" / "emotion.onnx"
    assert export.main(["--onnx", str(out), "--weights", str(weights)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "checked: opencv-dnn probabilities within" in printed
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == list(CLASSES) and meta["input_size"] == "48"
    assert meta["source_weights"] == "w.npz"
    import minicnn

    model = minicnn.load(weights).eval()
    canvas, ((x0, y0, w, h),) = synthetic_canvas(1)
    face = cv2.resize(canvas[y0:y0 + h, x0:x0 + w, 0], (48, 48), interpolation=cv2.INTER_AREA)
    x = to_model_input(face[None])
    expected = model.predict_proba(x)
    assert np.ptp(expected) > 1e-3  # a face, not a flat patch that any graph maps to 1/7
    np.testing.assert_allclose(run_opencv(out.read_bytes(), x), expected, atol=TOL)


def test_export_cli_refuses_to_overwrite_its_input(onnx, weights, tmp_path, capsys):
    from emotion import export

    before = Path(weights).read_bytes()
    link = tmp_path / "same.onnx"
    link.hardlink_to(weights)  # another name for the same file counts too
    for target in (weights, link):
        assert export.main(["--onnx", str(target), "--weights", str(weights)]) == 2
        err = capsys.readouterr().err
        assert "is the weights file being exported" in err and "Traceback" not in err
    assert Path(weights).read_bytes() == before


@pytest.mark.parametrize("case, message", [
    ("folder", "is a folder"), ("missing", "no such weights file"),
    ("not-a-model", "not a readable .npz file"), ("no-onnx", 'pip install -e ".[onnx]"'),
    ("under-a-file", "is a file, not a folder"),
])
def test_export_cli_user_errors_exit_2_with_one_line(onnx, weights, tmp_path, capsys,
                                                      monkeypatch, case, message):
    from emotion import export

    out, source = tmp_path / "m.onnx", weights
    if case == "folder":
        out = tmp_path
    elif case == "missing":
        source = tmp_path / "nope.npz"
    elif case == "not-a-model":
        source = tmp_path / "text.npz"
        source.write_text("hello")
    elif case == "under-a-file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "m.onnx"
    else:
        monkeypatch.setitem(sys.modules, "onnx", None)
    assert export.main(["--onnx", str(out), "--weights", str(source)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------- opencv-dnn backend
def test_backend_gives_the_recognizers_probabilities(onnx, weights):
    from emotion.backends import OpenCVDNNModel, use_backend
    from emotion.recognizer import EmotionRecognizer

    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    rec = EmotionRecognizer(weights)
    ours = rec.predict_faces(faces)
    assert use_backend(rec, "opencv-dnn") is rec and isinstance(rec.model, OpenCVDNNModel)
    theirs = rec.predict_faces(faces)
    np.testing.assert_allclose(theirs, ours, atol=TOL)
    assert rec.predict_faces(faces[:0]).shape == (0, len(CLASSES))
    # batches smaller than the input give the same answer
    x = to_model_input(faces)
    np.testing.assert_allclose(rec.model.predict_proba(x, batch_size=2),
                               rec.model.predict_proba(x), atol=1e-7)
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        use_backend(rec, "tpu")


def test_backend_without_onnx_is_a_clear_value_error(weights, monkeypatch):
    from emotion.backends import use_backend
    from emotion.recognizer import EmotionRecognizer

    monkeypatch.setitem(sys.modules, "onnx", None)
    rec = EmotionRecognizer(weights)
    with pytest.raises(ValueError, match=r'backend opencv-dnn: .*pip install -e "\.\[onnx\]"'):
        use_backend(rec, "opencv-dnn")


def test_predict_cli_backends_agree(onnx, weights, tmp_path, monkeypatch, capsys):
    import emotion.predict as predict

    image, boxes = synthetic_canvas(2)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: FakeDetector(boxes))
    results = {}
    for backend in ("minicnn", "opencv-dnn"):
        code = predict.main([str(tmp_path / "a.png"), "--json", "--weights", str(weights),
                             "--backend", backend])
        out, err = capsys.readouterr()
        assert code == 0, err
        results[backend] = [[f["probabilities"][c] for c in CLASSES]
                            for f in json.loads(out)[0]["faces"]]
    assert len(results["minicnn"]) == 2
    np.testing.assert_allclose(results["opencv-dnn"], results["minicnn"], atol=TOL)


def test_webcam_cli_runs_on_the_opencv_backend(onnx, weights, tmp_path, monkeypatch,
                                              capsys):
    import emotion.webcam as webcam

    image, boxes = synthetic_canvas(1)
    video = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (image.shape[1], image.shape[0]))
    for _ in range(3):
        writer.write(image)
    writer.release()
    monkeypatch.setattr(webcam, "make_video_detector", lambda *a, **k: FakeDetector(boxes))
    rows = {}
    for backend in ("minicnn", "opencv-dnn"):
        table = tmp_path / f"{backend}.csv"
        code = webcam.main(["--source", str(video), "--weights", str(weights), "--no-display",
                            "--csv", str(table), "--backend", backend, "--tta", "none"])
        assert code == 0, capsys.readouterr().err
        with open(table, newline="") as f:  # the probability columns, found by name
            records = list(csv.DictReader(f))
        rows[backend] = np.array([[float(r[c]) for c in CLASSES] for r in records])
    assert rows["minicnn"].shape == (3, len(CLASSES))
    np.testing.assert_allclose(rows["opencv-dnn"], rows["minicnn"], atol=TOL)


def test_benchmark_case_measures_both_runtimes(onnx):
    from benchmarks.bench_onnx import run
    from benchmarks.common import Config

    threads = cv2.getNumThreads()
    try:
        rows = run(Config.for_mode("smoke", 1))
    finally:
        cv2.setNumThreads(threads)
    assert {r.case.split(" vs ")[1] for r in rows} >= {"OpenCV DNN"}
    for r in rows:
        assert all(v is not None and math.isfinite(v) and v > 0 for v in (r.ours, r.theirs))


# ------------------------------------------------------------------------- real faces
@pytest.mark.slow
def test_shipped_model_on_200_fer_faces_matches_in_opencv_and_onnxruntime(onnx, tmp_path,
                                                                          capsys):
    """The issue's acceptance check: the exported shipped model gives minicnn's
    probabilities within 1e-4 on 200 FER2013 test faces, in every runtime installed."""
    from emotion import export
    from emotion.recognizer import DEFAULT_WEIGHTS

    files = sorted(FER_TEST.glob("*/*.jpg"))
    if len(files) < 200 or not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"needs FER2013 test faces in {FER_TEST} and the shipped weights")
    pick = [files[i] for i in np.linspace(0, len(files) - 1, 200).astype(int)]
    faces = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pick])
    assert faces.shape == (200, 48, 48)
    out = tmp_path / "emotion.onnx"
    assert export.main(["--onnx", str(out)]) == 0
    capsys.readouterr()
    x = to_model_input(faces)
    reference = export.load_weights(None).eval().predict_proba(x)
    for name, run in runtimes(out.read_bytes()).items():
        probs = run(x)
        diff = float(np.abs(probs - reference).max())
        with capsys.disabled():
            print(f"\n{name}: max |p - p_minicnn| over 200 FER2013 test faces = {diff:.2e}")
        assert diff <= TOL, name
        assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.99, name
