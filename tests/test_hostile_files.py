"""Files that are not what they seem, met by the command-line tools: symlink loops, encrypted
or damaged archives, a folder where an output should go, a name too long, an empty split,
a reader that closes our pipe. Each gets a message naming the file, a non-zero exit and no
traceback, and nothing of the user's is lost."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_helpers import FakeDetector, save_small_model, synthetic_canvas

import emotion.explain as explain_cli
import emotion.predict as predict_cli
import emotion.train as train_cli
from emotion.cli import run
from emotion.data import DataError, load_csv
from emotion.labels import CLASSES
from emotion.outputs import OutputNamer, same_file
from emotion.synthetic import make_synthetic
from minicnn.serialize import WeightsError, read_headers, read_json_entry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


@pytest.fixture()
def photo(tmp_path, monkeypatch):
    """An image with two drawn faces, and a fake detector that finds them in any image."""
    image, boxes = synthetic_canvas(2, canvas=(240, 480))
    path = tmp_path / "me.jpg"
    cv2.imwrite(str(path), image)
    for module in (predict_cli, explain_cli):
        monkeypatch.setattr(module, "make_detector", lambda *a, **k: FakeDetector(boxes))
    return path


def loop(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.symlink_to(path)  # a link to itself: resolving it never ends
    return path


def test_a_symlink_loop_is_compared_by_its_path_not_a_runtime_error(tmp_path):
    looped = loop(tmp_path, "loop.jpg")
    namer = OutputNamer([looped])  # Path.resolve() raises RuntimeError here before 3.13
    assert namer.is_input(looped) and not namer.is_input(tmp_path / "other.jpg")
    assert same_file(looped, looped) and not same_file(looped, tmp_path / "x.jpg")


def test_explain_names_a_symlink_loop_and_goes_on(photo, weights, tmp_path, capsys):
    looped = loop(tmp_path, "loop.jpg")
    code = explain_cli.main([str(looped), str(photo), "--weights", str(weights),
                             "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and "loop.jpg" in err and "Traceback" not in err
    assert len(list((tmp_path / "out").glob("me_face*.png"))) == 2  # the good image still ran


def test_predict_annotate_into_a_symlink_loop_exits_2(photo, weights, tmp_path, capsys):
    looped = loop(tmp_path, "out")
    code = predict_cli.main([str(photo), "--annotate", str(looped), "--weights", str(weights)])
    err = capsys.readouterr().err
    assert code == 2 and "--annotate" in err and "loops" in err and "Traceback" not in err


def test_explain_reports_a_folder_in_a_pngs_place_and_leaves_no_temp_file(photo, weights,
                                                                        tmp_path, capsys):
    out = tmp_path / "out"
    (out / "me_face0.png").mkdir(parents=True)  # where the first face's picture would go
    code = explain_cli.main([str(photo), "--weights", str(weights), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "me_face0.png" in err and "Traceback" not in err
    assert (out / "me_face0.png").is_dir()  # the user's folder is untouched
    assert (out / "me_face1.png").is_file()  # the other face was still written
    assert sorted(p.name for p in out.iterdir()) == ["me_face0.png", "me_face1.png"]


def test_a_name_too_long_is_an_error_message(photo, weights, tmp_path, capsys):
    long_name = tmp_path / ("a" * 300 + ".jpg")
    code = predict_cli.main([str(long_name), str(photo), "--json", "--weights", str(weights)])
    out, err = capsys.readouterr()
    assert code == 2 and "cannot be read" in err and "Traceback" not in err
    assert '"faces"' in out  # the good image was still processed


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_an_encrypted_npz_entry_is_a_weights_error(tmp_path):
    data = bytearray(npz_bytes(a=np.zeros(3, np.float32)))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the central directory's "encrypted" flag bit
    path = tmp_path / "enc.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="enc.npz: entry 'a.npy' is encrypted"):
        read_headers(path)


def test_a_spec_nested_too_deeply_is_a_weights_error():
    arrays = {"__spec__": np.array("[" * 100_000)}
    with pytest.raises(WeightsError, match="m.npz: entry '__spec__' is JSON nested too deeply"):
        read_json_entry(arrays, "__spec__", "m.npz")


def test_a_zip_whose_csv_is_damaged_is_a_data_error(tmp_path):
    faces, labels = make_synthetic(2, rng=0)
    rows = ["emotion,pixels,Usage"] + [
        f"{label},{' '.join(map(str, face.ravel()))},Training"
        for face, label in zip(faces, labels)]
    path = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("fer2013.csv", "\n".join(rows) + "\n")
    data = bytearray(path.read_bytes())
    spot = data.index(b",Training") - 1  # the last pixel digit of the first row
    data[spot] = ord("1") if data[spot] != ord("1") else ord("2")  # still a valid CSV
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="fer2013.zip: cannot read fer2013.csv inside"):
        load_csv(path)


def test_train_refuses_a_validation_split_with_no_readable_image(tmp_path, capsys):
    faces, labels = make_synthetic(3, rng=1)
    for split in ("train", "test"):
        for i, (face, label) in enumerate(zip(faces, labels)):
            folder = tmp_path / "data" / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            if split == "train":
                cv2.imwrite(str(folder / f"{i}.png"), face)
            else:
                (folder / f"{i}.png").write_bytes(b"not an image")
    code = train_cli.main(["--data", str(tmp_path / "data"), "--skip-bad", "--epochs", "1",
                           "--arch", "small", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code != 0 and "the 'test' split has no readable images" in err, err
    assert "Traceback" not in err and not (tmp_path / "r" / "checkpoint.npz").exists()


def test_run_turns_a_closed_pipe_into_status_141():
    def main():
        raise BrokenPipeError(32, "Broken pipe")

    saved = os.dup(1)  # run() points fd 1 at /dev/null: keep pytest's and restore it
    try:
        assert run(main) == 141
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert run(lambda: 3) == 3


def test_predict_piped_into_a_reader_that_leaves_exits_quietly(photo, weights):
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotion.predict", str(photo), "--csv", "--weights",
         str(weights)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # as `| head -0` would: the first write meets a closed pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in err, err.decode()


def test_annotating_a_pgm_photo_writes_a_png(photo, weights, tmp_path, capsys):
    gray = tmp_path / "me.pgm"  # OpenCV writes PGM, but only gray images: the copy is colour
    cv2.imwrite(str(gray), cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE))
    code = predict_cli.main([str(gray), "--annotate", str(tmp_path / "out"), "--weights",
                             str(weights)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["me_annotated.png"]
