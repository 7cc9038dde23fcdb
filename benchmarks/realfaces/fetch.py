"""Rebuild the real-photo face set from the public repositories it was taken from.

    python benchmarks/realfaces/fetch.py                  # local git mirrors, else GitHub
    python benchmarks/realfaces/fetch.py --offline        # never use the network
    python benchmarks/realfaces/fetch.py --mirrors DIR    # DIR/<owner>+<name>/repo git dirs

``sources.json`` beside this file names, for every photo and clip, the repository, the
commit and the path it comes from, its SHA-256 and its licence (``SOURCES.md`` is the
readable version). The files themselves are not committed here: their licences are the
repositories' own and, for most photos, the photos' copyright is not stated. Each file is
taken, in this order, from a local git mirror of its repository (``git cat-file`` at the
pinned commit), from the installed Python package that ships it (matplotlib's sample
data), or from raw.githubusercontent.com at the pinned commit; it is kept only if its
SHA-256 matches. ``dlib_table.avi`` is assembled from 151 frames of dlib's
examples/video_frames (a table with no person: the set's face-free clip).

Writes ``images/`` and ``clips/`` beside this file (git-ignored), atomically per file.
Exit status 0 when every file is present and verified, 1 when some could not be had
(each named on stderr), 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.json"
IMAGES, CLIPS = HERE / "images", HERE / "clips"
DEFAULT_MIRRORS = os.environ.get("REALFACES_MIRRORS", "/work/.mirror")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
    os.replace(tmp, path)


def from_mirror(mirrors: Path, repo: str, commit: str, path: str) -> bytes | None:
    """The file at ``commit:path`` in a local git mirror of ``repo``, or None."""
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    if not git_dir.exists():
        return None
    done = subprocess.run(["git", "-C", str(git_dir), "cat-file", "-p", f"{commit}:{path}"],
                          capture_output=True)
    return done.stdout if done.returncode == 0 else None


def from_package(entry: dict) -> bytes | None:
    """The file as an installed Python package ships it (matplotlib's sample data), or None."""
    package = entry.get("python_package")
    if not package:
        return None
    try:
        module = __import__(package)
    except ImportError:
        return None
    path = Path(module.__file__).parent / entry["package_path"]
    return path.read_bytes() if path.is_file() else None


def from_github(repo: str, commit: str, path: str) -> bytes | None:
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError:
        return None


def get(entry: dict, path: str, mirrors: Path, offline: bool) -> bytes | None:
    """One source file's bytes from the first place that has it (not yet verified)."""
    data = from_mirror(mirrors, entry["repo"], entry["commit"], path)
    if data is None:
        data = from_package(entry)
    if data is None and not offline:
        data = from_github(entry["repo"], entry["commit"], path)
    return data


def fetch_file(entry: dict, dest: Path, mirrors: Path, offline: bool) -> str | None:
    """Fetch one photo or clip; returns None on success, else why it failed."""
    if dest.is_file() and sha256(dest.read_bytes()) == entry["sha256"]:
        return None
    data = get(entry, entry["path"], mirrors, offline)
    if data is None:
        return "not found in the mirrors" + ("" if offline else " nor on GitHub")
    if sha256(data) != entry["sha256"]:
        return f"SHA-256 {sha256(data)[:12]}... is not the recorded {entry['sha256'][:12]}..."
    write_atomic(dest, data)
    return None


def fetch_frames_clip(entry: dict, dest: Path, mirrors: Path, offline: bool) -> str | None:
    """Assemble a clip from numbered frames (MJPG .avi at entry['fps'])."""
    if dest.is_file():
        return None
    import cv2
    import numpy as np

    frames, digest = [], hashlib.sha256()
    for i in range(entry["first"], entry["last"] + 1):
        data = get(entry, entry["frames"].format(i), mirrors, offline)
        if data is None:
            return f"frame {i} not found"
        digest.update(data)
        frames.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    if digest.hexdigest() != entry["sha256_of_frames"]:
        return "the frames' SHA-256 is not the recorded one"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp{dest.suffix}")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), entry["fps"], (w, h))
    if not writer.isOpened():
        return "OpenCV cannot write an MJPG .avi here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    os.replace(tmp, dest)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mirrors", default=DEFAULT_MIRRORS,
                   help=f"folder of git mirrors named <owner>+<name>/repo (default "
                        f"{DEFAULT_MIRRORS}, or $REALFACES_MIRRORS)")
    p.add_argument("--offline", action="store_true", help="never download from GitHub")
    args = p.parse_args(argv)
    sources = json.loads(SOURCES.read_text())
    mirrors = Path(args.mirrors)
    failed = 0
    jobs = [(e, IMAGES / e["file"], fetch_file) for e in sources["images"]]
    jobs += [(e, CLIPS / e["file"], fetch_frames_clip if "frames" in e else fetch_file)
             for e in sources["clips"]]
    for entry, dest, fetch in jobs:
        why = fetch(entry, dest, mirrors, args.offline)
        if why:
            failed += 1
            print(f"{dest.name}: {why} ({entry['repo']} {entry['commit'][:12]})", file=sys.stderr)
    print(f"{len(jobs) - failed} of {len(jobs)} files present in {HERE}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
