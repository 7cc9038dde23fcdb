"""Regression test for the shipped weights on the real FER2013 test split (slow; not in CI).

The recorded figure lives next to the weights (emotion/weights/default_metrics.json, written
from the evaluation that the model card quotes); the shipped model must not fall more than
0.5 points below it with the recognizer's default preprocessing and test-time augmentation.
"""

from __future__ import annotations

import inspect
import json

import pytest

from tests.conftest import FER2013_DIR

pytestmark = pytest.mark.slow


def test_shipped_weights_keep_their_recorded_accuracy():
    from emotion.data import load_fer2013
    from emotion.metrics import classification_report
    from emotion.preprocess import predict_proba
    from emotion.recognizer import DEFAULT_WEIGHTS, EmotionRecognizer, load_weights

    if not (FER2013_DIR / "test").is_dir():
        pytest.skip(f"FER2013 not found at {FER2013_DIR} (set FER2013_DIR to run this test)")
    recorded_file = DEFAULT_WEIGHTS.with_name("default_metrics.json")
    if not DEFAULT_WEIGHTS.is_file() or not recorded_file.is_file():
        pytest.skip(f"no shipped weights or recorded metrics next to {DEFAULT_WEIGHTS}")
    recorded = json.loads(recorded_file.read_text())
    tta = inspect.signature(EmotionRecognizer).parameters["tta"].default
    assert tta == recorded["tta"], "the recorded figure was measured with another TTA"
    ds = load_fer2013(FER2013_DIR, log=None, progress=False)
    probs = predict_proba(load_weights(None), ds["test"].images, tta=tta)
    report = classification_report(ds["test"].labels, probs)
    assert report["n"] == 3589
    assert report["accuracy"] >= recorded["accuracy"] - 0.005, (
        f"accuracy {report['accuracy']:.4f} fell below the recorded {recorded['accuracy']:.4f}")
