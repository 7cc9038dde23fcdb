"""python -m emotion.train and python -m emotion.evaluate on the synthetic set: artefacts,
kill-and-resume equivalence, the NaN guard and user-mistake handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minicnn
from emotion import evaluate as evaluate_cli
from emotion import train as train_cli
from minicnn.serialize import read_npz

QUICK = ["--synthetic", "--arch", "small", "--limit", "96", "--batch-size", "32",
         "--no-progress", "--threads", "2"]


@pytest.fixture(autouse=True)
def no_real_data(monkeypatch, tmp_path):
    """Make sure no FER2013 default location is found, whatever the machine has."""
    monkeypatch.delenv(train_cli.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EMOTION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def run(args, capsys):
    code = train_cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_without_data_trains_on_synthetic_and_writes_every_artefact(tmp_path, capsys):
    code, out, err = run(["--arch", "small", "--limit", "96", "--batch-size", "32",
                          "--epochs", "2", "--no-progress", "--out", "run"], capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("no FER2013 data found")
    assert "synthetic" in out.splitlines()[0]
    run_dir = tmp_path / "run"
    for name in ("checkpoint.npz", "best.npz", "final.npz", "metrics.json", "curves.png",
                 "confusion.png", "config.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds"):
        assert np.isfinite(metrics["history"][-1][key])
    final = metrics["final"]
    assert set(final["tta_none"]["per_class"]) == {"angry", "disgust", "fear", "happy",
                                                  "neutral", "sad", "surprise"}
    assert np.array(final["tta_flip"]["confusion"]).sum() == final["tta_flip"]["n"] == 420
    model = minicnn.load(run_dir / "best.npz")
    assert model.metadata["classes"][0] == "angry" and model.metadata["arch"] == "small"
    assert "epoch   2/2" in out and "accuracy" in out
    assert not list(run_dir.glob(".*tmp*")), "temporary files left behind"


def test_resume_reaches_the_same_result_as_an_uninterrupted_run(tmp_path, capsys):
    args = QUICK + ["--epochs", "3", "--seed", "5"]
    assert run(args + ["--out", "straight"], capsys)[0] == 0
    code, out, _ = run(args + ["--out", "killed", "--stop-after-epoch", "1"], capsys)
    assert code == 0 and "continue with --resume" in out
    assert not (tmp_path / "killed" / "final.npz").exists()
    code, out, err = run(args + ["--out", "killed", "--resume"], capsys)
    assert code == 0, err
    assert "resuming" in out and "after epoch 1" in out
    a = read_npz(tmp_path / "straight" / "final.npz")
    b = read_npz(tmp_path / "killed" / "final.npz")
    assert set(a) == set(b)
    for key in a:
        if key != "__spec__":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ha = json.loads((tmp_path / "straight" / "metrics.json").read_text())["history"]
    hb = json.loads((tmp_path / "killed" / "metrics.json").read_text())["history"]
    for ra, rb in zip(ha, hb, strict=True):
        assert {k: v for k, v in ra.items() if "seconds" not in k} == \
               {k: v for k, v in rb.items() if "seconds" not in k}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    real = train_cli.softmax_cross_entropy
    calls = {"n": 0}
    steps_per_epoch = 96 // 32

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, d = real(*args, **kwargs)
        return (float("nan") if calls["n"] > steps_per_epoch + 1 else loss), d

    monkeypatch.setattr(train_cli, "softmax_cross_entropy", poisoned)
    code, out, err = run(QUICK + ["--epochs", "3", "--out", "nan"], capsys)
    assert code == 2
    assert "loss became nan at epoch 2" in err and "epoch 1" in err and "Traceback" not in err
    state = json.loads(str(read_npz(tmp_path / "nan" / "checkpoint.npz")["state"]))
    assert state["epoch"] == 1
    assert all(np.isfinite(v).all() for v in read_npz(tmp_path / "nan" / "best.npz").values()
               if v.dtype.kind == "f")


def test_user_mistakes_give_clear_errors(tmp_path, capsys):
    code, _, err = run(QUICK + ["--epochs", "1", "--out", "r", "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err
    assert run(QUICK + ["--epochs", "1", "--out", "r"], capsys)[0] == 0
    code, _, err = run(QUICK + ["--epochs", "1", "--out", "r"], capsys)
    assert code == 2 and "already holds a run" in err
    code, _, err = run(QUICK + ["--epochs", "2", "--out", "r", "--resume"], capsys)
    assert code == 2 and "different settings" in err and "epochs: 1 -> 2" in err
    code, _, err = run(["--data", str(tmp_path / "nowhere"), "--out", "x"], capsys)
    assert code == 2 and "nowhere" in err and "Traceback" not in err


def test_a_finished_run_without_its_checkpoint_is_never_replaced(tmp_path, capsys):
    assert run(QUICK + ["--epochs", "1", "--out", "r"], capsys)[0] == 0
    (tmp_path / "r" / "checkpoint.npz").unlink()
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    assert set(before) == {"best.npz", "final.npz", "metrics.json", "curves.png",
                           "confusion.png", "config.json"}
    for name in sorted(before):  # any one of a run's files is enough to recognise it
        for other in (tmp_path / "r").iterdir():
            if other.name != name:
                other.unlink()
        code, _, err = run(QUICK + ["--epochs", "1", "--out", "r"], capsys)
        assert code == 2 and "already holds a run" in err and name in err, name
        assert "--out" in err
        assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == \
            {name: before[name]}
        (tmp_path / "r" / name).unlink()
        for n, data in before.items():
            (tmp_path / "r" / n).write_bytes(data)
    code, _, err = run(QUICK + ["--epochs", "1", "--out", "r", "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err and "choose another --out" in err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--data", "--arch", "--epochs", "--batch-size", "--optimizer", "--lr",
                 "--schedule", "--weight-decay", "--label-smoothing", "--class-weights",
                 "--no-augment", "--seed", "--out", "--resume", "--threads"):
        assert flag in text, flag


def test_evaluate_cli_json_and_confusion(tmp_path, capsys):
    assert run(QUICK + ["--epochs", "1", "--out", "r"], capsys)[0] == 0
    # a tiny Kaggle-layout folder made from synthetic faces
    import cv2

    from emotion.labels import CLASSES
    from emotion.synthetic import make_synthetic

    faces, labels = make_synthetic(3, rng=1)
    for split in ("train", "test"):
        for i, (face, label) in enumerate(zip(faces, labels)):
            folder = tmp_path / "kaggle" / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i}.png"), face)
    code = evaluate_cli.main(["--weights", "r/best.npz", "--data", "kaggle", "--json",
                              "report.json", "--confusion", "cm.png", "--tta", "crops"])
    out = capsys.readouterr().out
    assert code == 0 and "macro-F1" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 21 and report["tta"] == "crops" and 0 <= report["accuracy"] <= 1
    assert (tmp_path / "cm.png").stat().st_size > 0
    code = evaluate_cli.main(["--weights", "missing.npz", "--data", "kaggle"])
    assert code == 2 and "missing.npz" in capsys.readouterr().err


def test_quickstart_learns_the_synthetic_set_well_above_chance(tmp_path, capsys):
    """`python -m emotion.train` with no data: the small model on synthetic faces must beat
    chance (1/7 = 14%) by a wide margin within its default 10 epochs (~30 s on 2 cores)."""
    code, out, err = run(["--out", "quick", "--no-progress"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "quick" / "metrics.json").read_text())
    assert metrics["config"]["arch"] == "small" and metrics["config"]["epochs"] == 10
    assert metrics["best_val_acc"] > 0.35


@pytest.mark.slow
def test_one_real_epoch_on_fer2013(tmp_path, capsys, monkeypatch):
    from tests.conftest import FER2013_DIR

    if not (FER2013_DIR / "train").is_dir():
        pytest.skip(f"FER2013 not found at {FER2013_DIR} (set FER2013_DIR to run this test)")
    code, out, err = run(["--data", str(FER2013_DIR), "--epochs", "1", "--out", "real",
                          "--no-progress"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "real" / "metrics.json").read_text())
    assert metrics["history"][0]["val_acc"] > 0.25  # above the majority class after 1 epoch
    assert metrics["final"]["tta_none"]["n"] == 3589
