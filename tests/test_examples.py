"""Every example script runs to completion, prints what it promises and writes its PNG: in
its default form (what the README tells a reader to run; the slow ones are marked slow)
and, for the study examples, in the --quick form the fast suite uses."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(script: str, args: list[str], monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    return capsys.readouterr().out


def check_png(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, path


slow = pytest.mark.slow
DEFAULT_FORMS = [
    ("01_im2col_explainer.py", "exactly the same matrix"),
    ("02_gradient_check.py", "softmax cross-entropy dlogits"),
    ("03_overfit_tiny_batch.py", "training accuracy after 150 steps: 100%"),
    ("04_first_layer_filters.py", "first-layer filters of 3x3"),
    ("05_feature_maps.py", "stage 3"),
    pytest.param("06_training_dynamics.py", "update/weight", marks=slow),
    ("07_augmentation.py", "random erasing"),
    pytest.param("08_kernel_tiers.py", "all tiers agree", marks=slow),
    pytest.param("09_from_pytorch.py", "wrote", marks=slow),
]


def test_every_example_has_a_default_form_test():
    scripts = {p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py")}
    tested = {(p.values if hasattr(p, "values") else p)[0] for p in DEFAULT_FORMS}
    assert scripts == tested, f"examples without a default-form test: {scripts - tested}"


@pytest.mark.parametrize("script, expected", DEFAULT_FORMS)
def test_example_default_form(script, expected, tmp_path, monkeypatch, capsys):
    """What the README says to run: no --quick (the shipped model, FER2013 faces when the
    data is there, full sizes); only --out points into the test's folder."""
    if script == "09_from_pytorch.py":
        pytest.importorskip("torch")
    out = tmp_path / "out"
    printed = run_example(script, ["--out", str(out)], monkeypatch, capsys)
    assert expected in printed
    assert "CHECK" not in printed  # the gradient walkthrough flags any error above 1e-6
    assert "MISMATCH" not in printed
    png = out / script.replace(".py", ".png")
    assert f"wrote {png}" in printed
    check_png(png)


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
    printed = run_example(script, ["--quick", "--synthetic", "--out", str(out)], monkeypatch,
                          capsys)
    assert expected in printed
    assert f"wrote {out / png}" in printed
    check_png(out / png)


def test_kernel_tiers_exits_non_zero_on_a_real_mismatch(tmp_path, monkeypatch, capsys):
    from minicnn import kernels

    real = kernels.col2im

    def wrong(*args, tier=None, **kwargs):  # a numba col2im off by 1% of the output's size
        out = real(*args, tier=tier, **kwargs)
        return out + 0.01 * np.abs(out).max() if tier == "numba" else out

    monkeypatch.setattr(kernels, "col2im", wrong)
    if not kernels.numba_available():
        pytest.skip("needs the numba tier")
    with pytest.raises(SystemExit) as exc:
        run_example("08_kernel_tiers.py", ["--quick", "--out", str(tmp_path)], monkeypatch,
                    capsys)
    assert exc.value.code == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_feature_maps_shows_a_face_the_model_predicts_correctly(tmp_path, monkeypatch,
                                                                capsys):
    printed = run_example("05_feature_maps.py", ["--out", str(tmp_path)], monkeypatch, capsys)
    face = next(line for line in printed.splitlines() if line.startswith("face:"))
    true = face.split("true class ")[1].split(",")[0]
    predicted = face.split("predicted ")[1].split(" ")[0]
    assert true == predicted, face
    assert "happy face the model predicts as happy" in face
