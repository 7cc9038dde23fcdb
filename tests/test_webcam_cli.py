"""python -m emotion.webcam: the IoU tracker and smoothing, headless video processing into an
annotated video + CSV + timeline, and the errors for a missing camera or file.

Videos are written in the tests (about ten 240x320 frames) with cv2.VideoWriter.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_helpers import FER_TEST, FakeDetector, fer_face_files, place, save_small_model

import emotion.webcam as webcam
from emotion.faces import HaarDetector, TrackingDetector, make_video_detector
from emotion.labels import CLASSES
from emotion.recognizer import EmotionRecognizer

N_FRAMES = 10
SIZE = (240, 480)  # H, W


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("w") / "w.npz")


def onehot(k: int) -> np.ndarray:
    p = np.zeros(len(CLASSES))
    p[k] = 1.0
    return p


def moving_boxes(frame: int) -> list[tuple[int, int, int, int]]:
    """Two faces drifting towards each other by 3 px per frame, with a 1 px jitter."""
    jitter = frame % 2
    return [(40 + 3 * frame, 60 + jitter, 120, 120), (320 - 3 * frame, 50 - jitter, 110, 110)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "this OpenCV build cannot write mp4v"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def synthetic_video(path: Path) -> Path:
    """N_FRAMES BGR frames with two synthetic faces where ``moving_boxes`` says."""
    from emotion.synthetic import make_synthetic

    faces, _ = make_synthetic(1, 3)
    frames = []
    for i in range(N_FRAMES):
        img = np.full(SIZE, 90, np.uint8)
        for face, box in zip(faces, moving_boxes(i)):
            place(img, face, box)
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return write_video(path, frames)


# ------------------------------------------------------------------------------- tracker
def test_tracker_keeps_ids_of_two_moving_faces():
    tracker = webcam.FaceTracker(smoothing=0.6)
    for frame in range(N_FRAMES):
        tracks = tracker.update(moving_boxes(frame), np.stack([onehot(3), onehot(5)]))
        assert [t.id for t in tracks] == [0, 1]
        assert [t.box for t in tracks] == moving_boxes(frame)
    # Each face keeps its own smoothed scores: nothing leaked between the two.
    assert np.argmax(tracks[0].probs) == 3 and np.argmax(tracks[1].probs) == 5
    # Given in the other order, the boxes still get their own ids.
    tracks = tracker.update(moving_boxes(N_FRAMES)[::-1], np.stack([onehot(5), onehot(3)]))
    assert [t.id for t in tracks] == [1, 0]


def test_tracker_smooths_with_an_exponential_moving_average():
    tracker = webcam.FaceTracker(smoothing=0.6)
    box = [(10, 10, 100, 100)]
    tracker.update(box, onehot(0)[None])
    (track,) = tracker.update(box, onehot(1)[None])
    np.testing.assert_allclose(track.probs, 0.6 * onehot(0) + 0.4 * onehot(1))
    (track,) = webcam.FaceTracker(smoothing=0.0).update(box, onehot(2)[None])
    np.testing.assert_allclose(track.probs, onehot(2))
    with pytest.raises(ValueError, match="smoothing"):
        webcam.FaceTracker(smoothing=1.0)


def test_track_survives_a_few_missed_frames_then_dies():
    tracker = webcam.FaceTracker(max_missed=3)
    box = [(10, 10, 100, 100)]
    (first,) = tracker.update(box, onehot(0)[None])
    for _ in range(3):
        assert tracker.update([], np.zeros((0, 7))) == []
    (again,) = tracker.update(box, onehot(0)[None])
    assert again.id == first.id  # back after 3 missed frames: same face
    for _ in range(4):
        tracker.update([], np.zeros((0, 7)))
    assert tracker.tracks == []
    (new,) = tracker.update(box, onehot(0)[None])
    assert new.id == first.id + 1  # gone for 4 frames: a new face
    (far,) = tracker.update([(300, 300, 50, 50)], onehot(0)[None])
    assert far.id == new.id + 1  # no overlap: a new face, not a jump


def test_timeline_plot_is_written(tmp_path):
    history = {0: [(0.1 * i, onehot(i % 7)) for i in range(5)], 3: [(0.2, onehot(1))]}
    webcam.plot_timeline(history, tmp_path / "t.png")
    webcam.plot_timeline({}, tmp_path / "empty.png")
    for name in ("t.png", "empty.png"):
        assert cv2.imread(str(tmp_path / name)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "t.png"]


def test_timeline_plot_takes_the_format_of_its_suffix(tmp_path):
    """--timeline t.pdf writes a PDF (it wrote PNG bytes under any name); a suffix that
    matplotlib cannot write still gets a PNG."""
    history = {0: [(0.1 * i, onehot(i % 7)) for i in range(5)]}
    for name, magic in (("t.pdf", b"%PDF"), ("t.svg", b"<?xml"), ("t.PNG", b"\x89PNG"),
                        ("t.timeline", b"\x89PNG")):
        webcam.plot_timeline(history, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(magic), name
    assert len(list(tmp_path.iterdir())) == 4  # no temporary file left


# ------------------------------------------------------------------------ video sessions
def test_headless_video_to_annotated_video_csv_and_timeline(tmp_path, weights):
    video = synthetic_video(tmp_path / "in.mp4")
    rec = EmotionRecognizer(weights, detector=FakeDetector(
        per_call=[moving_boxes(i) for i in range(N_FRAMES)]))
    cap, is_camera = webcam.open_source(str(video))
    out, table, plot = tmp_path / "out.mp4", tmp_path / "frames.csv", tmp_path / "t.png"
    result = webcam.process_stream(cap, rec, is_camera=is_camera, output=out, csv_path=table,
                                   timeline=plot, display=False)
    cap.release()
    assert result.frames == N_FRAMES and set(result.history) == {0, 1}

    check = cv2.VideoCapture(str(out))
    assert check.isOpened()
    assert int(check.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES
    assert check.get(cv2.CAP_PROP_FPS) == pytest.approx(10, abs=0.5)  # the source's rate
    ok, frame = check.read()
    check.release()
    assert ok and frame.shape == (*SIZE, 3)

    rows = list(csv.reader(table.open()))
    # predict's columns: the label and its score before the probabilities
    assert rows[0] == ["frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score",
                       *CLASSES]
    assert len(rows) == 1 + 2 * N_FRAMES
    for row in rows[1:]:
        frame_i, face_id = int(row[0]), int(row[2])
        assert float(row[1]) == pytest.approx(frame_i / 10, abs=1e-3)
        assert tuple(int(v) for v in row[3:7]) == moving_boxes(frame_i)[face_id]
        probs = [float(v) for v in row[9:]]
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert row[7] == CLASSES[int(np.argmax(probs))]
        assert float(row[8]) == pytest.approx(max(probs), abs=1e-6)
    assert cv2.imread(str(plot)) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_main_runs_headless_without_a_display(tmp_path, weights, monkeypatch, capsys):
    # The real Haar detector on synthetic faces may or may not fire; either way the run
    # must finish and write every output. No --no-display: the missing $DISPLAY decides.
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = synthetic_video(tmp_path / "in.mp4")
    out, table, plot = tmp_path / "o.mp4", tmp_path / "f.csv", tmp_path / "t.png"
    code = webcam.main(["--source", str(video), "--weights", str(weights), "--output", str(out),
                        "--csv", str(table), "--timeline", str(plot), "--max-frames", "4",
                        "--tta", "none"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "headless" in err and "4 frames" in err
    assert out.stat().st_size > 0 and plot.stat().st_size > 0
    assert table.read_text().startswith("frame,time_s,face_id")


# ------------------------------------------------------------------------------- errors
def test_missing_camera_exits_2_with_a_clear_message(capsys):
    code = webcam.main(["--source", "99", "--no-display"])
    assert code == 2
    assert "cannot open camera 99" in capsys.readouterr().err


def test_missing_or_unreadable_video_exits_2(tmp_path, capsys):
    assert webcam.main(["--source", str(tmp_path / "none.mp4"), "--no-display"]) == 2
    assert "none.mp4" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    assert webcam.main(["--source", str(junk), "--no-display"]) == 2
    assert "junk.mp4" in capsys.readouterr().err


def test_bad_rescan_every_exits_2(tmp_path, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    assert webcam.main(["--source", str(video), "--no-display", "--rescan-every", "0"]) == 2
    assert "--rescan-every must be at least 1" in capsys.readouterr().err


def test_bad_weights_exit_2(tmp_path, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    code = webcam.main(["--source", str(video), "--no-display", "--weights",
                        str(tmp_path / "nope.npz")])
    assert code == 2 and "nope.npz" in capsys.readouterr().err


# -------------------------------------------------------------- real faces, real detector
@pytest.mark.skipif(not FER_TEST.is_dir(), reason=f"FER2013 test faces not found at {FER_TEST}")
@pytest.mark.parametrize("tracking", [False, True], ids=["full-search", "tracking"])
def test_haar_tracks_two_real_faces_through_a_video(tmp_path, weights, tracking):
    # tracking: what emotion.webcam runs, local searches between full ones on a 400-px copy
    detector = TrackingDetector(make_video_detector(), rescan_every=4) if tracking \
        else HaarDetector()
    files = []
    for f in fer_face_files(40, stride=53):  # faces the cascade finds when alone
        img = np.full((260, 640), 128, np.uint8)
        place(img, cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (40, 40, 170, 170))
        if (make_video_detector() if tracking else detector).detect(img):
            files.append(f)
        if len(files) == 2:
            break
    faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    frames = []
    for i in range(6):
        img = np.full((300, 640), 128, np.uint8)
        place(img, faces[0], (40 + 2 * i, 60, 170, 170))
        place(img, faces[1], (400 - 2 * i, 70, 170, 170))
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    video = write_video(tmp_path / "real.mp4", frames)
    cap, _ = webcam.open_source(str(video))
    result = webcam.process_stream(cap, EmotionRecognizer(weights, detector=detector),
                                   csv_path=tmp_path / "f.csv")
    cap.release()
    assert result.frames == 6
    assert sorted(result.history) == [0, 1]  # two faces, two ids, kept for the whole video
    assert all(len(h) >= 5 for h in result.history.values())



class InterruptedInNumba(FakeDetector):
    """Ctrl-C on the third frame as it surfaces from inside a compiled Numba function: a
    SystemError whose context is the KeyboardInterrupt."""

    def detect(self, image):
        if self.calls == 2:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SystemError("<numba function> returned a result with an "
                                  "exception set") from None  # __context__ stays set
        return super().detect(image)


def test_ctrl_c_inside_a_compiled_kernel_keeps_what_was_recorded(tmp_path, weights):
    video = synthetic_video(tmp_path / "in.mp4")
    rec = EmotionRecognizer(weights, detector=InterruptedInNumba(moving_boxes(0)))
    cap, _ = webcam.open_source(str(video))
    out, table = tmp_path / "out.mp4", tmp_path / "frames.csv"
    result = webcam.process_stream(cap, rec, output=out, csv_path=table, display=False)
    cap.release()
    assert result.frames == 2  # stopped on the third frame, as a quit, not a failure
    assert out.is_file() and len(list(csv.reader(table.open()))) == 1 + 2 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.csv", "in.mp4", "out.mp4"]


# ------------------------------------------------------------------ outputs vs the source
def test_an_output_that_is_the_source_is_refused_before_anything_is_written(tmp_path, weights,
                                                                            monkeypatch, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    original = video.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    monkeypatch.chdir(tmp_path)
    for option in ("--output", "--csv", "--timeline"):
        for spelling in (str(video), "in.mp4", "./sub/../in.mp4", str(link)):
            code = webcam.main(["--source", str(video), "--no-display", "--weights",
                                str(weights), option, spelling])
            err = capsys.readouterr().err
            assert code == 2, (option, spelling)
            assert f"{option} {spelling} is the source video" in err
            assert video.read_bytes() == original
    code = webcam.main(["--source", str(video), "--no-display", "--weights", str(weights),
                        "--output", "o.mp4", "--csv", "./o.mp4"])
    assert code == 2 and "--output and --csv name the same file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4"]


def test_an_output_that_is_the_weights_file_is_refused(tmp_path, weights, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    own = tmp_path / "w.npz"
    own.write_bytes(Path(weights).read_bytes())
    before = own.read_bytes()
    for option in ("--output", "--csv", "--timeline"):
        code = webcam.main(["--source", str(video), "--no-display", "--weights", str(own),
                            option, str(tmp_path / "." / "w.npz")])
        err = capsys.readouterr().err
        assert code == 2 and f"{option} " in err and "is the --weights file" in err, err
    assert own.read_bytes() == before


def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path, weights,
                                                                    monkeypatch, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")

    def never(*args, **kwargs):
        raise AssertionError("processed the video although an output cannot be written")

    monkeypatch.setattr(webcam, "process_stream", never)
    for option in ("--output", "--csv", "--timeline"):
        for path, message in (("adir", "is a folder"), ("afile/x.out", "cannot write in")):
            code = webcam.main(["--source", str(video), "--no-display", "--weights",
                                str(weights), option, str(tmp_path / path)])
            err = capsys.readouterr().err
            assert code == 2 and f"{option} {tmp_path / path}" in err and message in err, err
            assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "in.mp4"]
    assert list((tmp_path / "adir").iterdir()) == []
    code = webcam.main(["--source", str(tmp_path / "adir"), "--no-display"])
    assert code == 2 and "adir: is a folder, not a video file" in capsys.readouterr().err


def test_a_training_checkpoint_as_weights_points_to_best_npz(tmp_path, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    np.savez(tmp_path / "checkpoint.npz", **{"model/param/0.W": np.zeros(3, np.float32),
                                             "config": np.array("{}"), "state": np.array("{}")})
    code = webcam.main(["--source", str(video), "--no-display", "--weights",
                        str(tmp_path / "checkpoint.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "training checkpoint" in err and "best.npz" in err


def test_max_frames_must_be_at_least_one(tmp_path, capsys):
    video = synthetic_video(tmp_path / "in.mp4")
    for value in ("0", "-3"):
        with pytest.raises(SystemExit) as exc:
            webcam.main(["--source", str(video), "--no-display", "--max-frames", value])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"--max-frames: must be >= 1, got {value}" in err
        assert "empty video" not in err


def test_fps_shown_is_the_real_throughput_and_steady():
    # the webcam's rhythm: a full search (59 ms) every 5th frame, tracking (3.8 ms) between;
    # an average of per-frame rates showed ~200 and swung with each slow frame
    meter = webcam.FpsMeter()
    times = [1 / 17 if i % 5 == 0 else 1 / 262 for i in range(200)]
    shown = [meter.add(t) for t in times]
    true_rate = 5 / (1 / 17 + 4 / 262)
    steady = shown[webcam.FPS_WINDOW:]
    assert min(steady) > 0.9 * true_rate and max(steady) < 1.1 * true_rate
    # random frame times: still no frame-to-frame jump of more than a tenth
    rng = np.random.default_rng(0)
    shown = [meter.add(t) for t in rng.uniform(1 / 262, 1 / 17, 300)]
    steps = np.abs(np.diff(shown)) / np.array(shown[:-1])
    assert steps.max() < 0.1


def test_the_video_shows_the_smoothed_fps(tmp_path, weights, monkeypatch):
    drawn = []
    monkeypatch.setattr(webcam, "draw_fps", lambda frame, fps, scale=None: drawn.append(fps))
    video = synthetic_video(tmp_path / "in.mp4")
    rec = EmotionRecognizer(weights, detector=FakeDetector(moving_boxes(0)))
    cap, _ = webcam.open_source(str(video))
    meter, real_add = [], webcam.FpsMeter.add

    def add(self, seconds):
        meter.append(real_add(self, seconds))
        return meter[-1]

    monkeypatch.setattr(webcam.FpsMeter, "add", add)
    webcam.process_stream(cap, rec)
    cap.release()
    assert len(drawn) == N_FRAMES and drawn == meter


@pytest.mark.parametrize("flag, value, message", [
    ("--min-face", "0", "must be >= 1, got 0"),
    ("--detect-size", "-1", "must be >= 0, got -1"),
])
def test_out_of_range_options_are_refused_by_argparse(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        webcam.main(["--source", "clip.mp4", "--no-display", flag, value])
    assert exc.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err
