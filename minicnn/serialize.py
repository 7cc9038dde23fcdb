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
leaves a half-written file behind. Reading never unpickles (a pickled object array could
run code) and checks before it reads or allocates:

* every entry's ``.npy`` header (dtype, shape) against the entry's size in the zip, and
  against the limits below, so a small compressed file cannot expand into gigabytes;
* the spec's structure (``layers`` a list of {"type", "config"} objects, ``arrays`` and
  ``metadata`` objects) and each layer's config (the layer's constructor checks types and
  ranges, and refuses a layer above ``layers.base.MAX_LAYER_PARAMETERS``);
* the model's keys and shapes against the headers; then, once read, every value is
  checked to be finite.

Any problem is a ``WeightsError`` naming the file and the problem. Limits:
``MAX_ARRAY_BYTES`` (1 GiB) per array, ``MAX_FILE_BYTES`` (4 GiB) for all the arrays of a
file, ``MAX_PARAMETERS`` (2**27, 134 M) for a model, ``MAX_SPEC_BYTES`` (16 MiB) for the
JSON entries.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

SPEC_KEY = "__spec__"
FORMAT, VERSION = "minicnn", 1
_FLOAT_DTYPES = ("float32", "float64")
MAX_ARRAY_BYTES = 2**30
MAX_FILE_BYTES = 2**32
MAX_PARAMETERS = 2**27
MAX_SPEC_BYTES = 2**24
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


class WeightsError(ValueError):
    """A weights or checkpoint file that cannot be used; the message names file and problem."""


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temp file next to ``path``, then atomically replace ``path``."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """``write(f)`` into a temp file next to ``path``, then atomically replace ``path``: a
    crash never leaves half a file behind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def read_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} of every entry of an ``.npz``, from the ``.npy`` headers alone
    (nothing is decompressed beyond them). WeightsError for a file that is not a zip of
    ``.npy`` arrays, an object (pickle) entry, a header that disagrees with the entry's
    size, or sizes above ``MAX_ARRAY_BYTES`` / ``MAX_FILE_BYTES``."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise WeightsError(f"{path}: {what}")
    headers, total = {}, 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else None
                if key is None:
                    raise WeightsError(f"{path}: entry {info.filename!r} is not a .npy array; "
                                       "not a NumPy .npz file")
                if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                                       zipfile.ZIP_DEFLATED):
                    raise WeightsError(f"{path}: entry {info.filename!r} is encrypted or "
                                       "compressed in a way NumPy never writes; not a "
                                       "NumPy .npz file")
                with zf.open(info) as f:
                    try:
                        version = np.lib.format.read_magic(f)
                        reader = _HEADER_READERS.get(version)
                        if reader is None:
                            raise ValueError(f"unsupported .npy version {version}")
                        shape, _, dtype = reader(f)
                    except ValueError as exc:
                        raise WeightsError(f"{path}: entry {key!r} is not a .npy array "
                                           f"({exc})") from None
                    header_len = f.tell()
                if dtype.hasobject:
                    raise WeightsError(
                        f"{path}: entry {key!r} contains pickled Python objects; refusing "
                        "to load it (weights are plain numeric arrays)")
                nbytes = math.prod(shape) * dtype.itemsize
                if header_len + nbytes != info.file_size:
                    raise WeightsError(f"{path}: entry {key!r} declares a {dtype}{shape} "
                                       f"array ({nbytes:,} bytes) but holds "
                                       f"{info.file_size - header_len:,}; the file is damaged")
                if nbytes > MAX_ARRAY_BYTES:
                    raise WeightsError(f"{path}: entry {key!r} is a {dtype}{shape} array of "
                                       f"{_mib(nbytes)}, more than the {_mib(MAX_ARRAY_BYTES)} "
                                       "allowed per array (minicnn.serialize.MAX_ARRAY_BYTES)")
                total += nbytes
                if total > MAX_FILE_BYTES:
                    raise WeightsError(f"{path}: the arrays add up to more than the "
                                       f"{_mib(MAX_FILE_BYTES)} allowed per file "
                                       "(minicnn.serialize.MAX_FILE_BYTES)")
                headers[key] = (tuple(shape), dtype)
    except WeightsError:
        raise
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError,
            zlib.error) as exc:
        raise WeightsError(f"{path}: not a readable .npz file ({exc})") from None
    return headers


def read_npz(path: str | os.PathLike, keys=None, expected: dict[str, np.ndarray] | None = None,
             headers: dict | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` (all, or only ``keys``), never unpickling; clear
    WeightsErrors otherwise. Every header is checked first (``read_headers``, or the
    ``headers`` it gave for this file); with ``expected`` ({key: array of the right shape},
    e.g. ``model_arrays(model)``) the file's keys and shapes are compared with it too, all
    before any array is read."""
    path = Path(path)
    headers = read_headers(path) if headers is None else headers
    if expected is not None:
        check_arrays(path, {k: v for k, v in headers.items() if k != SPEC_KEY}, expected)
    wanted = [k for k in headers if keys is None or k in keys]
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for key in wanted:
                with zf.open(key + ".npy") as f:
                    try:
                        out[key] = np.lib.format.read_array(f, allow_pickle=False)
                    except (ValueError, EOFError, OSError, zlib.error,
                            zipfile.BadZipFile) as exc:
                        raise WeightsError(f"{path}: entry {key!r} is unreadable "
                                           f"({exc})") from None
    except WeightsError:
        raise
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError,
            zlib.error) as exc:
        raise WeightsError(f"{path}: not a readable .npz file ({exc})") from None
    return out


def read_json_entry(arrays: dict[str, np.ndarray], key: str, path: Any) -> Any:
    if key not in arrays:
        raise WeightsError(f"{path}: missing entry {key!r}; is this a minicnn file?")
    entry = arrays[key]
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise WeightsError(f"{path}: entry {key!r} is not a JSON string")
    if entry.nbytes > MAX_SPEC_BYTES:
        raise WeightsError(f"{path}: entry {key!r} is {_mib(entry.nbytes)}, more than the "
                           f"{_mib(MAX_SPEC_BYTES)} a JSON entry may be")
    try:
        return json.loads(str(entry))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: entry {key!r} is not valid JSON ({exc})") from None
    except RecursionError:  # nested deeper than Python's stack: not a spec minicnn wrote
        raise WeightsError(f"{path}: entry {key!r} is JSON nested too deeply") from None


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


def check_arrays(path: Any, found: dict, expected: dict[str, np.ndarray]) -> None:
    """Compare a file's arrays with a model's: keys, then shapes, dtypes and finiteness.
    ``found`` holds arrays, or (shape, dtype) pairs from ``read_headers`` (then
    finiteness is left for the values)."""
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
        shape, dtype = got if isinstance(got, tuple) else (got.shape, got.dtype)
        if shape != want.shape:
            raise WeightsError(f"{path}: {key!r} has shape {shape}, the architecture "
                               f"needs {want.shape}")
        if dtype.name not in _FLOAT_DTYPES:
            raise WeightsError(f"{path}: {key!r} has dtype {dtype}, expected float32 "
                               "or float64")
        if not isinstance(got, tuple) and not np.isfinite(got).all():
            raise WeightsError(f"{path}: {key!r} contains non-finite values (NaN or inf)")


def read_spec(path: str | os.PathLike, headers: dict | None = None) -> dict:
    """The checked spec of a model file (see the module docstring): a dict whose "layers"
    is a list of {"type": str, "config": dict}, "arrays" a dict of {"shape", "dtype"}
    records and "metadata" a dict. WeightsError says what is wrong."""
    spec = read_json_entry(read_npz(path, keys={SPEC_KEY}, headers=headers), SPEC_KEY, path)
    if not isinstance(spec, dict):
        raise WeightsError(f"{path}: the spec is a JSON {type(spec).__name__}, not an object; "
                           "not a minicnn model file")
    if spec.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a minicnn model file (spec format "
                           f"{spec.get('format')!r})")
    if spec.get("version") != VERSION:
        raise WeightsError(f"{path}: unsupported minicnn file version {spec.get('version')!r}")
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise WeightsError(f"{path}: the spec's 'layers' is a {type(layers).__name__}, not a "
                           "list of layers")
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise WeightsError(f"{path}: layer {i} of the spec is {entry!r}, not an object "
                               'with a "type" name')
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise WeightsError(f"{path}: layer {i} ({entry['type']}) has a config that is a "
                               f"{type(config).__name__}, not an object")
    declared = spec.get("arrays", {})
    if not isinstance(declared, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("shape"), list)
            and isinstance(v.get("dtype"), str) for v in declared.values()):
        raise WeightsError(f"{path}: the spec's 'arrays' is not an object of "
                           '{"shape": [...], "dtype": "..."} records')
    metadata = spec.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WeightsError(f"{path}: the spec's 'metadata' is a {type(metadata).__name__}, "
                           "not an object")
    return spec


def _build_layer(path: Any, i: int, entry: dict):
    """Layer ``i`` of a checked spec, with its weights left at zero (``init=None``, where
    the layer has an initialiser: nothing is drawn for values the file replaces)."""
    from minicnn.layers import LAYER_TYPES

    cls = LAYER_TYPES.get(entry["type"])
    if cls is None:
        raise WeightsError(f"{path}: layer {i} has unknown type {entry['type']!r}")
    config = dict(entry.get("config", {}))
    if "init" in inspect.signature(cls).parameters:
        config["init"] = None
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: layer {i} ({entry['type']}) has a bad config: "
                           f"{exc}") from None


def load_model(path: str | os.PathLike):
    """Rebuild a ``Sequential`` from a model file written by ``Sequential.save``: the
    architecture from its spec, then the weights, buffers and metadata. Everything is
    checked first (see the module docstring); a bad file raises ``WeightsError`` naming it
    and the problem. The layers' ``init`` is None: their weights come from the file."""
    from minicnn.model import Sequential

    all_headers = read_headers(path)
    spec = read_spec(path, all_headers)
    layers, n_params = [], 0
    for i, entry in enumerate(spec["layers"]):
        layers.append(_build_layer(path, i, entry))
        n_params += sum(v.size for v in layers[-1].params.values())
        if n_params > MAX_PARAMETERS:
            raise WeightsError(f"{path}: the spec describes more than {MAX_PARAMETERS:,} "
                               "parameters (minicnn.serialize.MAX_PARAMETERS)")
    model = Sequential(layers, metadata=spec.get("metadata") or {})
    headers = {k: v for k, v in all_headers.items() if k != SPEC_KEY}
    for key, (shape, dtype) in headers.items():  # the spec's own record must agree
        info = spec.get("arrays", {}).get(key)
        if info is not None and (list(shape) != info["shape"] or dtype.name != info["dtype"]):
            raise WeightsError(f"{path}: {key!r} is {dtype}{shape} but the spec "
                               f"records {info['dtype']}{tuple(info['shape'])}")
    dtypes = {dtype for _, dtype in headers.values()}
    if len(dtypes) == 1 and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}:
        model.astype(dtypes.pop())
    arrays = read_npz(path, expected=model_arrays(model), headers=all_headers)
    arrays.pop(SPEC_KEY)
    check_arrays(path, arrays, model_arrays(model))
    model.load_arrays(arrays)
    return model
