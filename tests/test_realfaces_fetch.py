"""benchmarks/realfaces/fetch.py: files come from a git mirror at the pinned commit and are
kept only when their SHA-256 matches; offline, a missing file is reported, not fetched."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "realfaces"))
import fetch  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _mirror(tmp_path: Path, content: bytes) -> tuple[Path, str]:
    """A mirror folder holding owner+repo/repo with one commit of photo.jpg; (folder, sha)."""
    work = tmp_path / "mirrors" / "owner+repo" / "repo"
    work.mkdir(parents=True)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (work / "photo.jpg").write_bytes(content)
    subprocess.run([*git, "add", "photo.jpg"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "photo"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    return tmp_path / "mirrors", sha


def test_fetch_takes_the_pinned_file_and_checks_its_hash(tmp_path):
    data = b"not really a jpeg"
    mirrors, commit = _mirror(tmp_path, data)
    entry = {"file": "photo.jpg", "repo": "owner/repo", "commit": commit, "path": "photo.jpg",
             "sha256": hashlib.sha256(data).hexdigest()}
    dest = tmp_path / "out" / "photo.jpg"
    assert fetch.fetch_file(entry, dest, mirrors, offline=True) is None
    assert dest.read_bytes() == data
    # A recorded hash that does not match: refused, nothing written.
    other = tmp_path / "out" / "other.jpg"
    why = fetch.fetch_file({**entry, "sha256": "0" * 64}, other, mirrors, offline=True)
    assert "SHA-256" in why and not other.exists()
    # Not in the mirrors, offline: reported, not downloaded.
    why = fetch.fetch_file({**entry, "path": "gone.jpg"}, other, mirrors, offline=True)
    assert why == "not found in the mirrors" and not other.exists()


def test_sources_and_labels_name_the_same_files():
    here = Path(fetch.__file__).parent
    sources = json.loads((here / "sources.json").read_text())
    labels = json.loads((here / "labels.json").read_text())
    assert sorted(e["file"] for e in sources["images"]) == sorted(labels["images"])
    assert sorted(e["file"] for e in sources["clips"]) == sorted(labels["clips"])
    for entry in sources["images"] + sources["clips"]:
        assert entry["licence"] and entry["repo"] and entry["commit"]
