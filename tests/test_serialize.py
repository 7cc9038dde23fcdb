"""Save/load round trip, and every kind of bad file refused with its own clear message."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from minicnn.serialize import SPEC_KEY, WeightsError, atomic_savez, read_npz


def small_model(seed=0, width=4):
    return minicnn.Sequential([
        Conv2D(1, width, 3, padding="same", bias=False), BatchNorm2D(width), ReLU(),
        MaxPool2D(2), Dropout(0.2), Flatten(), Dense(width * 4 * 4, 7),
    ], rng=seed)


def trained_like(model):
    """Give buffers non-default values so the round trip proves they are saved too."""
    x = np.random.default_rng(1).standard_normal((8, 1, 8, 8)).astype(np.float32)
    model.forward(x)
    return x


def rewrite(path, change):
    """Load the raw arrays of a saved model, apply ``change(dict)``, and save them again."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_round_trip_preserves_outputs_and_metadata(tmp_path):
    model = small_model()
    x = trained_like(model)
    path = tmp_path / "m.npz"
    model.save(path, metadata={"classes": ["a", "b"], "note": "hi"})
    loaded = minicnn.load(path)
    assert loaded.spec() == model.spec()
    assert loaded.metadata == {"classes": ["a", "b"], "note": "hi"}
    for name, v in model.buffers().items():
        np.testing.assert_array_equal(loaded.buffers()[name], v)
    model.eval()
    loaded.eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert not list(tmp_path.glob("*.tmp")), "the atomic write left a temp file behind"


def test_float64_round_trip(tmp_path):
    model = small_model().astype(np.float64)
    model.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert all(v.dtype == np.float64 for v in loaded.parameters().values())


def test_load_weights_into_existing_model_keeps_arrays_live(tmp_path):
    a, b = small_model(seed=1), small_model(seed=2)
    a.save(tmp_path / "a.npz")
    before = b.parameters()["0.W"]
    b.load_weights(tmp_path / "a.npz")
    assert b.parameters()["0.W"] is before  # copied in place: optimizers stay linked
    np.testing.assert_array_equal(before, a.parameters()["0.W"])


def test_refuses_pickled_object_array(tmp_path):
    path = tmp_path / "evil.npz"
    small_model().save(path)
    rewrite(path, lambda a: a.__setitem__("param/0.W", np.array([{"x": 1}], dtype=object)))
    with pytest.raises(WeightsError, match="pickled Python objects"):
        minicnn.load(path)


def test_refuses_missing_key(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, lambda a: a.pop("param/6.b"))
    with pytest.raises(WeightsError, match=r"missing key.*6\.b"):
        minicnn.load(path)


def test_refuses_extra_key(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, lambda a: a.__setitem__("param/9.W", np.zeros(3, np.float32)))
    with pytest.raises(WeightsError, match=r"unexpected key.*9\.W"):
        minicnn.load(path)


def test_refuses_wrong_shape(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, lambda a: a.__setitem__("param/6.W", np.zeros((7, 3), np.float32)))
    with pytest.raises(WeightsError, match="shape"):
        minicnn.load(path)


def test_refuses_nan_weights(tmp_path):
    path = tmp_path / "m.npz"
    model = small_model()
    model.parameters()["6.W"][0, 0] = np.nan
    model.save(path)
    with pytest.raises(WeightsError, match=r"6\.W.*non-finite"):
        minicnn.load(path)


def test_refuses_integer_weights(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)

    def to_int(a):
        a["param/6.b"] = a["param/6.b"].astype(np.int64)
        spec = str(a[SPEC_KEY]).replace('"param/6.b": {"shape": [7], "dtype": "float32"}',
                                        '"param/6.b": {"shape": [7], "dtype": "int64"}')
        a[SPEC_KEY] = np.array(spec)

    rewrite(path, to_int)
    with pytest.raises(WeightsError, match="dtype"):
        minicnn.load(path)


def test_refuses_other_architecture(tmp_path):
    path = tmp_path / "wide.npz"
    small_model(width=8).save(path)
    with pytest.raises(WeightsError, match="different architecture"):
        small_model(width=4).load_weights(path)


@pytest.mark.parametrize("content, message", [
    (b"this is not a zip file", "not a readable .npz"),
    (None, "no such file"),
])
def test_refuses_garbage_and_missing_files(tmp_path, content, message):
    path = tmp_path / "w.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        minicnn.load(path)


def test_refuses_npz_without_spec(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W=np.zeros(3))
    with pytest.raises(WeightsError, match="is this a minicnn file"):
        minicnn.load(path)


def test_refuses_unknown_layer_type(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, lambda a: a.__setitem__(
        SPEC_KEY, np.array(str(a[SPEC_KEY]).replace('"ReLU"', '"Sigmoid"'))))
    with pytest.raises(WeightsError, match="unknown type 'Sigmoid'"):
        minicnn.load(path)


def test_atomic_savez_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "keep.npz"
    atomic_savez(path, {"a": np.arange(3)})

    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_savez(path, {"a": Boom()})
    np.testing.assert_array_equal(read_npz(path)["a"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]


def test_read_npz_on_truncated_zip(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(1000))
    path = tmp_path / "cut.npz"
    path.write_bytes(buf.getvalue()[:200])
    with pytest.raises(WeightsError, match=str(path.name)):
        read_npz(path)
    assert not zipfile.is_zipfile(path)
