"""The value rules of ``faces.to_gray`` for arrays handed to ``EmotionRecognizer.analyze``
and the loaders: 8-bit values whatever the integer dtype, floats in [0, 1] or 0..255,
uint16 scaled, anything else refused."""

from __future__ import annotations

import numpy as np
import pytest
from face_helpers import FakeDetector, save_small_model, synthetic_canvas

from emotion.faces import to_bgr, to_gray
from emotion.recognizer import EmotionRecognizer


@pytest.mark.parametrize("convert", [
    lambda a: a.astype(np.int64), lambda a: a.astype(np.int32), lambda a: a.astype(np.uint32),
    lambda a: a.astype(np.float64), lambda a: a.astype(np.float32) / 255,
    lambda a: (a.astype(np.uint16) * 257),
])
def test_to_gray_reads_integer_and_float_images_by_their_range(convert):
    gray = np.random.default_rng(1).integers(0, 256, (20, 30), np.uint8)
    np.testing.assert_array_equal(to_gray(convert(gray)), gray)
    bgr = np.stack([gray] * 3, axis=-1)
    np.testing.assert_array_equal(to_gray(convert(bgr)), gray)
    assert to_bgr(convert(gray)).dtype == np.uint8


@pytest.mark.parametrize("image", [np.full((4, 4), 300, np.int64), np.full((4, 4), -1.0),
                                   np.full((4, 4), np.nan), np.full((4, 4), 256.0)])
def test_to_gray_refuses_values_outside_the_8_bit_range(image):
    with pytest.raises(ValueError, match=r"outside 0\.\.255"):
        to_gray(image)


def test_analyze_finds_the_same_faces_in_an_int64_copy(tmp_path):
    weights = save_small_model(tmp_path / "w.npz")
    image, boxes = synthetic_canvas(2)
    rec = EmotionRecognizer(weights, detector=FakeDetector(boxes))
    ref = rec.analyze(image)
    for variant in (image.astype(np.int64), image.astype(np.float64), image / 255.0):
        got = rec.analyze(variant)
        assert [r.box for r in got] == boxes
        for a, b in zip(got, ref):
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
