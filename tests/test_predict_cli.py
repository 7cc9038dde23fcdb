"""python -m emotion.predict: table, JSON and CSV output, folders, annotation, user errors.

The CLI runs in-process through ``main(argv)``; a fake detector (patched into the CLI's
``make_detector``) finds the synthetic faces, so these tests need no data.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_helpers import (
    FER_TEST,
    FakeDetector,
    fer_face_files,
    place_faces,
    save_small_model,
    synthetic_canvas,
)

import emotion.predict as predict
import emotion.recognizer as recognizer_module
from emotion.faces import DetectorError
from emotion.labels import CLASSES

FACES = 2


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


@pytest.fixture()
def images(tmp_path, monkeypatch):
    """A folder with two images (one in a subfolder), a non-image file and a hidden folder,
    and a fake detector that finds the two placed faces in any image."""
    image, boxes = synthetic_canvas(FACES, canvas=(240, 480))
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    cv2.imwrite(str(root / "a.jpg"), image)
    cv2.imwrite(str(root / "sub" / "b.png"), image[:, :, 0])  # a gray PNG
    cv2.imwrite(str(root / ".hidden" / "c.png"), image)
    (root / "notes.txt").write_text("not an image")
    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: FakeDetector(boxes))
    return root, boxes


def run(argv, capsys) -> tuple[int, str, str]:
    code = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_output(images, weights, capsys):
    root, _ = images
    code, out, err = run([root, "--weights", weights], capsys)
    assert code == 0, err
    assert "a.jpg: 2 faces" in out and "b.png: 2 faces" in out
    assert "c.png" not in out and "notes.txt" not in out  # hidden and non-image files skipped
    assert all(c in out for c in CLASSES)


def test_json_schema(images, weights, capsys):
    root, boxes = images
    code, out, err = run([root, "--json", "--weights", weights], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [Path(d["file"]).name for d in doc] == ["a.jpg", "b.png"]
    for entry in doc:
        assert set(entry) == {"file", "faces"} and len(entry["faces"]) == FACES
        for face, box in zip(entry["faces"], boxes):
            assert set(face) == {"box", "label", "score", "probabilities"}
            assert face["box"] == list(box)
            assert list(face["probabilities"]) == list(CLASSES)
            assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
            assert face["label"] in CLASSES
            assert face["score"] == face["probabilities"][face["label"]]


def test_csv_schema(images, weights, capsys):
    root, boxes = images
    code, out, err = run([root / "a.jpg", root / "sub" / "b.png", "--csv", "--weights", weights,
                          "--tta", "none"], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["file", "face", "x", "y", "w", "h", "label", "score", *CLASSES]
    assert len(rows) == 1 + 2 * FACES
    for row in rows[1:]:
        assert len(row) == 8 + len(CLASSES)
        face = int(row[1])
        assert tuple(int(v) for v in row[2:6]) == boxes[face]
        assert row[6] in CLASSES
        probs = [float(v) for v in row[8:]]
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert float(row[7]) == pytest.approx(max(probs), abs=1e-6)


def test_largest_keeps_one_face(images, weights, capsys):
    root, _ = images
    code, out, _ = run([root / "a.jpg", "--json", "--largest", "--weights", weights], capsys)
    assert code == 0 and len(json.loads(out)[0]["faces"]) == 1


def test_annotate_writes_same_size_copies_keeping_subfolders(images, weights, tmp_path, capsys):
    root, _ = images
    out_dir = tmp_path / "annotated"
    code, _, err = run([root, "--annotate", out_dir, "--weights", weights], capsys)
    assert code == 0, err
    for rel, copy in (("photos/a.jpg", "photos/a_annotated.jpg"),
                      ("photos/sub/b.png", "photos/sub/b_annotated.png")):
        original = cv2.imread(str(root.parent / rel))
        annotated = cv2.imread(str(out_dir / copy))
        assert annotated is not None, copy
        assert annotated.shape == original.shape
        assert (annotated != original).any()  # something was drawn
        assert f"annotated copy -> {out_dir / copy}" in err  # says where it went
    assert f"wrote 2 annotated copies under {out_dir}" in err
    assert not list(out_dir.rglob(".*"))  # no temp files left behind


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("faces_found", [True, False], ids=["faces", "no-face"])
def test_annotate_into_the_inputs_own_folder_never_replaces_an_input(
        images, weights, tmp_path, monkeypatch, capsys, faces_found):
    # the repro: `predict photos/ --annotate .` with the photos below the cwd,
    # and `--annotate photos` itself; with and without a face found
    root, boxes = images
    if not faces_found:
        monkeypatch.setattr(predict, "make_detector", lambda *a, **k: FakeDetector([]))
    monkeypatch.chdir(tmp_path)
    before = snapshot(root)
    for out in (".", ".", "photos"):  # a second run sees the first run's copies as inputs
        code, _, err = run(["photos", "--annotate", out, "--weights", weights], capsys)
        assert code == 0, err
        after = snapshot(root)
        for path, data in before.items():
            assert after[path] == data, f"{path} was overwritten"
    assert (root / "a_annotated.jpg").is_file() and (root / "sub" / "b_annotated.png").is_file()
    # the second run had photos/a_annotated.jpg as an input: a new name for a.jpg's copy
    assert (root / "a_annotated-2.jpg").is_file()
    assert (root / "photos" / "a_annotated.jpg").is_file()  # --annotate photos


def test_annotate_gives_equal_basenames_distinct_outputs(weights, tmp_path, monkeypatch,
                                                         capsys):
    image, boxes = synthetic_canvas(1, canvas=(240, 480))
    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: FakeDetector(boxes))
    for i, folder in enumerate(("x", "y")):
        (tmp_path / folder / "photos").mkdir(parents=True)
        marked = image.copy()
        marked[:8, :8] = 40 * (i + 1)  # tell the two inputs apart
        cv2.imwrite(str(tmp_path / folder / "me.png"), marked)
        cv2.imwrite(str(tmp_path / folder / "photos" / "a.png"), marked)
    out = tmp_path / "out"
    code, _, err = run([tmp_path / "x" / "me.png", tmp_path / "y" / "me.png",
                        tmp_path / "x" / "photos", tmp_path / "y" / "photos",
                        "--annotate", out, "--weights", weights], capsys)
    assert code == 0, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "me_annotated-2.png", "me_annotated.png",
        "photos/a_annotated-2.png", "photos/a_annotated.png"]
    for first, second in (("me_annotated.png", "me_annotated-2.png"),
                          ("photos/a_annotated.png", "photos/a_annotated-2.png")):
        a, b = cv2.imread(str(out / first)), cv2.imread(str(out / second))
        assert a[2, 2, 0] == 40 and b[2, 2, 0] == 80  # x's copy, then y's: none overwritten
    # a rerun refreshes the same four files instead of adding more
    code, _, err = run([tmp_path / "x" / "me.png", tmp_path / "y" / "me.png",
                        tmp_path / "x" / "photos", tmp_path / "y" / "photos",
                        "--annotate", out, "--weights", weights], capsys)
    assert code == 0 and len(list(out.rglob("*.png"))) == 4


def test_annotate_never_takes_the_name_of_another_input(images, weights, tmp_path, capsys):
    root, _ = images
    # an input that is named like the first input's annotated copy, in the output folder
    cv2.imwrite(str(root / "a_annotated.jpg"), cv2.imread(str(root / "a.jpg")))
    before = (root / "a_annotated.jpg").read_bytes()
    code, _, err = run([root / "a.jpg", root / "a_annotated.jpg", "--annotate", root,
                        "--weights", weights], capsys)
    assert code == 0, err
    assert (root / "a_annotated.jpg").read_bytes() == before
    assert f"a.jpg: annotated copy -> {root / 'a_annotated-2.jpg'}" in err
    assert (root / "a_annotated_annotated.jpg").is_file()


def test_whole_image_classifies_the_image_as_one_face(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: FakeDetector([]))
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "crop.png"), face)
    code, out, err = run([tmp_path / "crop.png", "--json", "--weights", weights], capsys)
    assert code == 0 and json.loads(out)[0]["faces"] == []  # the detector finds nothing
    code, out, err = run([tmp_path / "crop.png", "--json", "--whole-image", "--weights",
                          weights, "--annotate", tmp_path / "o"], capsys)
    assert code == 0, err
    (found,) = json.loads(out)[0]["faces"]
    assert found["box"] == [0, 0, 48, 48] and found["label"] in CLASSES
    assert cv2.imread(str(tmp_path / "o" / "crop_annotated.png")).shape[:2] == (48, 48)


# ---------------------------------------------------------------------------- user errors
def test_missing_and_unreadable_files_are_reported_after_the_good_ones(images, weights,
                                                                       capsys):
    root, _ = images
    missing = root / "missing.jpg"
    code, out, err = run([missing, root / "notes.txt", root / "a.jpg", "--json",
                          "--weights", weights], capsys)
    assert code == 2
    assert [Path(d["file"]).name for d in json.loads(out)] == ["a.jpg"]  # still processed
    assert "missing.jpg" in err and "notes.txt" in err and "not a readable image" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_pipe_and_a_broken_link_are_named_as_such_not_read(images, weights, tmp_path,
                                                             capsys):
    root, _ = images
    pipe, link = tmp_path / "pipe.jpg", tmp_path / "link.jpg"
    os.mkfifo(pipe)  # opening it to read would wait forever for a writer
    link.symlink_to(tmp_path / "gone.jpg")
    code, out, err = run([pipe, link, root / "a.jpg", "--json", "--weights", weights], capsys)
    assert code == 2 and [Path(d["file"]).name for d in json.loads(out)] == ["a.jpg"]
    assert "pipe.jpg: is a pipe, socket or device, not a file or folder" in err, err
    assert f"link.jpg: is a link to {tmp_path / 'gone.jpg'}, which does not exist" in err, err
    assert "Traceback" not in err


def test_annotate_into_a_file_exits_2_before_reading_any_image(images, weights, tmp_path,
                                                              monkeypatch, capsys):
    root, _ = images
    photo = root / "a.jpg"
    before = photo.read_bytes()

    def never(path):
        raise AssertionError("read an image although --annotate cannot be written")

    monkeypatch.setattr(predict, "read_image", never)
    for target, message in ((photo, f"--annotate {photo} is a file, not a folder"),
                            (photo / "sub", f"({photo} is a file, not a folder)")):
        code, out, err = run([root, "--annotate", target, "--weights", weights], capsys)
        assert code == 2 and out == "" and message in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert photo.read_bytes() == before


def test_an_empty_path_is_an_error_not_the_current_folder(images, weights, monkeypatch,
                                                          capsys):
    root, _ = images
    monkeypatch.chdir(root)  # a folder with images: "" must not mean "."
    code, out, err = run(["", "--json", "--weights", weights], capsys)
    assert code == 2 and json.loads(out) == [] and "an empty path" in err


def test_a_detector_that_cannot_run_is_reported_once_not_per_image(images, weights,
                                                                  monkeypatch, capsys):
    root, _ = images

    class Broken:
        calls = 0

        def detect(self, image):
            Broken.calls += 1
            raise DetectorError("yunet.onnx: OpenCV could not run this as a YuNet model")

    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: Broken())
    code, out, err = run([root, "--weights", weights], capsys)
    assert code == 2 and Broken.calls == 1
    assert err.count("yunet.onnx") == 1 and len(err.splitlines()) == 1, err


def test_bad_weights_exit_2_naming_the_file(images, tmp_path, capsys):
    root, _ = images
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    code, out, err = run([root, "--weights", bad], capsys)
    assert code == 2 and "bad.npz" in err and out == ""
    code, _, err = run([root, "--weights", tmp_path / "none.npz"], capsys)
    assert code == 2 and "none.npz" in err


def test_a_training_checkpoint_as_weights_points_to_best_npz(images, tmp_path, capsys):
    root, _ = images
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    np.savez(run_dir / "checkpoint.npz", **{"model/param/0.W": np.zeros(3, np.float32),
                                            "config": np.array("{}"), "state": np.array("{}")})
    code, out, err = run([root, "--weights", run_dir / "checkpoint.npz"], capsys)
    assert code == 2 and out == ""
    assert "training checkpoint" in err and str(run_dir / "best.npz") in err
    assert "__spec__" not in err


def test_missing_default_weights_tell_how_to_train(images, tmp_path, monkeypatch, capsys):
    root, _ = images
    monkeypatch.setattr(recognizer_module, "DEFAULT_WEIGHTS", tmp_path / "default.npz")
    code, _, err = run([root], capsys)
    assert code == 2 and "default.npz" in err and "python -m emotion.train" in err


def test_real_process_exits_2_without_a_traceback(tmp_path):
    # One real subprocess, to check the module entry point and the exit code end to end.
    proc = subprocess.run(
        [sys.executable, "-m", "emotion.predict", str(tmp_path / "x.jpg"),
         "--weights", str(tmp_path / "missing.npz")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 2
    assert "missing.npz" in proc.stderr and "Traceback" not in proc.stderr


# -------------------------------------------------------------- real faces, real detector
@pytest.mark.skipif(not FER_TEST.is_dir(), reason=f"FER2013 test faces not found at {FER_TEST}")
def test_haar_finds_fer_faces_through_the_cli(weights, tmp_path, capsys):
    canvas, boxes = place_faces(fer_face_files(2, stride=97), size=170, canvas=(320, 640))
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), canvas)
    code, out, err = run([path, "--json", "--weights", weights], capsys)
    assert code == 0, err
    assert len(json.loads(out)[0]["faces"]) >= 1


@pytest.mark.parametrize("tool", ["predict", "explain"])
def test_min_face_below_one_is_refused_by_argparse(tool, capsys):
    import importlib

    main = importlib.import_module(f"emotion.{tool}").main
    with pytest.raises(SystemExit) as exc:
        main(["photo.jpg", "--min-face", "-5"])
    assert exc.value.code == 2
    assert "argument --min-face: must be >= 1, got -5" in capsys.readouterr().err
