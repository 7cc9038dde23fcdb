"""Load FER2013 from the Kaggle folder layout or the original ``fer2013.csv``, with a cache.

Two sources give the same result, a ``Dataset``: a read-only mapping from split name to
``Split`` (uint8 images ``(N, 48, 48)`` and int64 labels ``(N,)`` in ``labels.CLASSES`` order)
plus a ``LoadReport`` saying what was converted, resized or skipped.

Split names are normalised so that training code can always ask for ``"train"`` and ``"test"``:

=================================  ==========================================================
source                             split names
=================================  ==========================================================
folder ``train/``, ``test/``       ``"train"``, ``"test"``
folder ``validation/`` or ``val/`` ``"test"`` when there is no ``test/``, otherwise ``"val"``
folder with any other name         kept as it is, e.g. ``"extra"``
CSV ``Usage`` Training             ``"train"``
CSV ``Usage`` PublicTest           ``"test"`` (the set Kaggle's folder layout calls test)
CSV ``Usage`` PrivateTest          ``"private"``
=================================  ==========================================================

``load_fer2013(path)`` is the entry point: it accepts either layout and caches the decoded
arrays as ``.npz`` so that a second run takes about a second instead of decoding 32k JPEGs.
``load_folder`` and ``load_csv`` do the same without the cache.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from emotion.cli import not_a_file
from emotion.faces import to_gray
from emotion.images import decode_image
from emotion.labels import CLASSES, FER_CSV_ORDER, NUM_CLASSES, class_index
from minicnn.data import batch_indices

IMAGE_SIZE = 48  # FER2013 faces are 48x48; every loader returns this size.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp"}
)
DEFAULT_CACHE_DIR = Path("~/.cache/minicnn-emotion")
CACHE_ENV_VAR = "EMOTION_CACHE_DIR"
# Bump when the decoding or the cache layout changes, so that old cache files stop matching.
_CACHE_VERSION = 1

# Folder split names -> our split names. "val" becomes "test" when there is no test/ folder.
_FOLDER_SPLITS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "publictest": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "private": "private",
    "privatetest": "private",
}
_CSV_USAGE = {"training": "train", "publictest": "test", "privatetest": "private"}
_SPLIT_ORDER = ("train", "test", "val", "private")  # others follow, sorted by name


class DataError(ValueError):
    """A data source is missing, malformed or holds an unreadable image.

    The message always names the place: the file, folder, or CSV file and line number.
    """


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes
    ----------
    images : uint8 array (N, 48, 48), grayscale faces.
    labels : int64 array (N,), class ids into ``labels.CLASSES``.
    source : where the split came from (a folder, or a CSV path and its Usage value).
    """

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __post_init__(self) -> None:
        # Catch mismatched arrays where they are made, not three calls later in training.
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}), got "
                             f"{self.images.dtype} {self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must be int64 ({len(self.images)},), got "
                             f"{self.labels.dtype} {self.labels.shape}")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LoadReport:
    """What a loader did, for the one line a CLI prints (``summary()``).

    Attributes
    ----------
    source : the resolved path that was loaded (or a description such as "synthetic").
    counts : images per split.
    converted : images that were colour, had alpha or were not 8-bit, converted to 8-bit gray.
    resized : images that were not 48x48, resized with cv2.INTER_AREA.
    skipped : unreadable files or malformed CSV rows skipped because ``skip_bad=True``.
    warnings : problems that do not stop loading, e.g. a class without training images.
    ignored : hidden or non-image files (.DS_Store, Thumbs.db, notes.txt) left out.
    from_cache : whether the arrays came from the .npz cache.
    cache_path : the cache file read or written, if any.
    seconds : wall time of the load.
    """

    source: str
    counts: dict[str, int] = field(default_factory=dict)
    converted: int = 0
    resized: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ignored: int = 0
    from_cache: bool = False
    cache_path: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        """One line, e.g. ``loaded train=28709 test=3589 from ... (0 converted, ...)``."""
        splits = " ".join(f"{name}={n}" for name, n in self.counts.items())
        where = "from cache" if self.from_cache else "decoded"
        return (
            f"loaded {splits} from {self.source} ({self.converted} converted to gray, "
            f"{self.resized} resized to {IMAGE_SIZE}x{IMAGE_SIZE}, {len(self.skipped)} skipped, "
            f"{self.ignored} non-image files ignored; {where}, {self.seconds:.1f} s)"
        )


@dataclass(frozen=True, eq=False)
class Dataset(Mapping[str, Split]):
    """Read-only mapping ``split name -> Split`` with the ``LoadReport`` of how it was made.

    ``data["train"].images`` is ``(N, 48, 48)`` uint8; ``list(data)`` gives the split names,
    "train" first.
    """

    splits: dict[str, Split]
    report: LoadReport

    def __getitem__(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"no split {name!r}; this dataset has {list(self.splits)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)


# --------------------------------------------------------------------------------------------
# Small helpers used by training code


def class_counts(labels: np.ndarray) -> np.ndarray:
    """Images per class. labels: int (N,) -> int64 (NUM_CLASSES,), zeros for absent classes."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)


def batches(
    n: int, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Yield index arrays (batch_size,) covering range(n) once; the last one may be shorter.

    Shuffling uses ``rng`` (required when shuffle=True) so that an epoch's order can be
    reproduced from a seed. The same as ``minicnn.data.batch_indices``.
    """
    return batch_indices(n, batch_size, shuffle=shuffle, rng=rng)


# --------------------------------------------------------------------------------------------
# Decoding one image


def to_gray48(image: np.ndarray) -> tuple[np.ndarray, bool, bool]:
    """Convert a decoded image to the 48x48 uint8 grayscale the models expect.

    Inputs
    ------
    image : array as cv2.imread(..., IMREAD_UNCHANGED) returns it: (H, W), (H, W, 1),
        (H, W, 3) BGR or (H, W, 4) BGRA; uint8, uint16 or float, read as ``faces.to_gray``
        reads them (the inference path uses the same function).

    Returns
    -------
    (gray, converted, resized): gray is uint8 (48, 48); converted is True when colour, alpha or
    bit depth had to change; resized is True when the input was not 48x48 (cv2.INTER_AREA,
    which averages pixels and so does not alias when shrinking).
    """
    converted = image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1))
    image = to_gray(image)
    resized = image.shape != (IMAGE_SIZE, IMAGE_SIZE)
    if resized:
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image, converted, resized


def _read_image(path: str) -> tuple[np.ndarray | None, str]:
    """Decode a file with ``images.decode_image`` (the reader inference uses, so a truncated
    or oversized file is refused here as it is there): (image, "") or (None, why not)."""
    try:
        return decode_image(path, cv2.IMREAD_UNCHANGED), ""
    except ValueError as err:
        return None, str(err).removeprefix(f"{path}: ")
    except OSError as err:
        return None, f"cannot read it ({err.strerror or err})"


# --------------------------------------------------------------------------------------------
# Folder layout: <root>/<split>/<class>/<image>


class _FolderPlan(NamedTuple):
    """The result of scanning a folder tree, before any image is decoded."""

    root: Path
    files: dict[str, list[tuple[str, int]]]  # split -> [(path, label)], sorted
    split_dirs: dict[str, Path]  # split -> its folder
    ignored: int  # hidden and non-image files
    fingerprint: str  # sha256 over every image's relative path, size and mtime
    skipped: list[str]  # "path: why" for entries that could not be read (skip_bad=True)


def _is_hidden(name: str) -> bool:
    # ".DS_Store", "._img.jpg" (macOS resource forks), "__MACOSX" (zip debris).
    return name.startswith(".") or name.startswith("__")


def _kind(entry: os.DirEntry, skip_bad: bool, skipped: list[str]) -> str | None:
    """"dir", "file" or "other" for a folder entry. One that cannot be resolved (a symlink
    loop, no permission) is listed in ``skipped`` (None) with skip_bad, else DataError."""
    try:
        return "dir" if entry.is_dir() else "file" if entry.is_file() else "other"
    except OSError as err:
        why = f"{entry.path}: cannot read it ({err.strerror or err})"
        if not skip_bad:
            raise DataError(f"{why}; pass skip_bad=True (--skip-bad) to skip it") from None
        skipped.append(why)
        return None


def _scan_folder(root: Path, skip_bad: bool = False) -> _FolderPlan:
    """List <root>/<split>/<class>/* and fingerprint them; raise DataError on a bad layout.

    os.scandir gives file types without a stat per entry; the one stat per image (size and
    mtime for the cache key) takes about 0.1 s for FER2013's 32k files. An entry that
    cannot be resolved (a symlink loop) is a DataError, or skipped with skip_bad.
    """
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    digest = hashlib.sha256()
    files: dict[str, list[tuple[str, int]]] = {}
    split_dirs: dict[str, Path] = {}
    ignored = 0
    skipped: list[str] = []
    folders = [e for e in sorted(os.scandir(root), key=lambda e: e.name)
               if not _is_hidden(e.name) and _kind(e, skip_bad, skipped) == "dir"]
    if not folders:
        raise DataError(f"{root}: no split folders; expected {root}/train/<class>/*.jpg "
                        f"and {root}/test/<class>/*.jpg")
    for split_entry in sorted(folders, key=lambda e: e.name):
        if _is_class_name(split_entry.name):
            raise DataError(
                f"{root}: holds class folder {split_entry.name!r} directly; pass the folder "
                f"above the splits (expected {root}/train/{split_entry.name}/...)"
            )
        split = _FOLDER_SPLITS.get(split_entry.name.lower().replace("_", ""), split_entry.name)
        if split in files:
            raise DataError(f"{split_entry.path}: a second folder for split {split!r} "
                            f"(already have {split_dirs[split]})")
        entries: list[tuple[str, int]] = []  # (image path, label)
        class_dirs = [e for e in sorted(os.scandir(split_entry.path), key=lambda e: e.name)
                      if not _is_hidden(e.name) and _kind(e, skip_bad, skipped) == "dir"]
        if not class_dirs:
            raise DataError(f"{split_entry.path}: no class folders; expected one folder per "
                            f"class named {', '.join(CLASSES)}")
        labelled = []
        for class_entry in class_dirs:
            try:
                labelled.append((class_index(class_entry.name), class_entry.name, class_entry))
            except ValueError as err:
                hint = ""
                if class_entry.name.lower() in _FOLDER_SPLITS:
                    hint = f" (it looks like a split: pass {split_entry.path} as the root)"
                raise DataError(f"{class_entry.path}: {err}{hint}") from None
        # Label order, then name: "Happy" and "angry" sort by class, not by ASCII case.
        for label, _, class_entry in sorted(labelled, key=lambda t: t[:2]):
            n_images, n_skipped = 0, len(skipped)
            for entry in sorted(os.scandir(class_entry.path), key=lambda e: e.name):
                ext = os.path.splitext(entry.name)[1].lower()
                if _is_hidden(entry.name) or ext not in IMAGE_EXTENSIONS:
                    ignored += 1
                    continue
                kind = _kind(entry, skip_bad, skipped)
                if kind is None:
                    digest.update(f"{entry.path}\0unreadable\n".encode())
                    continue
                if kind != "file":
                    ignored += 1
                    continue
                stat = entry.stat()
                rel = f"{split_entry.name}/{class_entry.name}/{entry.name}"
                digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                entries.append((entry.path, label))
                n_images += 1
            if n_images == 0 and len(skipped) == n_skipped:  # (else: all skipped, a warning)
                raise DataError(f"{class_entry.path}: empty class folder (no image files)")
        files[split] = entries
        split_dirs[split] = Path(split_entry.path)
    # A lone validation folder plays the role of the test split (see the module docstring).
    if "val" in files and "test" not in files:
        files["test"] = files.pop("val")
        split_dirs["test"] = split_dirs.pop("val")
    order = sorted(files, key=_split_sort_key)
    return _FolderPlan(
        root=root,
        files={s: files[s] for s in order},
        split_dirs={s: split_dirs[s] for s in order},
        ignored=ignored,
        fingerprint=digest.hexdigest(),
        skipped=skipped,
    )


def _is_class_name(name: str) -> bool:
    try:
        class_index(name)
    except ValueError:
        return False
    return True


def _split_sort_key(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def _decode_files(
    paths: list[str], skip_bad: bool, desc: str, progress: bool, workers: int
) -> tuple[np.ndarray, np.ndarray, int, int, dict[int, str]]:
    """Decode image files into one array.

    Returns (images uint8 (N, 48, 48), ok bool (N,), n_converted, n_resized, reasons); ok
    is False for files that could not be read (only possible with skip_bad=True, else
    DataError), and reasons maps their index to why.
    Chunks of files go to a small thread pool: cv2 releases the GIL while decoding, so two
    threads roughly halve the wall time on two cores.
    """
    n = len(paths)
    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}

    def decode_chunk(lo: int, hi: int) -> tuple[int, int, int]:
        converted = resized = 0
        for i in range(lo, hi):
            image, why = _read_image(paths[i])
            if image is not None:
                try:
                    images[i], was_converted, was_resized = to_gray48(image)
                except (ValueError, cv2.error) as err:
                    image, why = None, str(err)
                else:
                    ok[i] = True
                    converted += was_converted
                    resized += was_resized
            if image is None:
                reasons[i] = why
                if not skip_bad:
                    raise DataError(f"{paths[i]}: cannot read image: {why}; pass skip_bad=True "
                                    "(--skip-bad) to skip such files")
        return hi - lo, converted, resized

    chunk = 256
    totals = [0, 0]
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar,
    ):
        futures = [pool.submit(decode_chunk, lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
        try:
            for future in futures:  # in order, so the first bad file is the one reported
                done, converted, resized = future.result()
                totals[0] += converted
                totals[1] += resized
                bar.update(done)
        except BaseException:
            for future in futures:
                future.cancel()  # fail fast instead of decoding the rest
            raise
    return images, ok, totals[0], totals[1], reasons


def _load_plan(plan: _FolderPlan, skip_bad: bool, progress: bool, workers: int) -> Dataset:
    report = LoadReport(source=str(plan.root), ignored=plan.ignored,
                        skipped=list(plan.skipped))
    splits: dict[str, Split] = {}
    for split, entries in plan.files.items():
        paths = [p for p, _ in entries]
        labels = np.array([label for _, label in entries], dtype=np.int64)
        images, ok, converted, resized, reasons = _decode_files(
            paths, skip_bad, desc=f"decoding {split}", progress=progress, workers=workers
        )
        report.converted += converted
        report.resized += resized
        report.skipped.extend(f"{paths[i]}: {why}" for i, why in sorted(reasons.items()))
        splits[split] = Split(images[ok], labels[ok], source=str(plan.split_dirs[split]))
        report.counts[split] = int(ok.sum())
    return _warn_missing_classes(Dataset(splits, report))


def _warn_missing_classes(dataset: Dataset) -> Dataset:
    """Add a warning to the report for each class without a training image: training would
    go on with that class weighted 0 and the model could never predict it."""
    if "train" in dataset.splits:
        absent = [CLASSES[k] for k, n in enumerate(class_counts(dataset["train"].labels))
                  if n == 0]
        if absent:
            dataset.report.warnings.append(
                f"no training images of class(es) {', '.join(absent)} in "
                f"{dataset['train'].source} (a missing class folder, or every file of it "
                "skipped); the model cannot learn to predict them")
    return dataset


def load_folder(
    root: str | os.PathLike[str], skip_bad: bool = False, progress: bool = True, workers: int = 2
) -> Dataset:
    """Load ``<root>/<split>/<class>/<image>`` (Kaggle's FER2013 layout); no cache.

    Every non-hidden folder in root is a split (train, test, validation/val, or any other
    name; see the module docstring for the names); every folder in a split is a class, named
    as ``labels.class_index`` accepts (case-insensitive, synonyms allowed). Hidden files and
    files without an image extension (.DS_Store, Thumbs.db) are ignored. Images are read with
    OpenCV, converted to gray and resized to 48x48 where needed (counted in the report).

    Raises DataError for a missing root, a split with no class folders, an unknown class
    folder, an empty class folder, or an unreadable image (unless skip_bad=True, which skips
    it and lists it in ``report.skipped``).
    """
    started = time.perf_counter()
    dataset = _load_plan(_scan_folder(Path(root).expanduser(), skip_bad), skip_bad, progress,
                         workers)
    dataset.report.seconds = time.perf_counter() - started
    return dataset


# --------------------------------------------------------------------------------------------
# The original fer2013.csv: emotion,pixels,Usage


def load_csv(
    path: str | os.PathLike[str], skip_bad: bool = False, progress: bool = True
) -> Dataset:
    """Load the original ``fer2013.csv`` (columns ``emotion,pixels,Usage``); no cache.

    ``pixels`` holds 2304 space-separated integers 0..255 (a 48x48 image, row-major);
    ``emotion`` is the CSV's class index, mapped through ``labels.FER_CSV_ORDER``. Header names
    may carry stray spaces or capitals. Usage Training/PublicTest/PrivateTest become the splits
    "train"/"test"/"private"; without a Usage column every row goes to "train".

    Raises DataError naming the file and line for a malformed row (wrong column count, wrong
    pixel count, a non-integer or out-of-range value, a bad emotion index, an unknown Usage,
    bytes that are not UTF-8, an unbalanced quote, an over-long field), unless
    skip_bad=True, which skips the row and lists "file:line: reason" in ``report.skipped``.
    Each line is parsed on its own (a FER2013 row never spans lines), so one bad quote
    cannot swallow the rows after it. A file that is not text at all (a zip, gzip or other
    binary file) is a DataError even with skip_bad; a zip holding one ``.csv`` (the Kaggle
    challenge download) is read directly.
    """
    started = time.perf_counter()
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: {not_a_file(path, 'CSV file')}")
    n_pixels = IMAGE_SIZE * IMAGE_SIZE
    csv_to_ours = np.asarray(FER_CSV_ORDER, dtype=np.int64)
    report = LoadReport(source=str(path))
    images: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    with _open_csv_bytes(path) as f:
        first = f.readline()
        try:
            # utf-8-sig drops the byte-order mark some editors put before "emotion".
            header = _split_line(first.decode("utf-8-sig")) if first.strip() else None
        except ValueError as err:
            raise DataError(f"{path}, line 1: {err}") from None
        if header is None:
            raise DataError(f"{path}, line 1: empty file; expected a header emotion,pixels,Usage")
        names = [name.strip().lower() for name in header]
        if "emotion" not in names or "pixels" not in names:
            raise DataError(f"{path}, line 1: header {header} lacks 'emotion' and 'pixels'")
        col_emotion, col_pixels = names.index("emotion"), names.index("pixels")
        col_usage = names.index("usage") if "usage" in names else None
        n_cols = len(names)

        # a context manager: an error clears the progress bar before its message is shown
        with tqdm(f, desc="parsing CSV", unit="row", disable=not progress,
                  leave=False) as lines:
            for line_num, line in enumerate(lines, start=2):
                if not line.strip():
                    continue  # blank line, e.g. at the end of the file
                try:
                    row = _split_line(line.decode("utf-8"))
                    split, label, image = _parse_row(row, n_cols, col_emotion, col_pixels,
                                                     col_usage, n_pixels)
                except ValueError as err:  # UnicodeDecodeError is a ValueError too
                    if isinstance(err, UnicodeDecodeError):
                        err = (f"not UTF-8 text (byte 0x{line[err.start]:02x} at column "
                               f"{err.start + 1})")
                    where = f"{path}, line {line_num}"
                    if not skip_bad:
                        raise DataError(f"{where}: {err}") from None
                    report.skipped.append(f"{where}: {err}")
                    continue
                images.setdefault(split, []).append(image)
                labels.setdefault(split, []).append(int(csv_to_ours[label]))
    if not images:
        raise DataError(f"{path}: no usable rows")
    splits: dict[str, Split] = {}
    for split in sorted(images, key=_split_sort_key):
        stacked = np.stack(images[split]).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        usage = _USAGE_NAMES[split]
        splits[split] = Split(stacked, np.array(labels[split], dtype=np.int64),
                              source=f"{path} (Usage={usage})")
        report.counts[split] = len(stacked)
    report.seconds = time.perf_counter() - started
    return _warn_missing_classes(Dataset(splits, report))


_USAGE_NAMES = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}


@contextlib.contextmanager
def _open_csv_bytes(path: Path) -> Iterator:
    """The CSV's lines as bytes: the file itself, or the one .csv inside a zip archive.
    DataError for any other archive or binary file, which no skip_bad can make a CSV."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK\x03\x04"):
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as err:
            raise DataError(f"{path}: a damaged zip archive ({err}), not a CSV file") from None
        with zf:
            inside = [n for n in zf.namelist()
                      if n.lower().endswith(".csv") and not _is_hidden(Path(n).name)
                      and not n.startswith("__MACOSX")]
            if len(inside) != 1:
                raise DataError(
                    f"{path}: is a zip archive (the Kaggle download?), not a CSV file; unzip "
                    f"it (e.g. `unzip {path.name} -d fer2013`) and pass the folder it makes, "
                    "or the fer2013.csv inside it")
            try:
                with zf.open(inside[0]) as member:
                    yield member
            # while the CSV is read: an encrypted member (RuntimeError), a compression
            # zipfile cannot read (NotImplementedError), damaged data (CRC, zlib, EOF)
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as err:
                raise DataError(f"{path}: cannot read {inside[0]} inside this zip archive "
                                f"({err}); unzip it and pass the fer2013.csv") from None
        return
    if head.startswith(b"\x1f\x8b") or b"\0" in head:
        what = "a gzip archive" if head.startswith(b"\x1f\x8b") else "a binary file"
        raise DataError(f"{path}: is {what}, not a CSV file; extract it first and pass the "
                        "fer2013.csv or the image folder")
    with open(path, "rb") as f:
        yield f


def _split_line(text: str) -> list[str]:
    """One CSV line -> its fields; ValueError for an unbalanced quote or an over-long field."""
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise ValueError("unbalanced quote (a field opens with \" and does not close on "
                             "its line)") from None
        raise ValueError(f"malformed CSV line ({err}); a FER2013 row has 3 fields and about "
                         "9,000 characters") from None


def _parse_row(
    row: list[str], n_cols: int, col_emotion: int, col_pixels: int, col_usage: int | None,
    n_pixels: int,
) -> tuple[str, int, np.ndarray]:
    """One CSV row -> (split, csv emotion index, uint8 (n_pixels,)); ValueError says why not."""
    if len(row) != n_cols:
        raise ValueError(f"expected {n_cols} columns, got {len(row)}")
    emotion = row[col_emotion].strip()
    if not emotion.isdigit() or int(emotion) >= len(FER_CSV_ORDER):
        raise ValueError(f"emotion {emotion!r} is not an integer 0..{len(FER_CSV_ORDER) - 1}")
    if col_usage is None:
        split = "train"
    else:
        usage = row[col_usage].strip()
        if usage.lower() not in _CSV_USAGE:
            raise ValueError(f"unknown Usage {usage!r}; expected Training, PublicTest or "
                             f"PrivateTest")
        split = _CSV_USAGE[usage.lower()]
    tokens = row[col_pixels].split()
    if len(tokens) != n_pixels:
        raise ValueError(f"expected {n_pixels} pixel values, got {len(tokens)}")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        raise ValueError("pixel values must be integers 0..255") from None
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixel values must be integers 0..255")
    return split, int(emotion), values.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Either source, cached


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | bool | None = True) -> Path | None:
    """Where the cache lives: True -> $EMOTION_CACHE_DIR or ~/.cache/minicnn-emotion;
    a path -> that path; None or False -> no cache."""
    if cache_dir is None or cache_dir is False:
        return None
    if cache_dir is True:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR
    return Path(cache_dir).expanduser()


def load_fer2013(
    path: str | os.PathLike[str],
    skip_bad: bool = False,
    cache_dir: str | os.PathLike[str] | bool | None = True,
    progress: bool = True,
    workers: int = 2,
    log: Callable[[str], None] | None = print,
) -> Dataset:
    """Load FER2013 from a Kaggle-layout folder or from ``fer2013.csv``, using a cache.

    Inputs
    ------
    path : a folder ``<path>/train/<class>/*.jpg`` + ``<path>/test/<class>/*.jpg`` (see
        ``load_folder``), a CSV file (see ``load_csv``), or a folder holding only
        ``fer2013.csv``.
    skip_bad : skip unreadable images / malformed rows (listed in ``report.skipped``) instead
        of raising DataError.
    cache_dir : True (default) caches in $EMOTION_CACHE_DIR or ~/.cache/minicnn-emotion; a
        path caches there; None or False turns the cache off.
    progress : show a tqdm progress bar while decoding.
    workers : decoding threads for the folder layout.
    log : called with the one-line ``report.summary()`` (and cache warnings); None is silent.

    Returns
    -------
    Dataset: splits "train" and "test" (plus "private" from the CSV, or any extra folder) of
    uint8 (N, 48, 48) images and int64 (N,) labels, and the LoadReport.

    The cache key hashes the resolved path and every image file's relative path, size and
    mtime (for a CSV: its size and mtime), so editing, adding or removing a file rebuilds the
    cache. A corrupt cache file is ignored and rewritten. Each source has one cache file,
    ``<cache_dir>/<name>-<hash of its path>.npz``, written atomically.
    """
    started = time.perf_counter()
    say = log or (lambda message: None)
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"{source}: {not_a_file(source, 'file or folder')}")
    source = source.resolve()
    if source.is_dir() and (source / "fer2013.csv").is_file() and not any(
        e.is_dir() and not _is_hidden(e.name) for e in os.scandir(source)
    ):
        source = source / "fer2013.csv"

    plan: _FolderPlan | None = None
    if source.is_dir():
        plan = _scan_folder(source, skip_bad)
        key_material = f"folder\n{source}\n{plan.fingerprint}"
    else:
        stat = source.stat()
        key_material = f"csv\n{source}\n{stat.st_size}\0{stat.st_mtime_ns}"
    key = hashlib.sha256(f"v{_CACHE_VERSION}\n{key_material}".encode()).hexdigest()

    directory = resolve_cache_dir(cache_dir)
    cache_file = None
    dataset = None
    if directory is not None:
        # One cache file per source (named by its path), holding the full key: a changed
        # source then overwrites its stale cache instead of piling up 75 MB files.
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)
        path_hash = hashlib.sha256(str(source).encode()).hexdigest()[:16]
        cache_file = directory / f"{safe_name}-{path_hash}.npz"
        dataset = _read_cache(cache_file, key, str(source))
        if dataset is not None and dataset.report.skipped and not skip_bad:
            dataset = None  # decode again, so the bad file raises its DataError as it should
    if dataset is None:
        if plan is not None:
            dataset = _load_plan(plan, skip_bad, progress, workers)
        else:
            dataset = load_csv(source, skip_bad=skip_bad, progress=progress)
        if cache_file is not None:
            try:
                _write_cache(cache_file, key, dataset)
            except OSError as err:
                say(f"warning: could not write cache {cache_file}: {err}")
                cache_file = None
    dataset.report.cache_path = None if cache_file is None else str(cache_file)
    dataset.report.seconds = time.perf_counter() - started
    say(dataset.report.summary())
    for warning in dataset.report.warnings:
        say(f"warning: {warning}")
    if dataset.report.skipped:
        shown = "; ".join(dataset.report.skipped[:3])
        more = len(dataset.report.skipped) - 3
        say(f"skipped: {shown}" + (f" and {more} more" if more > 0 else ""))
    return dataset


def _write_cache(path: Path, key: str, dataset: Dataset) -> None:
    """Save a Dataset as .npz atomically: write a temp file beside it, then os.replace.

    A crash or a second process mid-write can then never leave a half-written cache under
    the real name. Plain np.savez (no compression): FER2013 is ~75 MB and loads in well
    under a second.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    report = dataset.report
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key),
        "split_names": np.array(list(dataset.splits), dtype=str),
        "stats": np.array([report.converted, report.resized, report.ignored], dtype=np.int64),
        "skipped": np.array(report.skipped, dtype=str),
    }
    for i, split in enumerate(dataset.splits.values()):
        arrays[f"images_{i}"] = split.images
        arrays[f"labels_{i}"] = split.labels
        arrays[f"source_{i}"] = np.array(split.source)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_cache(path: Path, key: str, source: str) -> Dataset | None:
    """Load a cache file written by _write_cache; None if absent, stale or corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            names = [str(name) for name in z["split_names"]]
            splits = {
                name: Split(z[f"images_{i}"], z[f"labels_{i}"], str(z[f"source_{i}"]))
                for i, name in enumerate(names)
            }
            converted, resized, ignored = (int(v) for v in z["stats"])
            skipped = [str(s) for s in z["skipped"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable or from another version: rebuild it
    report = LoadReport(
        source=source,
        counts={name: len(s) for name, s in splits.items()},
        converted=converted,
        resized=resized,
        skipped=skipped,
        ignored=ignored,
        from_cache=True,
    )
    return _warn_missing_classes(Dataset(splits, report))
