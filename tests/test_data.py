"""Tests for emotion.labels and emotion.data on small fixtures written to tmp_path.

Real FER2013 checks are marked slow and skip when the data is not on this machine.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion.data import (
    DataError,
    Dataset,
    Split,
    batches,
    class_counts,
    load_csv,
    load_fer2013,
    load_folder,
    to_gray48,
)
from emotion.labels import CLASSES, FER_CSV_ORDER, NUM_CLASSES, class_index

FER2013_DIR = Path(
    os.environ.get("FER2013_DIR", Path(__file__).resolve().parents[2] / "shared/data/fer2013")
)


# --------------------------------------------------------------------------------------------
# Fixture helpers


def _gray(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _make_folder(root: Path) -> Path:
    """train: angry x2 (PNG), Happy x2 (JPEG), surprised x1; test: angry x1, happy x1.

    Folder names use capitals and a synonym on purpose, and junk files that must be ignored.
    """
    _write(root / "train/angry/a0.png", _gray(0))
    _write(root / "train/angry/a1.png", _gray(1))
    _write(root / "train/Happy/h0.jpg", _gray(2))
    _write(root / "train/Happy/h1.jpg", _gray(3))
    _write(root / "train/surprised/s0.png", _gray(4))
    _write(root / "test/angry/a0.png", _gray(5))
    _write(root / "test/happy/h0.png", _gray(6))
    (root / "train/angry/.DS_Store").write_bytes(b"\0junk")
    (root / "train/angry/Thumbs.db").write_bytes(b"\0junk")
    (root / "train/angry/._a0.png").write_bytes(b"\0appledouble")
    (root / "test/.hidden").mkdir()
    return root


def _pixels(image: np.ndarray) -> str:
    return " ".join(str(v) for v in image.ravel())


def _write_csv(path: Path, rows: list[str], header: str = "emotion,pixels,Usage") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _quiet(**kwargs):
    return load_fer2013(progress=False, log=None, **kwargs)


# --------------------------------------------------------------------------------------------
# labels


def test_classes_and_csv_order():
    assert CLASSES == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    csv_names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [CLASSES[i] for i in FER_CSV_ORDER] == csv_names


@pytest.mark.parametrize(
    "name, expected",
    [("Angry", "angry"), ("anger", "angry"), ("DISGUSTED", "disgust"), ("fearful", "fear"),
     ("scared", "fear"), ("happiness", "happy"), ("joy", "happy"), (" Neutral ", "neutral"),
     ("sadness", "sad"), ("Surprised", "surprise")],
)
def test_class_index_accepts_case_and_synonyms(name, expected):
    assert CLASSES[class_index(name)] == expected


def test_class_index_rejects_unknown_names():
    with pytest.raises(ValueError, match="contempt"):
        class_index("contempt")


# --------------------------------------------------------------------------------------------
# Folder layout


def test_load_folder_reads_layout(tmp_path):
    root = _make_folder(tmp_path / "fer")
    data = load_folder(root, progress=False)
    assert isinstance(data, Dataset)
    assert list(data) == ["train", "test"]
    train = data["train"]
    assert train.images.shape == (5, 48, 48) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    assert [CLASSES[i] for i in train.labels] == ["angry", "angry", "happy", "happy", "surprise"]
    np.testing.assert_array_equal(train.images[0], _gray(0))  # PNG is lossless
    assert data.report.counts == {"train": 5, "test": 2}
    assert data.report.ignored == 3  # .DS_Store, Thumbs.db, ._a0.png
    assert data.report.converted == data.report.resized == 0
    with pytest.raises(KeyError, match="private"):
        data["private"]


def test_colour_and_odd_size_images_are_converted_and_counted(tmp_path):
    root = _make_folder(tmp_path / "fer")
    colour = np.random.default_rng(7).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    _write(root / "train/fear/colour.png", colour)
    _write(root / "train/fear/big.png", _gray(8, size=64))
    data = load_folder(root, progress=False)
    assert data.report.converted == 1
    assert data.report.resized == 1
    fear = data["train"].images[data["train"].labels == CLASSES.index("fear")]
    assert fear.shape == (2, 48, 48)
    np.testing.assert_array_equal(fear[0], cv2.resize(_gray(8, 64), (48, 48),
                                                      interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(fear[1], cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))


def test_to_gray48_handles_alpha_and_16_bit():
    bgra = np.zeros((48, 48, 4), dtype=np.uint8)
    gray, converted, resized = to_gray48(bgra)
    assert gray.shape == (48, 48) and converted and not resized
    gray, converted, _ = to_gray48(np.full((48, 48), 65535, dtype=np.uint16))
    assert converted and gray.dtype == np.uint8 and gray.max() == 255


@pytest.mark.parametrize("content", [b"this is not a jpeg", b""])
def test_corrupt_image_raises_naming_the_file(tmp_path, content):
    root = _make_folder(tmp_path / "fer")
    (root / "train/Happy/broken.jpg").write_bytes(content)
    with pytest.raises(DataError, match="broken.jpg"):
        load_folder(root, progress=False)


def test_skip_bad_skips_and_reports(tmp_path):
    root = _make_folder(tmp_path / "fer")
    bad = root / "train/Happy/broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    data = load_folder(root, skip_bad=True, progress=False)
    assert len(data["train"]) == 5
    assert len(data.report.skipped) == 1 and data.report.skipped[0].startswith(f"{bad}: ")
    assert data.report.counts["train"] == 5


def test_empty_class_folder_is_an_error(tmp_path):
    root = _make_folder(tmp_path / "fer")
    (root / "test/sad").mkdir()
    (root / "test/sad/.DS_Store").write_bytes(b"")  # junk does not count as an image
    with pytest.raises(DataError, match="sad: empty class folder"):
        load_folder(root, progress=False)


def test_split_without_class_folders_is_an_error(tmp_path):
    root = _make_folder(tmp_path / "fer")
    _write(root / "extra/stray.png", _gray(9))
    with pytest.raises(DataError, match="extra: no class folders"):
        load_folder(root, progress=False)


def test_unknown_class_folder_is_an_error(tmp_path):
    root = _make_folder(tmp_path / "fer")
    _write(root / "train/contempt/c.png", _gray(9))
    with pytest.raises(DataError, match="contempt"):
        load_folder(root, progress=False)


def test_missing_root_and_root_with_class_folders(tmp_path):
    with pytest.raises(DataError, match="nope"):
        load_folder(tmp_path / "nope", progress=False)
    with pytest.raises(DataError, match="nope"):
        load_fer2013(tmp_path / "nope", cache_dir=None, log=None)
    root = _make_folder(tmp_path / "fer")
    with pytest.raises(DataError, match="pass the folder above the splits"):
        load_folder(root / "train", progress=False)


def test_validation_folder_is_the_test_split_when_there_is_no_test(tmp_path):
    root = _make_folder(tmp_path / "fer")
    (root / "test").rename(root / "Validation")
    assert list(load_folder(root, progress=False)) == ["train", "test"]
    _write(root / "test/happy/h.png", _gray(10))
    assert list(load_folder(root, progress=False)) == ["train", "test", "val"]


# --------------------------------------------------------------------------------------------
# CSV


def test_load_csv_with_stray_spaces_in_header(tmp_path):
    images = [_gray(i) for i in range(4)]
    path = _write_csv(
        tmp_path / "fer2013.csv",
        [f"0,{_pixels(images[0])},Training",
         f"4,{_pixels(images[1])},Training",  # CSV 4 = Sad
         f"6,{_pixels(images[2])},PublicTest",  # CSV 6 = Neutral
         f"5,{_pixels(images[3])},PrivateTest",  # CSV 5 = Surprise
         ""],
        header=" emotion , pixels ,Usage ",
    )
    data = load_csv(path, progress=False)
    assert list(data) == ["train", "test", "private"]
    assert [CLASSES[i] for i in data["train"].labels] == ["angry", "sad"]
    assert [CLASSES[i] for i in data["test"].labels] == ["neutral"]
    assert [CLASSES[i] for i in data["private"].labels] == ["surprise"]
    np.testing.assert_array_equal(data["train"].images, np.stack(images[:2]))
    np.testing.assert_array_equal(data["private"].images[0], images[3])


def test_csv_without_usage_column_is_all_train(tmp_path):
    path = _write_csv(tmp_path / "train.csv", [f"3,{_pixels(_gray(0))}"], header="emotion,pixels")
    data = load_csv(path, progress=False)
    assert list(data) == ["train"] and data["train"].labels.tolist() == [CLASSES.index("happy")]


@pytest.mark.parametrize(
    "row, reason",
    [("3,1 2 3,Training", "expected 2304 pixel values, got 3"),
     ("3,{pix_float},Training", "integers"),
     ("3,{pix_256},Training", "integers"),
     ("7,{pix},Training", "emotion '7'"),
     ("-1,{pix},Training", "emotion '-1'"),
     ("happy,{pix},Training", "emotion 'happy'"),
     ("3,{pix},Validation", "unknown Usage 'Validation'"),
     ("3,{pix}", "expected 3 columns")],
)
def test_bad_csv_row_names_file_and_line(tmp_path, row, reason):
    pix = _pixels(_gray(0))
    row = row.format(pix=pix, pix_float="1.5 " + pix[pix.index(" ") + 1 :],
                     pix_256="256 " + pix[pix.index(" ") + 1 :])
    path = _write_csv(tmp_path / "fer2013.csv", [f"0,{pix},Training", row])
    with pytest.raises(DataError, match=rf"fer2013\.csv, line 3: .*{reason}"):
        load_csv(path, progress=False)
    data = load_csv(path, skip_bad=True, progress=False)
    assert len(data["train"]) == 1
    assert len(data.report.skipped) == 1 and "line 3" in data.report.skipped[0]


# --------------------------------------------------------------------------------------------
# Cache


def test_cache_hit_then_invalidated_by_a_changed_file(tmp_path):
    root = _make_folder(tmp_path / "fer")
    cache = tmp_path / "cache"
    messages: list[str] = []
    first = load_fer2013(root, cache_dir=cache, progress=False, log=messages.append)
    assert not first.report.from_cache and len(list(cache.glob("*.npz"))) == 1
    assert "train=5" in messages[0] and "test=2" in messages[0]

    second = _quiet(path=root, cache_dir=cache)
    assert second.report.from_cache
    for name in first:
        np.testing.assert_array_equal(first[name].images, second[name].images)
        np.testing.assert_array_equal(first[name].labels, second[name].labels)

    changed = root / "train/angry/a0.png"
    _write(changed, _gray(100))
    os.utime(changed, ns=(1, 1))  # a new mtime even on coarse-clock filesystems
    third = _quiet(path=root, cache_dir=cache)
    assert not third.report.from_cache
    np.testing.assert_array_equal(third["train"].images[0], _gray(100))

    _write(root / "test/sad/new.png", _gray(101))  # a new file also invalidates
    assert not _quiet(path=root, cache_dir=cache).report.from_cache
    assert len(list(cache.glob("*.npz"))) == 1  # stale caches are overwritten, not kept
    assert not list(cache.glob("*.tmp"))  # atomic writes leave no temp files behind


def test_corrupt_cache_is_ignored_and_rebuilt(tmp_path):
    root = _make_folder(tmp_path / "fer")
    cache = tmp_path / "cache"
    _quiet(path=root, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    cache_file.write_bytes(b"PK\x03\x04 not really a zip")
    rebuilt = _quiet(path=root, cache_dir=cache)
    assert not rebuilt.report.from_cache and len(rebuilt["train"]) == 5
    assert _quiet(path=root, cache_dir=cache).report.from_cache


def test_cache_dir_from_env_and_disabled(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "fer")
    monkeypatch.setenv("EMOTION_CACHE_DIR", str(tmp_path / "env-cache"))
    _quiet(path=root)
    assert len(list((tmp_path / "env-cache").glob("*.npz"))) == 1
    for off in (None, False):
        data = _quiet(path=root, cache_dir=off)
        assert not data.report.from_cache and data.report.cache_path is None


def test_cache_made_with_skip_bad_does_not_hide_bad_files(tmp_path):
    root = _make_folder(tmp_path / "fer")
    (root / "train/Happy/broken.jpg").write_bytes(b"garbage")
    cache = tmp_path / "cache"
    assert len(_quiet(path=root, cache_dir=cache, skip_bad=True).report.skipped) == 1
    assert _quiet(path=root, cache_dir=cache, skip_bad=True).report.from_cache
    with pytest.raises(DataError, match="broken.jpg"):
        _quiet(path=root, cache_dir=cache)


def test_load_fer2013_accepts_csv_file_or_its_folder(tmp_path):
    folder = tmp_path / "csvdata"
    folder.mkdir()
    path = _write_csv(folder / "fer2013.csv", [f"3,{_pixels(_gray(0))},Training",
                                               f"2,{_pixels(_gray(1))},PublicTest"])
    cache = tmp_path / "cache"
    for source in (path, folder):
        data = _quiet(path=source, cache_dir=cache)
        assert data.report.counts == {"train": 1, "test": 1}
    assert data.report.from_cache  # both name the same resolved CSV file


# --------------------------------------------------------------------------------------------
# Helpers


def test_class_counts_and_batches():
    labels = np.array([0, 3, 3, 6])
    np.testing.assert_array_equal(class_counts(labels), [1, 0, 0, 2, 0, 0, 1])
    assert class_counts(labels).shape == (NUM_CLASSES,)
    rng = np.random.default_rng(0)
    parts = list(batches(10, 4, rng))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    again = list(batches(10, 4, np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert np.concatenate(list(batches(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Real data


@pytest.mark.slow
@pytest.mark.skipif(not FER2013_DIR.is_dir(),
                    reason=f"FER2013 not found at {FER2013_DIR} (set FER2013_DIR)")
def test_real_fer2013_folder(tmp_path):
    data = load_fer2013(FER2013_DIR, cache_dir=tmp_path, progress=False, log=None)
    assert data.report.counts == {"train": 28709, "test": 3589}
    assert data.report.skipped == []
    for split in data.values():
        assert split.images.shape[1:] == (48, 48)
        assert (class_counts(split.labels) > 0).all()  # all 7 classes present


# --------------------------------------------------------------------------------------------
# Hostile and broken inputs (issue 17)


def _two_good_rows() -> list[str]:
    return [f"0,{_pixels(_gray(0))},Training", f"3,{_pixels(_gray(1))},PublicTest"]


@pytest.mark.parametrize("bad_line, reason", [
    ("3,7 7 \xff 7,Training".encode("latin-1"), r"not UTF-8 text \(byte 0xff at column 7\)"),
    (("3," + "7 " * 70_000 + ",Training").encode(), r"malformed CSV line \(field larger than"),
    (b'3,"7 7 7,Training', "unbalanced quote"),
])
def test_unreadable_csv_lines_are_data_errors_or_skipped(tmp_path, bad_line, reason):
    path = tmp_path / "fer2013.csv"
    good = _two_good_rows()
    lines = [b"emotion,pixels,Usage", good[0].encode(), bad_line, good[1].encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError, match=rf"fer2013\.csv, line 3: {reason}"):
        load_csv(path, progress=False)
    data = load_csv(path, skip_bad=True, progress=False)
    # the row after the bad one is still read: one bad quote cannot swallow the rest
    assert data.report.counts == {"train": 1, "test": 1}
    assert len(data.report.skipped) == 1 and "line 3" in data.report.skipped[0]


def test_quoted_pixel_fields_still_parse(tmp_path):
    path = _write_csv(tmp_path / "q.csv", [f'3,"{_pixels(_gray(0))}",Training'])
    np.testing.assert_array_equal(load_csv(path, progress=False)["train"].images[0], _gray(0))


def test_zip_download_is_read_or_explained(tmp_path):
    csv_text = "\n".join(["emotion,pixels,Usage", *_two_good_rows()]) + "\n"
    with zipfile.ZipFile(tmp_path / "fer2013.zip", "w") as z:  # the challenge download
        z.writestr("fer2013/fer2013.csv", csv_text)
    for skip_bad in (False, True):
        data = _quiet(path=tmp_path / "fer2013.zip", cache_dir=None, skip_bad=skip_bad)
        assert data.report.counts == {"train": 1, "test": 1}
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:  # the folder-layout download
        z.writestr("train/angry/a.png", cv2.imencode(".png", _gray(0))[1].tobytes())
    for skip_bad in (False, True):
        with pytest.raises(DataError, match=r"images\.zip: is a zip archive .*unzip it"):
            _quiet(path=tmp_path / "images.zip", cache_dir=None, skip_bad=skip_bad)


@pytest.mark.parametrize("content, what", [
    (gzip.compress(b"emotion,pixels,Usage\n"), "a gzip archive"),
    (b"\x00\x01\x02binary\x00" * 10, "a binary file"),
])
def test_binary_files_are_data_errors_even_with_skip_bad(tmp_path, content, what):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    for skip_bad in (False, True):
        with pytest.raises(DataError, match=f"data.csv: is {what}, not a CSV file"):
            load_csv(path, skip_bad=skip_bad, progress=False)


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlink_loop_is_an_error_or_skipped(tmp_path):
    root = _make_folder(tmp_path / "fer")
    loop = root / "train/angry/loop.png"
    loop.symlink_to(loop.name)
    with pytest.raises(DataError, match=r"loop\.png: cannot read it .*pass skip_bad"):
        load_folder(root, progress=False)
    data = load_folder(root, skip_bad=True, progress=False)
    assert data.report.counts == {"train": 5, "test": 2}
    assert len(data.report.skipped) == 1 and "loop.png: cannot read it" in data.report.skipped[0]


def test_truncated_jpeg_is_refused_by_the_loader_as_by_predict(tmp_path):
    from emotion.recognizer import read_image

    root = _make_folder(tmp_path / "fer")
    face = _write(tmp_path / "face.jpg", _gray(9, size=96))
    cut = root / "train/angry/cut.jpg"
    cut.write_bytes(face.read_bytes()[: face.stat().st_size // 2])
    assert cv2.imread(str(cut)) is not None  # what the loader used: the top half, grey below
    with pytest.raises(ValueError, match="cut.jpg: not a readable image"):
        read_image(cut)
    with pytest.raises(DataError, match="cut.jpg: cannot read image: not a readable image"):
        load_folder(root, progress=False)
    assert load_folder(root, skip_bad=True, progress=False).report.counts["train"] == 5


def test_class_without_training_images_is_warned_about(tmp_path):
    root = _make_folder(tmp_path / "fer")  # train has angry, happy and surprise only
    messages: list[str] = []
    data = load_fer2013(root, cache_dir=None, progress=False, log=messages.append)
    warning = "no training images of class(es) disgust, fear, neutral, sad"
    assert warning in data.report.warnings[0]
    assert any(m.startswith("warning: " + warning) for m in messages)
    (root / "train/sad").mkdir()
    (root / "train/sad/only.png").write_bytes(b"not an image")  # every file of it skipped
    data = load_folder(root, skip_bad=True, progress=False)
    assert "sad" in data.report.warnings[0]


def test_cache_with_the_right_key_but_wrong_image_size_is_rebuilt(tmp_path):
    root = _make_folder(tmp_path / "fer")
    cache = tmp_path / "cache"
    _quiet(path=root, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    with np.load(cache_file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images_0"] = np.zeros((5, 32, 32), np.uint8)  # e.g. from another tool's cache
    with open(cache_file, "wb") as f:
        np.savez(f, **arrays)
    data = _quiet(path=root, cache_dir=cache)
    assert not data.report.from_cache and data["train"].images.shape == (5, 48, 48)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 48, 48\)"):
        Split(np.zeros((1, 32, 32), np.uint8), np.zeros(1, np.int64), "x")
