"""Every example script runs to completion and prints what it promises."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import cv2
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script, expected", [
    ("01_im2col_explainer.py", "exactly the same matrix"),
    ("02_gradient_check.py", "softmax cross-entropy dlogits"),
    ("03_overfit_tiny_batch.py", "training accuracy after 150 steps: 100%"),
])
def test_example_runs(script, expected, capsys):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert expected in out
    assert "CHECK" not in out  # the gradient walkthrough flags any error above 1e-6


@pytest.mark.parametrize("script, png, expected", [
    ("04_first_layer_filters.py", "04_first_layer_filters.png", "first-layer filters of 3x3"),
    ("05_feature_maps.py", "05_feature_maps.png", "stage 3"),
    ("06_training_dynamics.py", "06_training_dynamics.png", "update/weight"),
    ("07_augmentation.py", "07_augmentation.png", "random erasing"),
    ("08_kernel_tiers.py", "08_kernel_tiers.png", "all tiers agree"),
])
def test_study_example_writes_its_png(script, png, expected, tmp_path, monkeypatch, capsys):
    """The study examples in their --quick form: small sizes, a network trained for seconds
    on synthetic faces, so they need neither the data nor the shipped weights."""
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [script, "--quick", "--synthetic", "--out", str(out)])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    printed = capsys.readouterr().out
    assert expected in printed
    assert f"wrote {out / png}" in printed
    image = cv2.imread(str(out / png))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
