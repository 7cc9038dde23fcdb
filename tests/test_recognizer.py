"""EmotionRecognizer: loading and checking weights, analyze(), classify_faces(), bad inputs.

An untrained ``small`` model stands in for the shipped weights: its answers are arbitrary,
but the plumbing (shapes, batching, the shared preprocessing, errors) is what is tested.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from face_helpers import (
    FER_TEST,
    FakeDetector,
    fer_face_files,
    place_faces,
    save_small_model,
    synthetic_canvas,
)

import emotion.faces as faces_module
import emotion.recognizer as recognizer_module
import minicnn
from emotion.faces import HaarDetector, crop_faces, iou
from emotion.labels import CLASSES
from emotion.models import build
from emotion.preprocess import predict_proba
from emotion.recognizer import EmotionRecognizer, FaceResult, load_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


def _check_result(r: FaceResult) -> None:
    assert list(r.probabilities) == list(CLASSES)
    assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.label == max(r.probabilities, key=r.probabilities.get)
    assert r.score == r.probabilities[r.label]


# ------------------------------------------------------------------------------- analyze
def test_analyze_returns_one_frozen_result_per_face_left_to_right(weights):
    image, boxes = synthetic_canvas(3)
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes[::-1]))
    results = rec.analyze(image)
    assert [r.box for r in results] == boxes  # sorted left to right
    for r in results:
        _check_result(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].label = "happy"
    assert results[0].to_dict()["box"] == list(boxes[0])


def test_analyze_uses_the_training_preprocessing_and_one_batch(weights, monkeypatch):
    image, boxes = synthetic_canvas(3, color=False)
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes), tta="flip")
    batch_sizes = []
    forward = rec.model.predict_proba

    def spy(x, *args, **kwargs):
        batch_sizes.append(len(x))
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(rec.model, "predict_proba", spy)
    results = rec.analyze(image)
    assert batch_sizes == [6]  # one call: every face and its mirror image in one batch
    # Same numbers as cropping by hand and calling the shared training-time function.
    monkeypatch.undo()
    expected = predict_proba(rec.model, crop_faces(image, boxes), tta="flip")
    got = np.array([[r.probabilities[c] for c in CLASSES] for r in results])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_analyze_levels_the_eyes_when_asked(weights, monkeypatch):
    image, boxes = synthetic_canvas(2, color=False)
    asked = []
    monkeypatch.setattr(faces_module, "eye_angle", lambda g, b: asked.append(b) or 15.0)
    plain = EmotionRecognizer(weights, detector=FakeDetector(boxes), tta="none")
    aligned = EmotionRecognizer(weights, detector=FakeDetector(boxes), tta="none", align=True)
    assert aligned.align and not plain.align
    unturned = plain.analyze(image)
    assert asked == []
    turned = aligned.analyze(image)
    assert asked == boxes  # one eye search per face
    expected = plain.predict_faces(np.stack([faces_module.crop_face(image, b, angle=15.0)
                                             for b in boxes]))
    got = np.array([[r.probabilities[c] for c in CLASSES] for r in turned])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [r.probabilities for r in turned] != [r.probabilities for r in unturned]


def test_analyze_accepts_paths_gray_bgr_and_bgra(weights, tmp_path):
    image, boxes = synthetic_canvas(2)
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes))
    path = tmp_path / "two faces.png"  # a space in the name, for good measure
    cv2.imwrite(str(path), image)
    ref = rec.analyze(image)
    for variant in (str(path), path, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
                    cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)):
        got = rec.analyze(variant)
        assert [r.box for r in got] == [r.box for r in ref]
        for a, b in zip(got, ref):
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


def test_min_face_size_and_largest_only_apply_to_any_detector(weights):
    image, _ = synthetic_canvas(1, canvas=(240, 480))
    boxes = [(10, 10, 150, 150), (300, 40, 60, 60), (400, 40, 30, 30)]
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes), min_face_size=1)
    assert [r.box for r in rec.analyze(image)] == boxes
    # The default minimum (48 px, the network's input size) drops the 30 px face.
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes))
    assert [r.box for r in rec.analyze(image)] == boxes[:2]
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes), min_face_size=100)
    assert [r.box for r in rec.analyze(image)] == boxes[:1]
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes), largest_only=True)
    assert [r.box for r in rec.analyze(image)] == boxes[:1]


# ------------------------------------------------------------------------ classify_faces
def test_classify_faces_takes_crops_of_any_size_and_colour(weights):
    image, boxes = synthetic_canvas(2, color=False)
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes), tta="none")
    faces48 = crop_faces(image, boxes)
    crops = [cv2.resize(faces48[0], (130, 130), interpolation=cv2.INTER_CUBIC),
             cv2.cvtColor(faces48[1], cv2.COLOR_GRAY2BGR)]
    results = rec.classify_faces(crops)
    assert len(results) == 2 and all(r.box is None for r in results)
    for r in results:
        _check_result(r)
    # 48x48 crops give exactly what analyze() gives for the same faces.
    direct = rec.classify_faces(faces48)
    for a, b in zip(direct, rec.analyze(image)):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert rec.classify_faces([]) == []
    with pytest.raises(ValueError, match="crop 1"):
        rec.classify_faces([faces48[0], np.zeros((0, 5), np.uint8)])


# ---------------------------------------------------------------------------- bad inputs
def test_missing_file_names_the_path(weights, tmp_path):
    rec = EmotionRecognizer(weights, detector=FakeDetector())
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        rec.analyze(missing)
    with pytest.raises(FileNotFoundError, match="folder"):
        rec.analyze(tmp_path)


def test_not_an_image_names_the_file(weights, tmp_path):
    rec = EmotionRecognizer(weights, detector=FakeDetector())
    fake = tmp_path / "notes.jpg"
    fake.write_text("not really a jpeg")
    with pytest.raises(ValueError, match="notes.jpg.*not a readable image"):
        rec.analyze(fake)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        rec.analyze(empty)


def test_zero_size_array_is_a_value_error(weights):
    rec = EmotionRecognizer(weights, detector=FakeDetector())
    with pytest.raises(ValueError, match="empty image"):
        rec.analyze(np.zeros((0, 0, 3), np.uint8))


def test_image_without_a_face_gives_an_empty_list(weights):
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert EmotionRecognizer(weights, detector=FakeDetector([])).analyze(blank) == []
    assert EmotionRecognizer(weights).analyze(blank) == []  # the real Haar detector


def test_unknown_tta_is_rejected(weights):
    with pytest.raises(ValueError, match="test-time augmentation"):
        EmotionRecognizer(weights, detector=FakeDetector(), tta="mirror")


# ------------------------------------------------------------------------------- weights
def test_missing_default_weights_say_where_and_how_to_train(tmp_path, monkeypatch):
    missing = tmp_path / "weights" / "default.npz"
    monkeypatch.setattr(recognizer_module, "DEFAULT_WEIGHTS", missing)
    with pytest.raises(FileNotFoundError) as info:
        EmotionRecognizer()
    assert str(missing) in str(info.value) and "python -m emotion.train" in str(info.value)


def test_missing_explicit_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="mine.npz"):
        load_weights(tmp_path / "mine.npz")


def test_garbage_weights_file_is_a_weights_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(minicnn.WeightsError, match="bad.npz"):
        load_weights(bad)


@pytest.mark.parametrize("changes, message", [
    ({"classes": ["happy", "sad"]}, "classes"),
    ({"classes": list(reversed(CLASSES))}, "classes"),
    ({"input_size": 64}, "64x64"),
    ({"preprocessing": "minmax"}, "preprocessing"),
])
def test_metadata_that_does_not_match_is_refused(tmp_path, changes, message):
    path = save_small_model(tmp_path / "m.npz", **changes)
    with pytest.raises(minicnn.WeightsError, match=message):
        load_weights(path)


def test_model_with_the_wrong_number_of_outputs_is_refused(tmp_path):
    from minicnn import Sequential
    from minicnn.layers import Dense, Flatten

    path = tmp_path / "five.npz"
    Sequential([Flatten(), Dense(48 * 48, 5)], rng=0).save(
        path, metadata={"classes": list(CLASSES), "input_size": 48})
    with pytest.raises(minicnn.WeightsError, match="outputs 5 scores"):
        load_weights(path)


def test_metadata_without_classes_is_refused(tmp_path):
    path = tmp_path / "bare.npz"
    build("small", 0).save(path, metadata={})
    with pytest.raises(minicnn.WeightsError, match="classes"):
        load_weights(path)


# -------------------------------------------------------------- real faces, real detector
@pytest.mark.skipif(not FER_TEST.is_dir(), reason=f"FER2013 test faces not found at {FER_TEST}")
def test_end_to_end_with_haar_on_placed_fer_faces(weights):
    files = fer_face_files(12, stride=97)
    detector = HaarDetector()
    rec = EmotionRecognizer(weights, detector=detector)
    hits = 0
    for f in files[:6]:
        canvas, (box,) = place_faces([f], size=180, canvas=(360, 480))
        results = rec.analyze(canvas)
        for r in results:
            _check_result(r)
        hits += any(iou(r.box, box) > 0.5 for r in results)
    assert hits >= 4


def test_from_model_wraps_a_model_in_memory(weights):
    image, boxes = synthetic_canvas(1)
    model = build("small", 0)
    rec = EmotionRecognizer.from_model(model, detector=FakeDetector(boxes))
    ref = EmotionRecognizer(weights, detector=FakeDetector(boxes))  # the same seed-0 weights
    (a,), (b,) = rec.analyze(image), ref.analyze(image)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert rec.weights_path is None
