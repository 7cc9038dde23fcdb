"""python -m emotion.webcam: live emotions from a camera or a video file.

    python -m emotion.webcam                                   # camera 0, live window
    python -m emotion.webcam --source talk.mp4 --no-display \\
        --output talk_annotated.mp4 --csv talk.csv --timeline talk.png

Each frame: detect faces -> classify them in one batch -> match them to the faces of the
previous frames with a greedy IoU tracker -> smooth each face's probabilities over time ->
draw boxes, labels, probability bars and the measured FPS (frames over the processing
time of the last ``FPS_WINDOW`` frames, so it is the real throughput and does not swing
between slow full-search frames and fast tracking ones). ``q`` or Esc quits.

Detection searches the whole frame only every ``--rescan-every`` frames (default 5) and,
in between, only around the faces it already has (``faces.TrackingDetector``): about a
sixth of the time of a full search, which is what keeps a 2-core machine above 30
frames/s. A face that is lost triggers a full search at once; a new face appears within
``--rescan-every`` frames.

Why a tracker: per-frame predictions flicker, because a face's crop shifts by a pixel or two
between frames. An exponential moving average of the probabilities steadies the label, but
it must be per face, or two people's scores would be averaged together. The tracker gives
each face an id that survives small movements and a few missed detections.

Outputs, all optional and written atomically (a temp file renamed at the end):
--output  annotated video (mp4v), the source's size and frame rate (25 when unknown);
--csv     ``frame,time_s,face_id,x,y,w,h,label,score,angry,...,surprise`` per frame and
          visible face, with the smoothed probabilities (the ones drawn) and their most
          probable class and its probability (as in emotion.predict's CSV);
--timeline  a PNG of each face's smoothed probabilities over time, one subplot per face.

Without a display (no $DISPLAY on Linux, or cv2.imshow failing) it runs headless.
Exit status 2 when the camera or file cannot be opened, the weights cannot be loaded, or an
output cannot be written or would replace an input (checked before the first frame).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emotion.backends import BACKENDS, use_backend
from emotion.cli import Bounded, is_interrupt, not_a_file, path_text
from emotion.draw import draw_face, draw_fps, ui_scale
from emotion.faces import (
    DEFAULT_MIN_SIZE,
    TRACK_RESCAN_EVERY,
    VIDEO_MAX_SIDE,
    Box,
    TrackingDetector,
    iou,
    make_video_detector,
)
from emotion.labels import CLASSES
from emotion.outputs import (
    check_writable,
    same_file,
    save_figure_atomically,
    training_checkpoint_hint,
)
from emotion.recognizer import DEFAULT_WEIGHTS, EmotionRecognizer
from minicnn.threads import set_num_threads

EXIT_USER_ERROR = 2
FALLBACK_FPS = 25.0
FPS_WINDOW = 30  # frames the displayed FPS is measured over
CSV_HEADER = ["frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", *CLASSES]
WINDOW = "emotion (q or Esc quits)"


# ------------------------------------------------------------------------------- tracker
@dataclass
class Track:
    """One face followed over frames.

    Attributes
    ----------
    id : stable id, 0, 1, 2, ... in order of first appearance.
    box : last matched (x, y, w, h).
    probs : smoothed probabilities (7,) in ``CLASSES`` order.
    missed : frames in a row without a matching detection.
    """

    id: int
    box: Box
    probs: np.ndarray
    missed: int = 0


class FaceTracker:
    """Greedy IoU matching of detections to tracks, with per-track probability smoothing.

    Each frame, all (track, detection) pairs are ranked by IoU, and the best pair whose
    track and detection are both still free is matched, then the next best, and so on,
    down to ``iou_threshold`` (SORT's idea, Bewley et al. 2016, without the Kalman filter:
    at webcam frame rates a face barely moves between frames). Unmatched detections start
    new tracks; a track unmatched for more than ``max_missed`` frames in a row is dropped.

    One face is one track: an unmatched detection that overlaps a known face (IoU above
    ``iou_threshold`` or either box's centre inside the other) is not a new face. If that
    face's track found no detection this frame, the detection continues it (a face that
    moved or changed size more than IoU matching allows); if the track already has its
    detection, the second box on the same face is dropped (``suppressed`` counts them).

    Smoothing is an exponential moving average, ``p = smoothing * p + (1 - smoothing) * new``:
    ``smoothing`` is the weight of the past; 0 disables it, 0.6 halves a change's effect
    every ~1.4 frames (steady, yet quick to follow a real change in expression).
    """

    def __init__(self, smoothing: float = 0.6, iou_threshold: float = 0.3,
                 max_missed: int = 5) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing, self.iou_threshold, self.max_missed = smoothing, iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 0
        self.suppressed = 0

    def _same_face(self, a: Box, b: Box) -> bool:
        """Do two boxes cover the same face? IoU above the threshold, or a centre inside."""
        return iou(a, b) > self.iou_threshold or _centre_inside(a, b) or _centre_inside(b, a)

    def update(self, boxes: Sequence[Box], probs: np.ndarray) -> list[Track]:
        """Feed one frame's detections: boxes (M,) and their probabilities (M, 7).

        Returns the tracks matched or started this frame, in the order of ``boxes``; a box
        dropped as a second box on a known face has none, so the list can be shorter.
        """
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        track_of: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used or bi in track_of:
                continue
            used.add(ti)
            track_of[bi] = self.tracks[ti]
        # Unmatched boxes, largest first: continue a free track on the same face, drop a
        # second box on a face that already has one, else start a new face.
        dropped: set[int] = set()
        started: set[int] = set()
        for bi in sorted(set(range(len(boxes))) - set(track_of),
                         key=lambda i: -boxes[i][2] * boxes[i][3]):
            box = tuple(boxes[bi])
            free = [ti for ti, t in enumerate(self.tracks)
                    if ti not in used and self._same_face(t.box, box)]
            if free:
                ti = max(free, key=lambda i: iou(self.tracks[i].box, box))
                used.add(ti)
                track_of[bi] = self.tracks[ti]
            elif any(self._same_face(t.box, box) for t in track_of.values()):
                dropped.add(bi)
                self.suppressed += 1
            else:  # a new face starts from its own first prediction
                track_of[bi] = Track(self._next_id, box, np.asarray(probs[bi], np.float64).copy())
                self._next_id += 1
                self.tracks.append(track_of[bi])
                used.add(len(self.tracks) - 1)
                started.add(bi)
        for bi, track in track_of.items():
            if bi not in started:
                new = np.asarray(probs[bi], dtype=np.float64)
                track.box, track.missed = tuple(boxes[bi]), 0
                track.probs = self.smoothing * track.probs + (1 - self.smoothing) * new
        matched = {id(t) for t in track_of.values()}
        for track in self.tracks:
            if id(track) not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return [track_of[bi] for bi in range(len(boxes)) if bi not in dropped]


def _centre_inside(a: Box, b: Box) -> bool:
    """Is the centre of box ``a`` inside box ``b``?"""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


# ------------------------------------------------------------------------------ timeline
def plot_timeline(history: dict[int, list[tuple[float, np.ndarray]]], path: str | os.PathLike,
                  max_faces: int = 12, min_seconds: float = 1.0) -> None:
    """Write ``timeline_figure(history, max_faces, min_seconds)`` atomically, in the format
    its suffix names (PNG unless matplotlib writes that suffix: .pdf, .svg, ...)."""
    save_figure_atomically(timeline_figure(history, max_faces, min_seconds), path, dpi=100)


def timeline_figure(history: dict[int, list[tuple[float, np.ndarray]]], max_faces: int = 12,
                    min_seconds: float = 1.0):
    """Smoothed probabilities over time: one subplot per face id, a line per class.

    history : face id -> [(time_s, probs (7,)), ...].
    min_seconds : tracks seen for less than this (last time minus first) are left out: a
        brief false detection or a face passing by would otherwise get a panel of its own.
        They stay in the CSV; the figure says how many were left out.
    max_faces : with more long tracks than this, the ones seen in the most frames are drawn.
    All panels share one time axis, so faces can be compared at a glance. Returns a
    matplotlib Figure on an Agg canvas (no display, no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from emotion.draw import CLASS_COLORS

    long = [k for k, pts in history.items() if pts and pts[-1][0] - pts[0][0] >= min_seconds]
    ids = sorted(sorted(long, key=lambda k: -len(history[k]))[:max_faces])
    short = len(history) - len(long)
    rows = max(1, len(ids))
    fig = Figure(figsize=(10, 2.2 * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, squeeze=False, sharex=True)[:, 0]
    if not ids:
        axes[0].text(0.5, 0.5, f"no face tracked for {min_seconds:g} s or more"
                     + (f" ({short} shorter track(s) left out)" if short else ""),
                     ha="center", va="center")
        axes[0].set_axis_off()
    for ax, face_id in zip(axes, ids):
        times = np.array([t for t, _ in history[face_id]])
        probs = np.array([p for _, p in history[face_id]]).reshape(-1, len(CLASSES))
        for k, name in enumerate(CLASSES):
            b, g, r = CLASS_COLORS[name]
            ax.plot(times, probs[:, k], ".-" if len(times) < 30 else "-", ms=3,
                    color=(r / 255, g / 255, b / 255), label=name)
        ax.set(ylim=(0, 1), ylabel="probability", title=f"face #{face_id}")
        ax.grid(alpha=0.3)
    if ids:
        first = min(history[k][0][0] for k in ids)
        last = max(history[k][-1][0] for k in ids)
        axes[0].set_xlim(first, max(last, first + min_seconds))
        axes[-1].set_xlabel("time (s)" + (f"; {short} track(s) shorter than {min_seconds:g} s "
                                          f"left out (they are in the CSV)" if short else ""))
        axes[0].legend(loc="upper right", ncol=len(CLASSES), fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- session
class SourceError(RuntimeError):
    """The camera or video file cannot be opened or read."""


def _quiet_capture(source: str | int) -> cv2.VideoCapture:
    """cv2.VideoCapture with OpenCV's own log silenced while it probes its backends: a
    missing camera otherwise prints a screenful of WARN/ERROR lines before our message."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:  # an OpenCV build without the logging bindings
        return cv2.VideoCapture(source)
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(source)
    finally:
        log.setLogLevel(level)


def open_source(source: str | int) -> tuple[cv2.VideoCapture, bool]:
    """Open a camera index or a video file; returns (capture, is_camera).

    Raises SourceError with a message naming the source when OpenCV cannot open it.
    """
    if isinstance(source, str) and source.strip().isdigit():
        source = int(source)
    if isinstance(source, int):
        cap = _quiet_capture(source)
        if not cap.isOpened():
            raise SourceError(f"cannot open camera {source}: no such camera, or it is in use "
                              f"(try --source 1, or a video file)")
        return cap, True
    path = Path(source)
    try:
        is_file = path.is_file()
    except OSError as exc:  # a name too long, a folder that may not be searched, ...
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not is_file:
        raise SourceError(f"{path}: {not_a_file(path, 'video file')}")
    cap = _quiet_capture(str(path))
    if not cap.isOpened():
        raise SourceError(f"{path}: OpenCV cannot open this as a video")
    return cap, False


def display_available() -> bool:
    """False where an imshow window cannot appear (Linux without X/Wayland)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


@dataclass
class SessionResult:
    """What a run did: frames processed, processing FPS, and each face's smoothed history."""

    frames: int = 0
    seconds: float = 0.0
    history: dict[int, list[tuple[float, np.ndarray]]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class FpsMeter:
    """Frames per second over the last ``window`` frames: their count over their total
    time. (An average of per-frame rates, 1/dt, would be dominated by the fast frames: with
    four 4-ms tracking frames and one 59-ms full search it shows ~200 where 67 frames/s
    are really processed, and it swings with every slow frame.)"""

    def __init__(self, window: int = FPS_WINDOW) -> None:
        self.times: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> float:
        """Record one frame's processing time; returns the FPS to show."""
        self.times.append(max(seconds, 1e-6))
        return len(self.times) / sum(self.times)


def _video_temp(path: Path) -> Path:
    # Keep the suffix: VideoWriter picks the container from it.
    return path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")


def process_stream(cap: cv2.VideoCapture, recognizer: EmotionRecognizer, *,
                   is_camera: bool = False, output: str | os.PathLike | None = None,
                   csv_path: str | os.PathLike | None = None,
                   timeline: str | os.PathLike | None = None, display: bool = False,
                   max_frames: int | None = None, smoothing: float = 0.6) -> SessionResult:
    """Run the per-frame loop until the source ends, ``max_frames``, or q/Esc.

    time_s is the video's own clock for a file (frame / fps, so reruns agree) and the wall
    clock since start for a camera. Outputs are renamed into place only at the end.
    Raises SourceError when the source yields no frame at all.
    """
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    fps_out = src_fps if src_fps and 1.0 <= src_fps <= 240.0 else FALLBACK_FPS
    tracker = FaceTracker(smoothing=smoothing)
    result = SessionResult()
    writer: cv2.VideoWriter | None = None
    video_tmp = _video_temp(Path(output)) if output else None
    csv_file, csv_tmp = None, None
    if csv_path:
        csv_tmp = Path(csv_path).with_name(f".{Path(csv_path).name}.tmp")
        csv_file = open(csv_tmp, "w", newline="")  # closed in the finally below
        csv_out = csv.writer(csv_file)
        csv_out.writerow(CSV_HEADER)
    start = time.perf_counter()
    fps_meter = FpsMeter()

    def discard_outputs() -> None:
        for tmp in (video_tmp, csv_tmp):
            if tmp is not None and tmp.exists():
                tmp.unlink()

    failed = True  # until the loop ends normally
    try:
        while max_frames is None or result.frames < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            t0 = time.perf_counter()
            index = result.frames
            t_s = (t0 - start) if is_camera else index / fps_out
            faces = recognizer.analyze(frame)
            probs = np.array([[f.probabilities[c] for c in CLASSES] for f in faces])
            tracks = tracker.update([f.box for f in faces], probs.reshape(-1, len(CLASSES)))

            scale = ui_scale(frame)
            boxes = [t.box for t in tracks]
            for i, track in enumerate(tracks):
                smoothed = dict(zip(CLASSES, track.probs.tolist()))
                k = int(np.argmax(track.probs))
                draw_face(frame, track.box, CLASSES[k], float(track.probs[k]), smoothed,
                          track.id, scale, avoid=boxes[:i] + boxes[i + 1:])
                result.history.setdefault(track.id, []).append((t_s, track.probs.copy()))
                if csv_file is not None:
                    csv_out.writerow([index, f"{t_s:.3f}", track.id, *track.box, CLASSES[k],
                                      f"{track.probs[k]:.6f}",
                                      *(f"{p:.6f}" for p in track.probs)])
            # The processing rate over the last FPS_WINDOW frames (FpsMeter says why).
            draw_fps(frame, fps_meter.add(time.perf_counter() - t0), scale)

            if output:
                if writer is None:
                    h, w = frame.shape[:2]
                    Path(output).parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps_out, (w, h))
                    if not writer.isOpened():
                        raise SourceError(f"{output}: OpenCV cannot write a video here")
                writer.write(frame)
            result.frames += 1
            if display:
                try:
                    cv2.imshow(WINDOW, frame)
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27):
                        break
                    if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                        break  # the user closed the window
                except cv2.error:
                    print("no display available; continuing without a window", file=sys.stderr)
                    display = False
        failed = False
    except BaseException as exc:
        if not is_interrupt(exc):
            raise
        failed = False  # Ctrl+C is a way to quit, not a failure: keep what was made
    finally:
        result.seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
        if csv_file is not None:
            csv_file.close()
        if display:
            cv2.destroyAllWindows()
        if failed:
            discard_outputs()  # an error: leave no half-written outputs behind
    if result.frames == 0:
        discard_outputs()
        raise SourceError("the source gave no frames (an empty video, or a camera that "
                          "opened but sends nothing)")
    if writer is not None:
        os.replace(video_tmp, output)
    if csv_tmp is not None:
        os.replace(csv_tmp, csv_path)
    if timeline:
        plot_timeline(result.history, timeline)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emotion.webcam",
        description="Live facial-expression recognition on a camera or a video file.")
    p.add_argument("--source", type=path_text, default="0",
                   help="camera index (0, 1, ...) or a video file path (default 0)")
    p.add_argument("--output", type=path_text, metavar="VIDEO.mp4",
                   help="write the annotated video here")
    p.add_argument("--csv", type=path_text, metavar="FRAMES.csv",
                   help="write per-frame, per-face rows here")
    p.add_argument("--timeline", type=path_text, metavar="PNG",
                   help="write a probability-over-time plot here")
    p.add_argument("--no-display", action="store_true", help="do not open a window")
    p.add_argument("--max-frames", type=Bounded(int, low=1), metavar="N",
                   help="stop after N frames (at least 1)")
    p.add_argument("--weights", type=path_text, metavar="W",
                   help="model file (default: the shipped model)")
    p.add_argument("--yunet", type=path_text, metavar="M",
                   help="YuNet .onnx model: use it instead of Haar")
    p.add_argument("--smoothing", type=float, default=0.6,
                   help="weight of the past in the per-face moving average, 0..1 (default 0.6)")
    p.add_argument("--min-face", type=Bounded(int, low=1), default=DEFAULT_MIN_SIZE,
                   metavar="N",
                   help=f"ignore faces smaller than N pixels (default {DEFAULT_MIN_SIZE})")
    p.add_argument("--largest", action="store_true", help="track only the largest face")
    p.add_argument("--tta", choices=("none", "flip", "crops"), default="flip",
                   help="test-time augmentation (default flip, for the frame rate; none is "
                        "~2x faster, crops ~4x slower)")
    p.add_argument("--detect-size", type=Bounded(int, low=0), default=VIDEO_MAX_SIDE,
                   metavar="PX",
                   help=f"detect faces on a copy of each frame shrunk to this longer side, with "
                        f"coarser scale steps (default {VIDEO_MAX_SIDE}: several times faster "
                        f"on 640x480; 0: full frame, finer steps, for small or distant faces)")
    p.add_argument("--rescan-every", type=int, default=TRACK_RESCAN_EVERY, metavar="N",
                   help=f"search the whole frame for faces every N frames and only around the "
                        f"known faces in between (default {TRACK_RESCAN_EVERY}; 1: search every "
                        f"frame in full, slower)")
    p.add_argument("--backend", choices=BACKENDS, default="minicnn",
                   help="what runs the network: minicnn (default) or opencv-dnn (the same "
                        "model exported to ONNX on the fly and run by OpenCV; needs onnx)")
    return p


def output_conflict(source: str, outputs: dict[str, str | None],
                    inputs: dict[str, str | os.PathLike | None] | None = None) -> str | None:
    """A message when an output would replace the source video, another input file
    (``inputs``: option -> path, e.g. the weights) or another output (the same file by any
    spelling or link: ``same_file``), else None. ``outputs``: option -> path."""
    given = [(opt, path) for opt, path in outputs.items() if path]
    is_file = not source.strip().isdigit()  # a camera index has no file to protect
    for i, (opt, path) in enumerate(given):
        if is_file and same_file(path, source):
            return (f"{opt} {path} is the source video (--source {source}): writing it would "
                    f"replace the video; choose another path")
        for in_opt, in_path in (inputs or {}).items():
            if in_path and same_file(path, in_path):
                return (f"{opt} {path} is the {in_opt} file ({in_path}): writing it would "
                        f"replace it; choose another path")
        for other, other_path in given[:i]:
            if same_file(path, other_path):
                return f"{other} and {opt} name the same file ({path}); give each its own path"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)
    outputs = {"--output": args.output, "--csv": args.csv, "--timeline": args.timeline}
    conflict = output_conflict(args.source, outputs,
                               {"--weights": args.weights or DEFAULT_WEIGHTS,
                                "--yunet": args.yunet})
    if conflict:
        print(f"error: {conflict}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not 0.0 <= args.smoothing < 1.0:
        print(f"error: --smoothing must be in [0, 1), got {args.smoothing}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.rescan_every < 1:
        print(f"error: --rescan-every must be at least 1, got {args.rescan_every}",
              file=sys.stderr)
        return EXIT_USER_ERROR
    # Open the source first: "no camera" is the likeliest mistake and the cheapest to check.
    try:
        cap, is_camera = open_source(args.source)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:  # a folder in an output's place or an unwritable folder: say so before the run
        for opt, path in outputs.items():
            if path:
                check_writable(path, opt)
    except OSError as exc:
        cap.release()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    # One thread for the network: a frame's few faces are small GEMMs, and OpenBLAS's
    # waiting threads would otherwise compete with OpenCV's detector for the cores
    # (benchmarks README, "The application's choices").
    set_num_threads(1)
    try:
        detector = TrackingDetector(make_video_detector(args.yunet, args.min_face, args.largest,
                                                        detect_size=args.detect_size),
                                    rescan_every=args.rescan_every)
        recognizer = EmotionRecognizer(args.weights, detector=detector, tta=args.tta,
                                       min_face_size=args.min_face, largest_only=args.largest)
        use_backend(recognizer, args.backend)
        display = not args.no_display and display_available()
        if not args.no_display and not display:
            print("no display found ($DISPLAY is unset); running headless", file=sys.stderr)
        result = process_stream(cap, recognizer, is_camera=is_camera, output=args.output,
                                csv_path=args.csv, timeline=args.timeline, display=display,
                                max_frames=args.max_frames, smoothing=args.smoothing)
    except (OSError, ValueError, SourceError) as exc:
        print(f"error: {training_checkpoint_hint(args.weights) or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        cap.release()
    written = [p for p in (args.output, args.csv, args.timeline) if p]
    print(f"{result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} FPS), "
          f"{len(result.history)} face track(s)"
          + (f"; wrote {', '.join(written)}" if written else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
