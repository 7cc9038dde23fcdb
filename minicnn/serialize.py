"""Saving and loading models safely.

A model file is a plain ``.npz`` (a zip of ``.npy`` arrays) holding

    "__spec__"          a 0-d unicode array with the JSON architecture spec:
                        {"format": "minicnn", "version": 1,
                         "layers": [{"type": "Conv2D", "config": {...}}, ...],
                         "arrays": {"param/0.W": {"shape": [...], "dtype": "float32"}, ...},
                         "metadata": {...anything JSON...}}
    "param/<name>"      every parameter, e.g. "param/0.W"
    "buffer/<name>"     every buffer, e.g. "buffer/1.running_mean"

Writing is atomic (temp file in the same folder, then ``os.replace``) so a crash never
leaves a half-written file behind. Reading uses ``allow_pickle=False`` (a pickled object
array could run code) and checks the keys, shapes, dtypes and finiteness of every array
against the spec before a single value reaches the model.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SPEC_KEY = "__spec__"
FORMAT, VERSION = "minicnn", 1
_FLOAT_DTYPES = ("float32", "float64")


class WeightsError(ValueError):
    """A weights or checkpoint file that cannot be used; the message names file and problem."""


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temp file next to ``path``, then atomically replace ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_array(obj: Any) -> np.ndarray:
    """A JSON document stored as a 0-d unicode array (loads without pickle)."""
    return np.array(json.dumps(obj))


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` with ``allow_pickle=False``; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                        raise WeightsError(
                            f"{path}: entry {key!r} contains pickled Python objects; refusing "
                            "to load it (weights are plain numeric arrays)") from None
                    raise WeightsError(f"{path}: entry {key!r} is unreadable: {exc}") from None
            return out
    except WeightsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{path}: not a readable .npz file ({exc})") from None


def read_json_entry(arrays: dict[str, np.ndarray], key: str, path: Any) -> Any:
    if key not in arrays:
        raise WeightsError(f"{path}: missing entry {key!r}; is this a minicnn file?")
    entry = arrays[key]
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise WeightsError(f"{path}: entry {key!r} is not a JSON string")
    try:
        return json.loads(str(entry))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: entry {key!r} is not valid JSON ({exc})") from None


def model_arrays(model) -> dict[str, np.ndarray]:
    """Every saved array of a model under its file key ("param/0.W", "buffer/1.running_var")."""
    arrays = {f"param/{k}": v for k, v in model.parameters().items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    return arrays


def save_model(model, path: str | os.PathLike, metadata: dict | None = None) -> None:
    arrays = model_arrays(model)
    spec = {
        "format": FORMAT, "version": VERSION, "layers": model.spec(),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        "metadata": metadata if metadata is not None else model.metadata,
    }
    atomic_savez(path, {SPEC_KEY: json_array(spec), **arrays})


def check_arrays(path: Any, found: dict[str, np.ndarray],
                 expected: dict[str, np.ndarray]) -> None:
    """Compare a file's arrays with a model's: keys, then shapes, dtypes and finiteness."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        raise WeightsError(f"{path}: missing key(s) {missing}; the file does not match the "
                           "architecture (was it saved from another model?)")
    if extra:
        raise WeightsError(f"{path}: unexpected key(s) {extra}; the file does not match the "
                           "architecture (was it saved from another model?)")
    for key, want in expected.items():
        got = found[key]
        if got.shape != want.shape:
            raise WeightsError(f"{path}: {key!r} has shape {got.shape}, the architecture "
                               f"needs {want.shape}")
        if got.dtype.name not in _FLOAT_DTYPES:
            raise WeightsError(f"{path}: {key!r} has dtype {got.dtype}, expected float32 "
                               "or float64")
        if not np.isfinite(got).all():
            raise WeightsError(f"{path}: {key!r} contains non-finite values (NaN or inf)")


def load_model(path: str | os.PathLike):
    """Rebuild a ``Sequential`` from a file written by ``save_model``."""
    from minicnn.layers import LAYER_TYPES
    from minicnn.model import Sequential

    arrays = read_npz(path)
    spec = read_json_entry(arrays, SPEC_KEY, path)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a minicnn model file (spec format "
                           f"{spec.get('format') if isinstance(spec, dict) else spec!r})")
    if spec.get("version") != VERSION:
        raise WeightsError(f"{path}: unsupported minicnn file version {spec.get('version')!r}")
    layers = []
    for i, entry in enumerate(spec.get("layers", [])):
        cls = LAYER_TYPES.get(entry.get("type"))
        if cls is None:
            raise WeightsError(f"{path}: layer {i} has unknown type {entry.get('type')!r}")
        try:
            layers.append(cls(**entry.get("config", {})))
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"{path}: layer {i} ({entry['type']}) has a bad config: "
                               f"{exc}") from None
    model = Sequential(layers, metadata=spec.get("metadata") or {})
    arrays.pop(SPEC_KEY)
    declared = spec.get("arrays", {})
    for key, arr in arrays.items():  # the spec's own record must agree with the arrays
        info = declared.get(key)
        if info is not None and (list(arr.shape) != info.get("shape")
                                 or arr.dtype.name != info.get("dtype")):
            raise WeightsError(f"{path}: {key!r} is {arr.dtype}{arr.shape} but the spec "
                               f"records {info.get('dtype')}{tuple(info.get('shape', ()))}")
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) == 1:
        model.astype(dtypes.pop())
    check_arrays(path, arrays, model_arrays(model))
    model.load_arrays(arrays)
    return model
