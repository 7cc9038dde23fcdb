"""The shipped model's outputs, pinned: the probabilities it gives 14 generated faces
(no FER2013 image) must stay within 1e-5 of those recorded in tests/data/shipped_outputs.npz,
on both backends, with no TTA and with the recognizer's default (ten crops). A change to
the engine that moves what users get fails here, in every CI run.

The record was computed on the reference backend in float64, the function itself rather
than one rounding of it. A new shipped model (emotion/weights/default.npz) needs a new
record, on purpose:

    python -m tests.test_shipped_outputs --write
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

RECORD = Path(__file__).with_name("data") / "shipped_outputs.npz"
TOLERANCE = 1e-5
TTAS = ("none", "crops")


def weights_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generated_faces() -> np.ndarray:
    """Two synthetic faces of each class (cartoons drawn by emotion.synthetic), uint8
    (14, 48, 48). They are stored in the record, so the check does not depend on how
    this OpenCV draws them."""
    from emotion.synthetic import make_synthetic
    return make_synthetic(2, rng=20261204)[0]


def outputs(model, faces: np.ndarray) -> dict[str, np.ndarray]:
    """What users get: ``predict_proba`` for each TTA (the network in float32)."""
    from emotion.preprocess import predict_proba
    return {tta: predict_proba(model, faces, tta=tta) for tta in TTAS}


def outputs_float64(model, faces: np.ndarray) -> dict[str, np.ndarray]:
    """``predict_proba``'s steps (the TTA views through the network, their mean) with the
    input cast to the model's float64."""
    from emotion.preprocess import to_model_input, tta_views
    probs = {}
    for tta in TTAS:
        views = tta_views(faces, tta)
        x = to_model_input(np.concatenate(views)).astype(np.float64)
        probs[tta] = model.predict_proba(x).reshape(len(views), len(faces), -1).mean(axis=0)
    return probs


def write_record() -> None:
    import minicnn
    from emotion.recognizer import DEFAULT_WEIGHTS, load_weights
    faces = generated_faces()
    with minicnn.backend("reference"):
        probs = outputs_float64(load_weights(None).astype(np.float64), faces)
    RECORD.parent.mkdir(exist_ok=True)
    tmp = RECORD.with_suffix(".tmp.npz")
    np.savez(tmp, faces=faces, weights_sha256=np.array(weights_digest(DEFAULT_WEIGHTS)),
             **{f"probs_{tta}": p for tta, p in probs.items()})
    tmp.replace(RECORD)
    print(f"wrote {RECORD} for {DEFAULT_WEIGHTS} ({weights_digest(DEFAULT_WEIGHTS)[:12]})")


@pytest.fixture(scope="module")
def record():
    from emotion.recognizer import DEFAULT_WEIGHTS
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"no shipped weights at {DEFAULT_WEIGHTS}")
    with np.load(RECORD, allow_pickle=False) as f:
        rec = {k: f[k] for k in f.files}
    assert str(rec["weights_sha256"]) == weights_digest(DEFAULT_WEIGHTS), (
        f"{DEFAULT_WEIGHTS} is not the model {RECORD} was recorded for: after shipping a "
        "new model, run `python -m tests.test_shipped_outputs --write`")
    return rec


@pytest.mark.parametrize("name", ["fast", "reference"])
def test_shipped_model_outputs_match_the_record(record, name):
    import minicnn
    from emotion.recognizer import load_weights
    with minicnn.backend(name):
        got = outputs(load_weights(None), record["faces"])
    for tta in TTAS:
        want = record[f"probs_{tta}"]
        assert got[tta].shape == want.shape == (14, 7)
        err = float(np.abs(got[tta] - want).max())
        assert err <= TOLERANCE, f"{name}, tta={tta}: outputs moved by {err:.2e}"


def test_the_record_is_not_trivial(record):
    # a record of uniform or one-hot outputs would let a broken network pass: the faces
    # must get varied, unsaturated probabilities, and ten crops must differ from one view
    p = record["probs_none"]
    assert np.allclose(p.sum(axis=1), 1.0)
    assert len(set(p.argmax(axis=1))) >= 3
    assert 0.05 < p.max(axis=1).min() and p.max(axis=1).max() < 0.9999
    assert np.abs(record["probs_crops"] - p).max() > 1e-3


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_shipped_outputs --write")
    write_record()
