"""Every file or folder option of the command-line tools refuses an empty string, which
``pathlib`` would read as the current folder (a run's outputs written there, or the
current folder read as a dataset)."""

from __future__ import annotations

import importlib

import pytest

# (module, its arguments apart from the one tested, the file and folder options)
TOOLS = [
    ("emotion.train", [], ["--data", "--init", "--out"]),
    ("emotion.evaluate", ["--data", "d"], ["--weights", "--data", "--json", "--confusion"]),
    ("emotion.explain", ["img.jpg"], ["--weights", "--out", "--yunet"]),
    ("emotion.export", ["--onnx", "m.onnx"], ["--onnx", "--weights"]),
    ("emotion.predict", ["img.jpg"], ["--weights", "--yunet"]),
    ("emotion.webcam", [], ["--source", "--output", "--csv", "--timeline", "--weights",
                            "--yunet"]),
]
CASES = [(module, rest, option) for module, rest, options in TOOLS for option in options]


@pytest.mark.parametrize(("module", "rest", "option"), CASES,
                         ids=[f"{m.split('.')[1]}{o}" for m, _, o in CASES])
def test_an_empty_path_is_refused_by_the_parser(module, rest, option, capsys):
    parser = importlib.import_module(module).build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*rest, option, ""])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: an empty path" in err, err
    parser.parse_args([*rest, option, "name"])  # a real name still parses


def test_not_a_file_names_what_the_path_is(tmp_path):
    from emotion.cli import not_a_file

    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert not_a_file(tmp_path / "folder", "weights file") == "is a folder, not a weights file"
    assert not_a_file(tmp_path / "link", "image file") == (
        f"is a link to {tmp_path / 'gone'}, which does not exist or loops")
    assert not_a_file(tmp_path / "none", "video file") == "no such video file"
