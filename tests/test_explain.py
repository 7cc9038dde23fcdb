"""Recording activations and gradients, Grad-CAM and saliency, and the explain CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from face_helpers import FakeDetector, save_small_model, synthetic_canvas

import emotion.explain as explain_cli
import minicnn
from emotion.explain import explain, last_conv_stage
from emotion.faces import DetectorError
from emotion.models import build
from minicnn.layers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU
from minicnn.optim import Adam


def tiny(rng=0):
    return minicnn.Sequential([
        Conv2D(1, 4, 3, padding="same"), BatchNorm2D(4), ReLU(), MaxPool2D(2),
        Conv2D(4, 6, 3, padding="same"), ReLU(), GlobalAvgPool2D(), Dense(6, 3)], rng=rng)


# ------------------------------------------------------------------------------ record
def test_record_keeps_each_layer_output_and_the_gradient_into_it():
    model = tiny().astype(np.float64).eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8))
    plain = model.forward(x)
    dout = np.random.default_rng(2).standard_normal(plain.shape)
    dx_plain = model.backward(dout)
    with model.record() as rec:
        logits = model.forward(x)
        dx = model.backward(dout)
    np.testing.assert_array_equal(logits, plain)  # recording does not change the maths
    np.testing.assert_array_equal(dx, dx_plain)
    assert len(rec.outputs) == len(model.layers)
    np.testing.assert_array_equal(rec.inputs, x)
    np.testing.assert_array_equal(rec.outputs[-1], logits)
    np.testing.assert_array_equal(rec.output_grads[len(model.layers) - 1], dout)
    np.testing.assert_array_equal(rec.input_grad, dx)
    # outputs[i] is layer i+1's input, and output_grads[i] is what layer i+1 sent back
    for i in range(len(model.layers) - 1):
        np.testing.assert_allclose(model.layers[i + 1].forward(rec.outputs[i]),
                                   rec.outputs[i + 1])
    # a recorded gradient is the real dL/d(activation): check one entry numerically,
    # L = sum(dout * logits) as a function of layer 4's output (a feature map)
    k, h = 4, 1e-6
    def loss_from(act):
        y = act
        for layer in model.layers[k + 1:]:
            y = layer.forward(y)
        return float(np.sum(dout * y))
    act = rec.outputs[k].copy()
    idx = (1, 2, 1, 3)
    act[idx] += h
    up = loss_from(act)
    act[idx] -= 2 * h
    down = loss_from(act)
    assert rec.output_grads[k][idx] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


def test_record_stops_after_the_block_and_copies_arrays():
    model = tiny().eval()
    x = np.ones((1, 1, 8, 8), np.float32)
    with model.record() as rec:
        model.forward(x)
    kept = rec.outputs[0].copy()
    model.forward(2 * x)  # outside the block: nothing recorded, nothing overwritten
    np.testing.assert_array_equal(rec.outputs[0], kept)
    assert model._recording is None


# ----------------------------------------------------------------------------- explain
def test_last_conv_stage_follows_bn_and_relu():
    assert last_conv_stage(tiny()) == 5
    default = build("default")
    i = last_conv_stage(default)
    # the default model's last block ends in a batch norm with its ReLU fused
    assert isinstance(default.layers[i], BatchNorm2D) and default.layers[i].activation == "relu"
    assert isinstance(default.layers[i + 1], MaxPool2D)
    with pytest.raises(ValueError, match="Conv2D"):
        last_conv_stage(minicnn.Sequential([Dense(4, 2)]))


def test_maps_have_the_input_size_and_are_finite_and_scaled():
    model = build("small", rng=0)
    model.train()
    x = np.random.default_rng(0).standard_normal((3, 1, 48, 48)).astype(np.float32)
    exps = explain(model, x)
    assert model.training  # mode restored
    expected = model.predict_proba(x)
    for e, p in zip(exps, expected):
        for m in (e.cam, e.saliency):
            assert m.shape == (48, 48) and np.isfinite(m).all()
            assert m.min() >= 0 and m.max() <= 1
        assert e.saliency.max() == pytest.approx(1.0)
        assert e.class_index == int(np.argmax(p))
        np.testing.assert_allclose(e.probabilities, p, rtol=1e-5, atol=1e-6)
    chosen = explain(model, x, class_index=[0, 1, 2])
    assert [e.class_index for e in chosen] == [0, 1, 2]
    with pytest.raises(ValueError, match="one class index per input"):
        explain(model, x, class_index=[0])


def test_maps_concentrate_on_the_quadrant_that_decides_the_class():
    """Class 1 has a bright blob in the top-left quadrant, class 0 does not; everything else is
    noise. After a short training run, the maps' mass should sit in that quadrant. (Saliency
    is spread wider than Grad-CAM: the noise elsewhere still moves the score a little.)"""
    rng = np.random.default_rng(0)
    n, size = 256, 16
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:size // 2, :size // 2]
    blob = 3.0 * np.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 6.0).astype(np.float32)
    x[y == 1, 0, :size // 2, :size // 2] += blob
    model = minicnn.Sequential([
        Conv2D(1, 8, 3, padding="same"), ReLU(), Conv2D(8, 8, 3, padding="same"), ReLU(),
        MaxPool2D(2), GlobalAvgPool2D(), Dense(8, 2)], rng=0)
    loss_fn, opt = minicnn.SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        batch = rng.choice(n, 64, replace=False)
        loss_fn(model.forward(x[batch]), y[batch])
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step(model.gradients())
    positives = x[y == 1][:32]
    assert (model.predict_proba(positives).argmax(1) == 1).mean() > 0.9  # it learned the task
    exps = explain(model, positives, class_index=[1] * len(positives))
    half = size // 2
    for name, least in (("saliency", 0.35), ("cam", 0.6)):
        maps = np.stack([getattr(e, name) for e in exps])
        quadrants = [maps[:, r:r + half, c:c + half].sum() / maps.sum()
                     for r in (0, half) for c in (0, half)]
        # uniform maps would put 25% in each; the deciding quadrant must stand out
        assert quadrants[0] > least, f"{name}: quadrant shares {np.round(quadrants, 3)}"
        assert quadrants[0] > 1.5 * max(quadrants[1:]), f"{name}: {np.round(quadrants, 3)}"


# --------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


def test_cli_writes_one_png_per_face(tmp_path, weights, monkeypatch, capsys):
    image, boxes = synthetic_canvas(2, canvas=(240, 480))
    cv2.imwrite(str(tmp_path / "group.jpg"), image)
    monkeypatch.setattr(explain_cli, "make_detector", lambda *a, **k: FakeDetector(boxes))
    out = tmp_path / "out"
    code = explain_cli.main([str(tmp_path / "group.jpg"), "--weights", str(weights),
                             "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["group_face0.png", "group_face1.png"]
    for p in out.glob("*.png"):
        assert cv2.imread(str(p)) is not None
    assert stdout.count("face ") == 2 and "%" in stdout


def test_cli_a_detector_that_cannot_run_is_reported_once(tmp_path, weights, monkeypatch,
                                                         capsys):
    image, _ = synthetic_canvas(1, canvas=(240, 480))
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), image)

    class Broken:
        def detect(self, image):
            raise DetectorError("yunet.onnx: OpenCV could not run this as a YuNet model")

    monkeypatch.setattr(explain_cli, "make_detector", lambda *a, **k: Broken())
    code = explain_cli.main([str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--weights",
                             str(weights), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("yunet.onnx") == 1, err


def test_cli_whole_image_and_no_face(tmp_path, weights, capsys):
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "crop.png"), face)
    blank = np.full((200, 200), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "blank.png"), blank)
    code = explain_cli.main([str(tmp_path / "crop.png"), "--whole-image", "--weights",
                             str(weights), "--out", str(tmp_path / "o")])
    assert code == 0 and (tmp_path / "o" / "crop_face0.png").is_file()
    assert "whole image" in capsys.readouterr().out
    code = explain_cli.main([str(tmp_path / "blank.png"), "--weights", str(weights),
                             "--out", str(tmp_path / "o2")])
    assert code == 0 and "no face found" in capsys.readouterr().out
    assert not (tmp_path / "o2").exists()


def test_cli_user_errors_exit_2_without_traceback(tmp_path, weights, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    code = explain_cli.main([str(tmp_path / "missing.jpg"), str(tmp_path / "bad.jpg"),
                             "--weights", str(weights), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing.jpg: no such image file" in err and "bad.jpg: not a readable image" in err
    assert "Traceback" not in err
    code = explain_cli.main([str(tmp_path / "bad.jpg"), "--weights", str(tmp_path / "no.npz")])
    assert code == 2 and "no.npz: no such weights file" in capsys.readouterr().err


def test_cli_out_that_is_a_file_exits_2_without_traceback(tmp_path, weights, capsys):
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "crop.png"), face)
    before = (tmp_path / "crop.png").read_bytes()
    for out, message in (("crop.png", "is a file, not a folder; give a folder name"),
                         ("crop.png/sub", "crop.png is a file, not a folder")):
        code = explain_cli.main([str(tmp_path / "crop.png"), "--whole-image", "--weights",
                                 str(weights), "--out", str(tmp_path / out)])
        err = capsys.readouterr().err
        assert code == 2 and f"--out {tmp_path / out}" in err and message in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "crop.png").read_bytes() == before


def test_cli_gives_equal_stems_distinct_names_and_never_overwrites_an_input(tmp_path, weights,
                                                                           capsys):
    rng = np.random.default_rng(0)
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "me.png"),
                    (rng.random((48, 48)) * 255).astype(np.uint8))
    out = tmp_path / "o"
    out.mkdir()
    # an input that sits where an output would go: out/crop_face0.png is "crop.png"'s name
    cv2.imwrite(str(out / "crop_face0.png"), (rng.random((48, 48)) * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "crop.png"), (rng.random((48, 48)) * 255).astype(np.uint8))
    protected = (out / "crop_face0.png").read_bytes()
    code = explain_cli.main([str(tmp_path / "x" / "me.png"), str(tmp_path / "y" / "me.png"),
                             str(tmp_path / "crop.png"), str(out / "crop_face0.png"),
                             "--whole-image", "--weights", str(weights), "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == [
        "crop-2_face0.png", "crop_face0.png", "crop_face0_face0.png", "me-2_face0.png",
        "me_face0.png"]
    assert (out / "crop_face0.png").read_bytes() == protected
    assert f"-> {out / 'me-2_face0.png'}" in stdout and f"-> {out / 'crop-2_face0.png'}" in stdout


def test_cli_names_a_training_checkpoint_and_suggests_best_npz(tmp_path, capsys):
    np.savez(tmp_path / "checkpoint.npz", **{"model/param/0.W": np.zeros(3, np.float32),
                                             "config": np.array("{}"), "state": np.array("{}")})
    (tmp_path / "face.png").write_bytes(b"")
    code = explain_cli.main([str(tmp_path / "face.png"), "--weights",
                             str(tmp_path / "checkpoint.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "training checkpoint" in err and str(tmp_path / "best.npz") in err
