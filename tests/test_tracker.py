"""FaceTracker (one face is one track) and the timeline figure (shared time axis, short
tracks left out), with scripted boxes: no video, no model."""

from __future__ import annotations

import numpy as np
import pytest

import emotion.webcam as webcam
from emotion.labels import CLASSES


def onehot(k: int) -> np.ndarray:
    p = np.zeros(len(CLASSES))
    p[k] = 1.0
    return p


def test_tracker_drops_a_second_box_on_a_known_face():
    tracker = webcam.FaceTracker()
    face, other = (100, 100, 120, 120), (300, 100, 100, 100)
    tracker.update([face, other], np.stack([onehot(3), onehot(5)]))
    # A second, smaller box on the first face (IoU 0.25, centre inside) in a later frame:
    # no third track, and the returned list holds the real faces only.
    inner = (130, 130, 60, 60)
    tracks = tracker.update([face, inner, other], np.stack([onehot(3), onehot(0), onehot(5)]))
    assert [t.id for t in tracks] == [0, 1] and tracker.suppressed == 1
    assert [t.id for t in tracker.tracks] == [0, 1]
    np.testing.assert_allclose(tracks[0].probs, onehot(3))  # the dropped box's scores unused
    # Two overlapping boxes for a face that appears: one new track, not two.
    fresh = webcam.FaceTracker()
    tracks = fresh.update([(10, 10, 100, 100), (20, 15, 90, 90)], np.stack([onehot(1)] * 2))
    assert [t.id for t in tracks] == [0] and fresh.suppressed == 1


def test_tracker_continues_a_face_that_jumped_within_its_box():
    tracker = webcam.FaceTracker()
    (first,) = tracker.update([(100, 100, 120, 120)], onehot(2)[None])
    # Much smaller and shifted (IoU 0.17 < 0.3), its centre still inside the old box.
    (same,) = tracker.update([(150, 140, 50, 50)], onehot(2)[None])
    assert same.id == first.id and len(tracker.tracks) == 1


def test_timeline_leaves_out_short_tracks_and_shares_the_time_axis():
    history = {0: [(0.1 * i, onehot(3)) for i in range(30)],       # 2.9 s
               1: [(1.0, onehot(0))],                               # one point
               2: [(0.5 + 0.1 * i, onehot(5)) for i in range(9)],   # 0.8 s
               4: [(1.0 + 0.1 * i, onehot(6)) for i in range(15)]}  # 1.4 s
    fig = webcam.timeline_figure(history)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["face #0", "face #4"]
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    assert axes[0].get_xlim() == axes[1].get_xlim() == pytest.approx((0.0, 2.9))
    assert "2 track(s) shorter than 1 s left out" in axes[-1].get_xlabel()
    # Only short tracks: one panel that says so.
    (ax,) = webcam.timeline_figure({1: [(1.0, onehot(0))]}).axes
    assert "no face tracked for 1 s or more (1 shorter track(s) left out)" in ax.texts[0].get_text()
