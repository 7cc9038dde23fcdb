"""Save/load round trip, and every kind of bad file refused with its own clear message."""

from __future__ import annotations

import copy
import io
import json
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn import serialize
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
    x = np.random.default_rng(1).standard_normal((8, 1, 8, 8))  # float64
    model.forward(x)  # training mode: the running statistics move off their defaults
    model.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    for mine, theirs in ((model.parameters(), loaded.parameters()),
                         (model.buffers(), loaded.buffers())):
        assert mine.keys() == theirs.keys()
        for name, v in mine.items():
            assert theirs[name].dtype == np.float64
            np.testing.assert_array_equal(theirs[name], v)
    np.testing.assert_array_equal(loaded.eval().forward(x), model.eval().forward(x))


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


def test_a_folder_is_named_as_a_folder_when_loading_and_saving(tmp_path):
    folder = tmp_path / "model.npz"
    folder.mkdir()
    with pytest.raises(WeightsError, match="model.npz: is a folder, not a file"):
        minicnn.load(folder)
    with pytest.raises(IsADirectoryError, match="model.npz: is a folder; give a file name"):
        small_model().save(folder)
    assert list(folder.iterdir()) == [] and sorted(tmp_path.iterdir()) == [folder]


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


# ------------------------------------------------------------------ malformed files and specs
def tiny_model():
    return minicnn.Sequential([Conv2D(1, 2, 3, padding="same"), BatchNorm2D(2), ReLU(),
                               MaxPool2D(2), Dropout(0.2), Flatten(), Dense(2 * 2 * 2, 3)],
                              rng=0)


def save_with_spec(path, spec):
    """A tiny model's arrays under a given (possibly malformed) spec."""
    arrays = {f"param/{k}": v for k, v in tiny_model().parameters().items()}
    arrays.update({f"buffer/{k}": v for k, v in tiny_model().buffers().items()})
    with open(path, "wb") as f:
        np.savez(f, **{SPEC_KEY: np.array(json.dumps(spec))}, **arrays)


def spec_nodes(node, where=()):
    """Every position in a JSON tree, as a tuple of keys and indices."""
    yield where
    children = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in children:
        yield from spec_nodes(child, (*where, key))


def replaced(tree, where, value):
    tree = copy.deepcopy(tree)
    if not where:
        return value
    node = tree
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return tree


WRONG_VALUES = [None, -1, 1e12, "x", [1, 2], {"a": 1}]


def valid_spec(tmp_path):
    path = tmp_path / "valid.npz"
    tiny_model().save(path, metadata={"classes": ["a", "b", "c"]})
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f[SPEC_KEY]))


def test_every_malformed_spec_is_a_weights_error(tmp_path):
    """Replace each node of a valid spec in turn with each wrong value: the file either
    loads (the change was harmless, e.g. in metadata) or raises WeightsError naming it;
    never another exception."""
    spec = valid_spec(tmp_path)
    path = tmp_path / "fuzz.npz"
    refused = 0
    for where in spec_nodes(spec):
        for value in WRONG_VALUES:
            save_with_spec(path, replaced(spec, where, value))
            try:
                minicnn.load(path)
            except WeightsError as exc:
                assert str(path) in str(exc)
                refused += 1
    assert refused > 250  # most changes break the file; the test really exercised them


@pytest.mark.parametrize("change, message", [
    ({"layers": "abc"}, "'layers' is a str, not a list"),
    ({"layers": [1, 2, 3]}, "layer 0 of the spec is 1, not an object"),
    ({"arrays": [1, 2]}, "'arrays' is not an object"),
    ({"metadata": "hello"}, "'metadata' is a str, not an object"),
    ({"version": "1"}, "unsupported minicnn file version '1'"),
])
def test_malformed_spec_parts_have_their_own_message(tmp_path, change, message):
    path = tmp_path / "m.npz"
    save_with_spec(path, {**valid_spec(tmp_path), **change})
    with pytest.raises(WeightsError, match=message):
        minicnn.load(path)
    with pytest.raises(WeightsError, match=message):
        tiny_model().load_weights(path)


@pytest.mark.parametrize("value, message", [
    (1e12, "out_channels must be an int"),
    (10**12, "more than the 134,217,728 one layer may have"),
    ("8", "out_channels must be an int"),
])
def test_huge_or_mistyped_layer_sizes_are_refused_before_allocating(tmp_path, value, message):
    spec = valid_spec(tmp_path)
    spec["layers"][0]["config"]["out_channels"] = value
    path = tmp_path / "m.npz"
    save_with_spec(path, spec)
    with pytest.raises(WeightsError, match=f"layer 0 \\(Conv2D\\) has a bad config: .*{message}"):
        minicnn.load(path)


def test_model_parameter_limit(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    tiny_model().save(path)
    monkeypatch.setattr(serialize, "MAX_PARAMETERS", 20)
    with pytest.raises(WeightsError, match="more than 20 parameters"):
        minicnn.load(path)


def test_spec_entry_that_is_not_npy_is_a_weights_error(tmp_path):
    path = tmp_path / "m.npz"
    tiny_model().save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[SPEC_KEY + ".npy"] = b"hello, not an array"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(WeightsError, match=r"entry '__spec__' is not a \.npy array"):
        minicnn.load(path)


def write_zip_of_zeros(path, arrays, big_key, n_floats):
    """An .npz whose entry big_key is n_floats float32 zeros, compressed, written in chunks:
    a small file that would expand to n_floats * 4 bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            if key == big_key:
                with z.open(key + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": "<f4", "fortran_order": False, "shape": (n_floats,)})
                    for _ in range(n_floats // 2**20):
                        f.write(bytes(4 * 2**20))
            else:
                buf = io.BytesIO()
                np.save(buf, value)
                z.writestr(key + ".npy", buf.getvalue())


def test_small_file_with_a_huge_array_is_refused_from_its_header(tmp_path, monkeypatch):
    """The issue's 6.4 MB file holding a 2 GB array, scaled down: 64 MB of zeros in a
    file of well under 1 MB is refused from the headers; no array is ever read."""
    path = tmp_path / "bomb.npz"
    tiny_model().save(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    write_zip_of_zeros(path, arrays, "param/6.W", 16 * 2**20)
    assert path.stat().st_size < 2**20

    read_array = np.lib.format.read_array

    def only_small(f, **kwargs):
        assert "6.W" not in f.name, "the big array was read before the sizes were checked"
        return read_array(f, **kwargs)

    monkeypatch.setattr(np.lib.format, "read_array", only_small)
    with pytest.raises(WeightsError, match=r"'param/6\.W' is float32\(16777216,\) but the "
                                           r"spec records float32\(3, 8\)"):
        minicnn.load(path)
    with pytest.raises(WeightsError, match=r"'param/6\.W' has shape \(16777216,\), the "
                                           r"architecture needs \(3, 8\)"):
        tiny_model().load_weights(path)
    monkeypatch.setattr(serialize, "MAX_ARRAY_BYTES", 2**20)  # checkpoints have no spec
    with pytest.raises(WeightsError, match=r"'param/6\.W' is a float32\(16777216,\) array of "
                                           r"64 MiB, more than the 1 MiB allowed"):
        read_npz(path)
    monkeypatch.setattr(serialize, "MAX_ARRAY_BYTES", 2**30)
    monkeypatch.setattr(serialize, "MAX_FILE_BYTES", 2**20)
    with pytest.raises(WeightsError, match="more than the 1 MiB allowed per file"):
        read_npz(path)


def test_header_that_disagrees_with_the_entry_size_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    tiny_model().save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["param/6.b.npy"] = members["param/6.b.npy"][:-4]  # one float short
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(WeightsError, match=r"'param/6\.b' declares a float32\(3,\) array "
                                           r"\(12 bytes\) but holds 8"):
        minicnn.load(path)
