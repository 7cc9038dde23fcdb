"""Output files of the command-line tools: never overwrite an input, never let two outputs
of one run collide, and say so early.

* ``same_file(a, b)``: do two paths name one file (a hard link, a symlink, ``x`` and
  ``./x``, ``runs/x/..`` spellings)?
* ``OutputNamer``: hands out output paths for a run. A name that is taken by an earlier
  output of the same run, or that is (the same file as) one of the run's inputs, gets a
  numeric suffix instead: ``a_annotated.jpg``, then ``a_annotated-2.jpg``, ... An existing
  file that is neither is replaced: it is the path this naming gives for that input, so
  rerunning a command refreshes its own outputs.
* ``check_writable(path)``: create the parent folder and make sure a file can be written
  there, before a long computation rather than after it; ``check_folder(path)`` checks an
  output folder the same way (without creating it).
* ``training_checkpoint_hint(path)``: a sentence for a ``--weights`` file that is an
  ``emotion.train`` checkpoint rather than a model file.
* ``save_figure_atomically(fig, path, **savefig)``: a matplotlib figure written in the
  format its suffix names (PNG where matplotlib has no writer for it), atomically.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from minicnn.serialize import atomic_write


def _key(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of an existing file (symlinks followed), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _resolved(path: str | os.PathLike) -> Path:
    """``Path(path).resolve()``; for a symlink loop, which Python before 3.13 reports as
    RuntimeError, or any other error, the absolute path as written."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: the same inode when both exist (hard
    links and symlinks included), else the same absolute path once resolved."""
    ka, kb = _key(a), _key(b)
    if ka is not None and kb is not None:
        return ka == kb
    return _resolved(a) == _resolved(b)


def numbered(path: Path, k: int) -> Path:
    """``path`` with ``-k`` before its suffix (``a_annotated.jpg`` -> ``a_annotated-2.jpg``);
    ``path`` itself for k = 1."""
    return path if k == 1 else path.with_name(f"{path.stem}-{k}{path.suffix}")


class OutputNamer:
    """Distinct output paths for one run that never name one of the run's inputs.

    inputs : every input file of the run (the paths as given; they are compared by inode
        and by resolved path, so another spelling or a link of an input is recognised).
    """

    def __init__(self, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self._input_keys: set[tuple[int, int]] = set()
        self._input_paths: set[Path] = set()
        for p in inputs:
            self.add_input(p)
        self._taken: set[Path] = set()

    def add_input(self, path: str | os.PathLike) -> None:
        key = _key(path)
        if key is not None:
            self._input_keys.add(key)
        self._input_paths.add(_resolved(path))

    def is_input(self, path: str | os.PathLike) -> bool:
        key = _key(path)
        return (key is not None and key in self._input_keys) or \
            _resolved(path) in self._input_paths

    def _free(self, path: Path) -> bool:
        return _resolved(path) not in self._taken and not self.is_input(path)

    def claim_group(self, make: Callable[[int], list[Path]]) -> list[Path]:
        """The first group ``make(k)``, k = 1, 2, 3, ..., whose paths are all free (not
        taken earlier in this run, not an input); the paths are then taken."""
        k = 1
        while True:
            paths = make(k)
            resolved = [_resolved(p) for p in paths]
            if len(set(resolved)) == len(paths) and all(self._free(p) for p in paths):
                self._taken.update(resolved)
                return paths
            k += 1

    def claim(self, path: str | os.PathLike) -> Path:
        """``path``, or ``numbered(path, k)`` for the first free k >= 2."""
        path = Path(path)
        return self.claim_group(lambda k: [numbered(path, k)])[0]


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Make sure a file can be written at ``path`` before the work that produces it:
    create its folder, refuse a folder in its place, and write and remove a probe file
    next to it. Raises OSError with a message naming the path and the option."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _probe(parent, f".{path.name}.")
    except OSError as exc:
        raise OSError(f"{what} {path}: cannot write in {parent} "
                      f"({_why(parent, exc)})") from None
    return path


def _probe(folder: Path, prefix: str) -> None:
    """Write and remove an empty file in ``folder``: OSError when that is not possible."""
    fd, probe = tempfile.mkstemp(prefix=prefix, suffix=".probe", dir=folder)
    os.close(fd)
    os.unlink(probe)


def _why(folder: Path, exc: OSError) -> str:
    """The reason a folder cannot be created or written: a file where a folder of its path
    should be (``photo.jpg/out``), else the error's own text."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder"
            break
    return exc.strerror or str(exc)


def check_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make sure files can be written in the folder ``path`` before the work that produces
    them, without creating it (a run that writes nothing leaves no empty folder): refuse a
    file in its place or in place of one of its parents, and write and remove a probe file
    in it or, when it does not exist yet, in its nearest existing parent. Raises OSError
    with a message naming the path and the option."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder; give a folder name")
    if path.is_symlink() and not path.exists():
        raise NotADirectoryError(f"{what} {path} is a link to {os.readlink(path)}, which does "
                                 "not exist or loops; give a folder name")
    try:
        _probe(next(p for p in (path, *path.parents) if p.exists()), ".")
    except OSError as exc:  # a file as the nearest existing part included: _why names it
        raise OSError(f"{what} {path}: cannot write in this folder "
                      f"({_why(path, exc)})") from None
    return path


def training_checkpoint_hint(path: str | os.PathLike | None) -> str | None:
    """When ``path`` is an ``emotion.train`` checkpoint (weights + optimizer state for
    ``--resume``, no model spec), a sentence saying so and naming the model files next to
    it; else None. Reads only the zip's table of contents."""
    if path is None:
        return None
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if "__spec__.npy" in names or not {"config.npy", "state.npy"} <= names:
        return None
    nearby = [p for p in (path.parent / "best.npz", path.parent / "final.npz") if p.is_file()]
    use = (" or ".join(str(p) for p in nearby) if nearby
           else f"{path.parent / 'best.npz'} (written next to it after each epoch)")
    return (f"{path}: this is a training checkpoint (emotion.train's checkpoint.npz, the "
            f"state for --resume), not a model file; use {use}")


def save_figure_atomically(fig, path: str | os.PathLike, **savefig) -> None:
    """Write a matplotlib figure to ``path`` through ``minicnn.serialize.atomic_write`` (a
    temp file of its own next to the target, then os.replace; removed if the write fails),
    in the format of the suffix where matplotlib writes it (.pdf, .svg, ...), else PNG."""
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    fmt = suffix if suffix in fig.canvas.get_supported_filetypes() else "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, **savefig))
