"""Every example script runs to completion and prints what it promises."""

from __future__ import annotations

import runpy
from pathlib import Path

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
