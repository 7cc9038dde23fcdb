"""Face detection and the crop -> 48x48 step (emotion.faces).

Tests that need a real face for the Haar cascade use FER2013 test faces, upscaled and
placed on larger canvases; they skip when the data folder is missing (as in CI).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from face_helpers import FER_TEST, FakeDetector, fer_face_files, place_faces

import emotion.faces as faces_module
from emotion.faces import (
    DetectorError,
    FaceDetector,
    HaarDetector,
    TrackingDetector,
    YuNetDetector,
    crop_face,
    crop_faces,
    eye_angle,
    find_eyes,
    iou,
    make_detector,
    make_video_detector,
    square_box,
    stretch_levels,
    suppress_overlaps,
    to_bgr,
    to_gray,
)


# ------------------------------------------------------------------------------- to_gray
def test_to_gray_accepts_gray_bgr_bgra_and_other_depths():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    bgr = np.dstack([gray] * 3)
    bgra = np.dstack([gray] * 3 + [np.full_like(gray, 255)])
    for image in (gray, gray[:, :, None], bgr, bgra):
        out = to_gray(image)
        assert out.dtype == np.uint8 and out.shape == (20, 30)
        np.testing.assert_array_equal(out, gray)  # equal channels convert back exactly
    np.testing.assert_array_equal(to_gray(gray.astype(np.uint16) * 257), gray)
    np.testing.assert_array_equal(to_gray(gray / 255.0), gray)
    assert to_bgr(gray).shape == (20, 30, 3)


@pytest.mark.parametrize("shape", [(0, 0), (0, 10, 3), (10, 0)])
def test_to_gray_rejects_empty_images(shape):
    with pytest.raises(ValueError, match="empty"):
        to_gray(np.zeros(shape, np.uint8))


def test_to_gray_rejects_odd_shapes():
    with pytest.raises(ValueError, match="unsupported image shape"):
        to_gray(np.zeros((4, 4, 2), np.uint8))


# --------------------------------------------------------------------------------- crops
def test_crop_of_a_whole_48px_face_with_no_margin_is_the_face_itself():
    # The FER case: a tight 48x48 crop must reach the network unchanged.
    face = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(crop_face(face, (0, 0, 48, 48), margin=0.0), face)


def test_crop_is_square_centred_and_keeps_the_aspect_ratio():
    assert square_box((10, 20, 40, 80), margin=0.0) == (-10, 20, 80)
    assert square_box((0, 0, 100, 100), margin=0.1) == (-10, -10, 120)
    # A bright square in a tall box stays a square (not stretched) after cropping.
    img = np.zeros((200, 200), np.uint8)
    img[80:120, 80:120] = 255
    crop = crop_face(img, (80, 40, 40, 120), margin=0.0)  # 40 wide, 120 tall, same centre
    cols = np.flatnonzero(crop[24] > 127)
    rows = np.flatnonzero(crop[:, 24] > 127)
    assert abs(len(cols) - len(rows)) <= 1 and 14 <= len(cols) <= 18  # 40/120*48 = 16


def test_crop_at_the_border_is_padded_by_edge_replication():
    img = np.tile(np.arange(100, 200, dtype=np.uint8), (100, 1))  # value = 100 + column
    crop = crop_face(img, (0, 0, 48, 48), margin=0.5)  # 96 px square from -24 to 72
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # The left quarter (24 of 96 px -> 12 of 48) lies outside the image: it must be
    # replicated column 0 (100), not black (0) or mirrored (values would rise).
    assert (crop[:, :11] == 100).all()
    assert crop[:, -1].min() > 160


def test_crop_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        crop_face(np.zeros((50, 50), np.uint8), (100, 100, 20, 20), margin=0.0)


def test_crop_faces_stacks_and_accepts_colour():
    img = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = crop_faces(img, [(0, 0, 60, 60), (70, 30, 90, 90)])
    assert out.shape == (2, 48, 48) and out.dtype == np.uint8
    assert crop_faces(img, []).shape == (0, 48, 48)
    small = crop_face(img, (5, 5, 20, 20))  # enlarged: still 48x48
    assert small.shape == (48, 48)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


# ----------------------------------------------------------------------------- detectors
def test_haar_is_the_default_and_finds_nothing_in_a_blank_image():
    detector = make_detector()
    assert isinstance(detector, HaarDetector) and isinstance(detector, FaceDetector)
    assert detector.detect(np.full((240, 320), 128, np.uint8)) == []
    assert detector.detect(np.full((240, 320, 3), 200, np.uint8)) == []


def test_haar_min_size_larger_than_the_image_finds_nothing():
    # 10**14 does not fit OpenCV's int minSize: it must not reach detectMultiScale
    image = np.full((240, 320), 128, np.uint8)
    for min_size in (241, 10**14):
        detector = HaarDetector(min_size=min_size, max_side=None)
        assert detector.detect(image) == []
        assert detector.detect_near(image, [(10, 10, 100, 100)]) == []


def test_haar_rejects_a_bad_scale_factor():
    with pytest.raises(ValueError, match="scale_factor"):
        HaarDetector(scale_factor=1.0)


def test_yunet_missing_or_bad_model_file_gives_a_clear_error(tmp_path):
    missing = tmp_path / "yunet.onnx"
    with pytest.raises(FileNotFoundError, match="yunet.onnx"):
        YuNetDetector(missing)
    with pytest.raises(FileNotFoundError, match="yunet.onnx"):
        make_detector(yunet=missing)
    missing.write_bytes(b"this is not an onnx model")
    with pytest.raises(ValueError, match="YuNet"):
        YuNetDetector(missing)


def test_haar_rejects_a_bad_equalize_setting():
    with pytest.raises(ValueError, match="equalize"):
        HaarDetector(equalize="sometimes")


# ------------------------------------------------------- verification, levels, alignment
def test_stretch_levels_leaves_full_range_images_alone_and_stretches_dark_ones():
    full = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    assert stretch_levels(full) is full
    dark = (full // 4 + 10).astype(np.uint8)  # 10..73
    out = stretch_levels(dark)
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0)  # order kept
    flat = np.full((5, 5), 77, np.uint8)
    np.testing.assert_array_equal(stretch_levels(flat), flat)


def test_suppress_overlaps_keeps_the_best_of_nested_or_overlapping_boxes():
    face, nested, shifted = (100, 100, 80, 80), (110, 115, 50, 50), (120, 100, 80, 80)
    neighbour = (190, 100, 80, 80)  # side by side, 10 px apart: another face
    kept = suppress_overlaps([(5, nested), (40, face), (30, shifted), (20, neighbour)])
    assert kept == [face, neighbour]
    # The score decides which of two overlapping boxes stays.
    assert suppress_overlaps([(50, shifted), (40, face)]) == [shifted]
    assert suppress_overlaps([]) == []


class _FakeCascade:
    """Stands in for a cv2.CascadeClassifier: fixed hits, whatever the image."""

    def __init__(self, hits):
        self.hits = np.array(hits, np.int32).reshape(-1, 4)
        self.images = []

    def detectMultiScale(self, image, *args, **kwargs):  # noqa: N802 (OpenCV's name)
        self.images.append(image)
        return self.hits


def test_find_eyes_keeps_only_eyes_where_eyes_belong(monkeypatch):
    # Hits in the 128-px face patch: a left and a right eye, one on the midline (a nose or
    # a dog's collar), one too low, one too small.
    hits = [(24, 32, 32, 32), (74, 36, 32, 32), (54, 30, 20, 20), (20, 66, 24, 24),
            (90, 40, 8, 8)]
    monkeypatch.setitem(faces_module._CASCADES, faces_module.EYE_CASCADE, _FakeCascade(hits))
    eyes = find_eyes(np.zeros((200, 200), np.uint8), (50, 50, 100, 100))
    assert eyes == [(0.3125, 0.375, 0.25), (0.703125, 0.40625, 0.25)]


def test_eye_angle_takes_the_most_level_pair_and_refuses_steep_ones(monkeypatch):
    gray, box = np.zeros((100, 100), np.uint8), (0, 0, 100, 100)
    def with_eyes(eyes):
        monkeypatch.setattr(faces_module, "find_eyes", lambda g, b: eyes)
        return eye_angle(gray, box)
    # Right eye 0.1 lower than the left, 0.4 apart: atan(0.25) = 14.0 degrees.
    assert with_eyes([(0.3, 0.3, 0.2), (0.7, 0.4, 0.2)]) == pytest.approx(14.036, abs=1e-3)
    assert with_eyes([(0.3, 0.4, 0.2), (0.7, 0.3, 0.2)]) == pytest.approx(-14.036, abs=1e-3)
    # Two candidates for the right eye: the more level pair wins.
    assert with_eyes([(0.3, 0.3, 0.2), (0.7, 0.5, 0.2), (0.7, 0.32, 0.2)]) == pytest.approx(
        np.degrees(np.arctan2(0.02, 0.4)))
    assert with_eyes([(0.3, 0.25, 0.2), (0.7, 0.5, 0.2)]) is None  # 32 degrees: not trusted
    assert with_eyes([(0.3, 0.3, 0.2)]) is None  # one eye
    assert with_eyes([(0.2, 0.3, 0.2), (0.35, 0.3, 0.2)]) is None  # both on one side


def _two_dots(left_y: int, right_y: int) -> np.ndarray:
    img = np.zeros((200, 200), np.uint8)
    cv2.circle(img, (70, left_y), 6, 255, -1)
    cv2.circle(img, (130, right_y), 6, 255, -1)
    return img


def _dot_rows(crop: np.ndarray) -> tuple[float, float]:
    """Row of the bright blob's centre in the left and in the right half of a crop."""
    rows = np.arange(crop.shape[0])[:, None]
    halves = crop[:, : crop.shape[1] // 2], crop[:, crop.shape[1] // 2:]
    return tuple(float((rows * h).sum() / h.sum()) for h in halves)


def test_crop_face_turned_by_the_eye_angle_levels_the_eyes():
    img = _two_dots(80, 110)  # the right "eye" 30 px lower, 60 px apart: 26.6 degrees
    box = (50, 50, 100, 100)
    angle = float(np.degrees(np.arctan2(30, 60)))
    left, right = _dot_rows(crop_face(img, box, margin=0.0))
    assert right - left > 10  # as cut: tilted
    left, right = _dot_rows(crop_face(img, box, margin=0.0, angle=angle))
    assert abs(right - left) < 0.5  # turned: level
    left, right = _dot_rows(crop_face(img, box, margin=0.0, angle=-angle))
    assert right - left > 20  # the other way doubles the tilt
    # The turned crop keeps the framing: the eyes' midpoint stays at the same place.
    assert (left + right) / 2 == pytest.approx(sum(_dot_rows(crop_face(img, box, 0.0))) / 2,
                                               abs=1.0)
    assert np.array_equal(crop_face(img, box, angle=0.0), crop_face(img, box))


def test_crop_faces_aligns_only_when_asked(monkeypatch):
    img = _two_dots(80, 110)
    calls = []
    monkeypatch.setattr(faces_module, "eye_angle",
                        lambda g, b: calls.append(b) or float(np.degrees(np.arctan2(30, 60))))
    plain = crop_faces(img, [(50, 50, 100, 100)], margin=0.0)
    assert calls == []
    aligned = crop_faces(img, [(50, 50, 100, 100)], margin=0.0, align=True)
    assert calls == [(50, 50, 100, 100)]
    assert abs(np.subtract(*_dot_rows(aligned[0]))) < 0.5 < abs(np.subtract(*_dot_rows(plain[0])))


def _scripted_haar(monkeypatch, support: dict, eyes: set, **kwargs) -> HaarDetector:
    """A HaarDetector whose search returns the boxes in ``support`` (in the shrunk copy's
    pixels) and whose checks are scripted: face_support -> support[box], find_eyes ->
    one eye for boxes in ``eyes``."""
    detector = HaarDetector(max_side=None, min_size=10, min_fraction=0, **kwargs)
    monkeypatch.setattr(detector, "_search",
                        lambda img, lo, hi=None: np.array(list(support), float).reshape(-1, 4))
    monkeypatch.setattr(faces_module, "face_support",
                        lambda g, b: support[tuple(int(v) for v in b)])
    monkeypatch.setattr(faces_module, "find_eyes",
                        lambda g, b: [(0.3, 0.4, 0.2)] if tuple(int(v) for v in b) in eyes
                        else [])
    return detector


def test_haar_keeps_candidates_with_support_or_an_eye_and_drops_overlaps(monkeypatch):
    strong, eyed, weak = (10, 10, 60, 60), (100, 10, 60, 60), (200, 10, 60, 60)
    nested = (20, 20, 40, 40)  # inside the strong one, also strong: suppressed
    support = {strong: 80, eyed: 5, weak: 20, nested: 50}
    image = np.zeros((120, 300), np.uint8)
    detector = _scripted_haar(monkeypatch, support, eyes={eyed})
    assert detector.detect(image) == [strong, eyed]
    # verify=False reports every candidate as before.
    unchecked = _scripted_haar(monkeypatch, support, eyes={eyed}, verify=False)
    assert unchecked.detect(image) == sorted(support)


def test_haar_equalises_only_when_the_plain_image_gives_no_face(monkeypatch):
    image = np.tile(np.arange(0, 250, 2, dtype=np.uint8), (120, 1))  # not equalised already
    searched = []

    def run(equalize, found_in_plain):
        detector = HaarDetector(max_side=None, min_size=10, min_fraction=0, equalize=equalize,
                                stretch=False)
        plain = image.copy()

        def search(img, lo, hi=None):
            is_plain = np.array_equal(img, plain)
            searched.append("plain" if is_plain else "equalised")
            hit = found_in_plain == is_plain
            return np.array([[10, 10, 60, 60]] if hit else [], float).reshape(-1, 4)

        monkeypatch.setattr(detector, "_search", search)
        monkeypatch.setattr(faces_module, "face_support", lambda g, b: 99)
        searched.clear()
        return detector, detector.detect(image)

    detector, boxes = run("auto", found_in_plain=True)
    assert boxes == [(10, 10, 60, 60)] and searched == ["plain"]
    detector, boxes = run("auto", found_in_plain=False)
    assert boxes == [(10, 10, 60, 60)] and searched == ["plain", "equalised"]
    # Between full searches a video looks near its faces in the image that found them.
    searched.clear()
    detector.detect_near(image, boxes)
    assert searched == ["equalised"]
    _, boxes = run(True, found_in_plain=False)
    assert searched == ["equalised"]
    _, boxes = run(False, found_in_plain=False)
    assert boxes == [] and searched == ["plain"]


# ----------------------------------------------------------- real faces (FER2013 folder)
needs_fer = pytest.mark.skipif(not FER_TEST.is_dir(),
                               reason=f"FER2013 test faces not found at {FER_TEST} "
                                      f"(set FER2013_DIR to run the real-face tests)")


@needs_fer
def test_haar_finds_most_single_upscaled_fer_faces():
    detector = HaarDetector()
    files = fer_face_files(12, stride=97)
    found = 0
    for f in files:
        canvas, boxes = place_faces([f], size=180, canvas=(360, 480))
        found += any(iou(b, boxes[0]) > 0.5 for b in detector.detect(canvas))
    assert found >= 8, f"only {found}/12 faces found"


@needs_fer
def test_haar_finds_three_placed_faces_where_they_were_placed():
    detector = HaarDetector()
    files = _detectable(detector, 3)
    canvas, placed = place_faces(files, size=170, canvas=(300, 640))
    found = detector.detect(canvas)
    assert len(found) == 3, found
    for want, got in zip(placed, found):  # both are left to right
        assert iou(want, got) > 0.5, (want, got)
    # Colour input gives the same boxes.
    assert detector.detect(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)) == found


@needs_fer
def test_largest_only_and_min_size_filter_faces():
    files = _detectable(HaarDetector(), 2)
    canvas = np.full((400, 640), 128, np.uint8)
    big, small = (60, 60, 200, 200), (380, 120, 110, 110)
    for f, (x, y, w, _) in zip(files, (big, small)):
        canvas[y:y + w, x:x + w] = cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (w, w),
                                              interpolation=cv2.INTER_CUBIC)
    assert len(HaarDetector().detect(canvas)) == 2
    (only,) = HaarDetector(largest_only=True).detect(canvas)
    assert iou(only, big) > 0.5
    (kept,) = HaarDetector(min_size=160).detect(canvas)
    assert iou(kept, big) > 0.5


def _detectable(detector: HaarDetector, n: int) -> list[Path]:
    """The first n FER test faces (in a fixed order) that the detector finds when alone, so
    that multi-face tests check placement and separation, not the cascade's recall."""
    chosen = []
    for f in fer_face_files(40, stride=53):
        canvas, (box,) = place_faces([f], size=170, canvas=(300, 300))
        if any(iou(b, box) > 0.5 for b in detector.detect(canvas)):
            chosen.append(f)
            if len(chosen) == n:
                return chosen
    pytest.skip(f"fewer than {n} detectable faces among the sampled FER2013 files")


# ------------------------------------------------- YuNet wrapper, with a fake FaceDetectorYN
# No YuNet .onnx model can be downloaded here, so these tests replace
# cv2.FaceDetectorYN.create with a fake network that returns fixed rows in YuNet's output
# format and records what the wrapper asked of it. They test our wrapper, not YuNet.
def yunet_row(x: float, y: float, w: float, h: float, score: float = 0.95) -> list[float]:
    """One YuNet output row: x, y, w, h, five landmarks (x, y), score."""
    eyes_y, nose_y, mouth_y = y + 0.35 * h, y + 0.55 * h, y + 0.75 * h
    return [x, y, w, h, x + 0.3 * w, eyes_y, x + 0.7 * w, eyes_y, x + 0.5 * w, nose_y,
            x + 0.35 * w, mouth_y, x + 0.65 * w, mouth_y, score]


class FakeYuNet:
    """Stands in for the object cv2.FaceDetectorYN.create returns.

    ``detect`` checks, as OpenCV does, that the image is BGR uint8 of the size last given to
    ``setInputSize``, and returns ``(retval, rows or None)``.
    """

    def __init__(self, rows: list[list[float]] | None) -> None:
        self.rows = None if rows is None else np.array(rows, np.float32).reshape(-1, 15)
        self.input_sizes: list[tuple[int, int]] = []
        self.images: list[np.ndarray] = []

    def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802 (OpenCV's name)
        self.input_sizes.append(tuple(size))

    def detect(self, image: np.ndarray) -> tuple[int, np.ndarray | None]:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert self.input_sizes and (image.shape[1], image.shape[0]) == self.input_sizes[-1]
        self.images.append(image.copy())
        return (0 if self.rows is None else len(self.rows)), self.rows


@pytest.fixture
def fake_yunet(monkeypatch, tmp_path):
    """make(rows, **kwargs) -> (YuNetDetector, FakeYuNet, create's arguments)."""
    model = tmp_path / "face_detection_yunet_fake.onnx"
    model.write_bytes(b"")  # the constructor only checks that the file exists
    made: list[tuple] = []

    def make(rows, **kwargs):
        fake = FakeYuNet(rows)

        def create(*args):
            made.append(args)
            return fake

        monkeypatch.setattr(faces_module.cv2.FaceDetectorYN, "create", create)
        return YuNetDetector(model, **kwargs), fake, made[-1]

    make.model = model
    return make


def test_yunet_model_that_fails_to_run_gives_a_clear_error(fake_yunet):
    detector, fake, _ = fake_yunet([])

    def broken(image):
        raise cv2.error("OpenCV(4.x) convolution_layer.cpp: error: (-215:Assertion failed) "
                        "ngroups > 0")

    fake.detect = broken  # an .onnx file that loads but is not YuNet fails only here
    with pytest.raises(DetectorError, match="face_detection_yunet_fake.onnx: OpenCV could "
                                            "not run this as a YuNet"):
        detector.detect(np.zeros((60, 80, 3), np.uint8))


def test_yunet_boxes_are_ints_clipped_to_the_image_and_sorted(fake_yunet):
    rows = [yunet_row(150.4, 20.6, 60.2, 70.7),   # inside: rounded corners
            yunet_row(-10.0, 150.0, 80.0, 90.0),  # pokes out left and bottom: clipped
            yunet_row(400.0, 10.0, 50.0, 50.0),   # wholly right of the image: dropped
            yunet_row(250.0, -60.0, 40.0, 50.0)]  # wholly above the image: dropped
    detector, fake, args = fake_yunet(rows, score_threshold=0.6, nms_threshold=0.4, top_k=7,
                                      min_size=20)
    assert args == (str(fake_yunet.model), "", (320, 320), 0.6, 0.4, 7)
    found = detector.detect(np.zeros((200, 300, 3), np.uint8))  # H 200, W 300
    # Corners are rounded, then clipped: (150.4, 20.6)-(210.6, 91.3) -> (150, 21)-(211, 91);
    # (-10, 150)-(70, 240) -> (0, 150)-(70, 200). Sorted left to right.
    assert found == [(0, 150, 70, 50), (150, 21, 61, 70)]
    assert all(type(v) is int for box in found for v in box)


def test_yunet_min_size_filter(fake_yunet):
    rows = [yunet_row(10, 10, 30, 34), yunet_row(60, 10, 50, 44), yunet_row(130, 10, 70, 80)]
    image = np.zeros((400, 600, 3), np.uint8)
    detector, _, _ = fake_yunet(rows, min_size=40, min_fraction=0.0)
    assert detector.detect(image) == [(60, 10, 50, 44), (130, 10, 70, 80)]  # max(w, h) >= 40
    detector, _, _ = fake_yunet(rows, min_size=10, min_fraction=0.2)  # 0.2 * 400 = 80 px
    assert detector.detect(image) == [(130, 10, 70, 80)]


def test_yunet_largest_only_keeps_the_largest_face(fake_yunet):
    rows = [yunet_row(300, 50, 60, 60), yunet_row(20, 40, 120, 130), yunet_row(160, 60, 90, 90)]
    detector, _, _ = fake_yunet(rows, largest_only=True)
    assert detector.detect(np.zeros((300, 400, 3), np.uint8)) == [(20, 40, 120, 130)]


def test_yunet_gets_bgr_input_of_the_frame_size(fake_yunet):
    detector, fake, _ = fake_yunet([yunet_row(20, 20, 60, 60)], min_size=10)
    gray = np.random.default_rng(3).integers(0, 256, (120, 160), dtype=np.uint8)
    assert detector.detect(gray) == [(20, 20, 60, 60)]
    assert fake.input_sizes == [(160, 120)]  # (width, height), not the 320x320 placeholder
    (seen,) = fake.images
    assert seen.shape == (120, 160, 3)
    for c in range(3):  # gray -> BGR: every channel is the gray image
        np.testing.assert_array_equal(seen[:, :, c], gray)
    detector.detect(gray)  # same size: the input size is not set again
    detector.detect(np.zeros((90, 100, 4), np.uint8))  # BGRA of another size: set again
    assert fake.input_sizes == [(160, 120), (100, 90)]
    assert fake.images[-1].shape == (90, 100, 3)


def test_yunet_detects_on_a_shrunk_copy_and_scales_boxes_back(fake_yunet):
    # 640x480 with max_side 320: YuNet sees 320x240 and its boxes are doubled.
    detector, fake, _ = fake_yunet([yunet_row(50, 40, 30, 31)], max_side=320)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == [(100, 80, 60, 62)]
    assert fake.input_sizes == [(320, 240)]
    # The min-size filter applies in the full frame's pixels: a 16-px box there is 32 px
    # here, under the default 36 px (it would pass if the filter saw the shrunk copy).
    detector, _, _ = fake_yunet([yunet_row(50, 40, 16, 16)], max_side=320)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []


@pytest.mark.parametrize("rows", [None, []])
def test_yunet_no_faces_gives_an_empty_list(fake_yunet, rows):
    detector, fake, _ = fake_yunet(rows)
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert len(fake.images) == 1


def test_make_detector_passes_its_settings_to_yunet(fake_yunet):
    fake_yunet([])  # installs the fake create
    detector = make_detector(yunet=fake_yunet.model, min_size=30, largest_only=True,
                             max_side=500, scale_factor=1.3)
    assert isinstance(detector, YuNetDetector) and isinstance(detector, FaceDetector)
    assert (detector.min_size, detector.largest_only, detector.max_side) == (30, True, 500)


# ------------------------------------------------------- video: search near the last faces
class NearDetector:
    """A fake detector with ``detect_near``: each call returns the next list of boxes of
    its own script and logs which method ran, so tests can check TrackingDetector's
    choice of full and local searches."""

    def __init__(self, full: list[list[tuple]], near: list[list[tuple]]) -> None:
        self.full, self.near, self.log = list(full), list(near), []

    def detect(self, image):
        self.log.append("full")
        return self.full.pop(0)

    def detect_near(self, image, boxes):
        self.log.append(("near", list(boxes)))
        return self.near.pop(0)


A, B = (10, 10, 60, 60), (100, 20, 60, 60)


def test_tracking_searches_in_full_every_nth_frame_and_near_the_faces_between():
    inner = NearDetector(full=[[A], [B]], near=[[A]] * 3 + [[B]] * 2)
    tracker = TrackingDetector(inner, rescan_every=4)
    frame = np.zeros((120, 200), np.uint8)
    got = [tracker.detect(frame) for _ in range(7)]
    assert inner.log == ["full", ("near", [A]), ("near", [A]), ("near", [A]),
                         "full", ("near", [B]), ("near", [B])]
    assert got == [[A]] * 4 + [[B]] * 3
    assert (tracker.frames, tracker.full_searches) == (7, 2)


def test_tracking_falls_back_to_a_full_search_when_a_face_is_lost():
    # Two faces; the local search finds only one: the same frame is searched in full.
    inner = NearDetector(full=[[A, B], [A, B]], near=[[A], [A, B]])
    tracker = TrackingDetector(inner, rescan_every=5)
    frame = np.zeros((120, 200), np.uint8)
    assert tracker.detect(frame) == [A, B]
    assert tracker.detect(frame) == [A, B]  # near found 1 of 2 -> full search, same frame
    assert tracker.detect(frame) == [A, B]  # near, given both faces again
    assert inner.log == ["full", ("near", [A, B]), "full", ("near", [A, B])]


def test_tracking_searches_in_full_with_no_faces_and_after_a_frame_size_change():
    inner = NearDetector(full=[[], [A], [A]], near=[[A]])
    tracker = TrackingDetector(inner, rescan_every=10)
    assert tracker.detect(np.zeros((120, 200), np.uint8)) == []
    assert tracker.detect(np.zeros((120, 200), np.uint8)) == [A]  # nothing to track: full
    assert tracker.detect(np.zeros((120, 200), np.uint8)) == [A]  # near
    assert tracker.detect(np.zeros((240, 400), np.uint8)) == [A]  # another video: full
    assert inner.log == ["full", "full", ("near", [A]), "full"]
    tracker.reset()
    with pytest.raises(IndexError):  # reset forgets the faces: the next call is "full"
        tracker.detect(np.zeros((240, 400), np.uint8))


def test_tracking_rescan_every_1_and_detectors_without_detect_near_search_in_full():
    inner = NearDetector(full=[[A]] * 3, near=[])
    tracker = TrackingDetector(inner, rescan_every=1)
    for _ in range(3):
        assert tracker.detect(np.zeros((120, 200), np.uint8)) == [A]
    assert inner.log == ["full"] * 3
    plain = FakeDetector([A])
    tracker = TrackingDetector(plain)
    for _ in range(3):
        tracker.detect(np.zeros((120, 200), np.uint8))
    assert plain.calls == 3
    with pytest.raises(ValueError, match="rescan_every"):
        TrackingDetector(plain, rescan_every=0)


@needs_fer
def test_haar_detect_near_follows_moving_faces_like_a_full_search():
    detector = make_video_detector()
    files = _detectable(detector, 2)
    rng = np.random.default_rng(0)
    background = np.clip(rng.normal(128, 6, (480, 640)), 0, 255).astype(np.uint8)
    faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    tracker = TrackingDetector(detector, rescan_every=5)
    for t in range(10):  # two faces drifting apart, 4 and 6 px a frame
        frame = background.copy()
        placed = [(60 + 4 * t, 120 + 2 * t, 170, 170), (380 + 6 * t, 100, 150, 150)]
        for face, (x, y, w, _) in zip(faces, placed):
            frame[y:y + w, x:x + w] = cv2.resize(face, (w, w), interpolation=cv2.INTER_CUBIC)
        found = tracker.detect(frame)
        assert len(found) == 2, (t, found)
        for want, got in zip(placed, found):
            assert iou(want, got) > 0.5, (t, want, got)
    assert tracker.full_searches == 2  # frames 0 and 5: the faces were never lost
    # Only faces near the given boxes are looked for, at sizes near theirs.
    assert detector.detect_near(frame, [found[0]]) == [found[0]] or \
        iou(detector.detect_near(frame, [found[0]])[0], found[0]) > 0.7
    assert detector.detect_near(frame, [(60, 300, 60, 60)]) == []  # empty corner region
    assert detector.detect_near(frame, []) == []
