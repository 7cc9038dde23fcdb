"""python -m emotion.train and python -m emotion.evaluate on the synthetic set: artefacts,
kill-and-resume equivalence, the NaN guard and user-mistake handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import minicnn
from emotion import evaluate as evaluate_cli
from emotion import train as train_cli
from emotion.augment import AugmentConfig
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
    (tmp_path / "photo.jpg").write_bytes(b"not a folder")
    for out in ("photo.jpg", "photo.jpg/run"):
        code, _, err = run(QUICK + ["--epochs", "1", "--out", out], capsys)
        assert code == 2 and "--out" in err and "photo.jpg is a file, not a folder" in err, err
    assert (tmp_path / "photo.jpg").read_bytes() == b"not a folder"


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
    kaggle_folder(tmp_path / "kaggle")
    # the outputs' folders do not exist yet: they are created
    code = evaluate_cli.main(["--weights", "r/best.npz", "--data", "kaggle", "--json",
                              "reports/new/report.json", "--confusion", "figs/cm.png",
                              "--tta", "crops"])
    out = capsys.readouterr().out
    assert code == 0 and "macro-F1" in out
    report = json.loads((tmp_path / "reports" / "new" / "report.json").read_text())
    assert report["n"] == 21 and report["tta"] == "crops" and 0 <= report["accuracy"] <= 1
    assert (tmp_path / "figs" / "cm.png").stat().st_size > 0
    code = evaluate_cli.main(["--weights", "missing.npz", "--data", "kaggle"])
    assert code == 2 and "missing.npz" in capsys.readouterr().err


def test_evaluate_checks_its_outputs_before_evaluating(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("evaluated although the output cannot be written")

    monkeypatch.setattr(evaluate_cli, "evaluate", never)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for option, path, message in (("--json", "afile/report.json", "cannot write in afile"),
                                  ("--confusion", "afile/cm.png", "cannot write in afile"),
                                  ("--confusion", "adir", "is a folder")):
        code = evaluate_cli.main(["--weights", "w.npz", "--data", "d", option, path])
        err = capsys.readouterr().err
        assert code == 2 and f"{option} " in err and message in err, (option, path, err)
    code = evaluate_cli.main(["--weights", "w.npz", "--data", "d", "--json", "x.out",
                              "--confusion", "./x.out"])
    assert code == 2 and "name the same file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        evaluate_cli.main(["--weights", "w.npz", "--data", "d", "--threads", "0"])
    assert exc.value.code == 2


def test_evaluate_refuses_an_output_that_is_its_weights_or_data(tmp_path, capsys,
                                                                monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("evaluated although an output would replace an input")

    monkeypatch.setattr(evaluate_cli, "evaluate", never)
    (tmp_path / "w.npz").write_bytes(b"weights")
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    for option in ("--json", "--confusion"):
        for path, which in (("./w.npz", "--weights"), ("sub/../fer2013.csv", "--data")):
            (tmp_path / "sub").mkdir(exist_ok=True)
            code = evaluate_cli.main(["--weights", "w.npz", "--data", "fer2013.csv",
                                      option, path])
            err = capsys.readouterr().err
            assert code == 2 and f"{option} {path} is the {which} file" in err, err
    assert (tmp_path / "w.npz").read_bytes() == b"weights"
    assert (tmp_path / "fer2013.csv").read_text() == "emotion,pixels,Usage\n"


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


# ------------------------------------------------------------------------ range checks
@pytest.mark.parametrize("flag, value", [
    ("--lr", "-1"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "abc"),
    ("--label-smoothing", "1.5"), ("--label-smoothing", "-1"), ("--label-smoothing", "1"),
    ("--limit", "-5"), ("--momentum", "-1"), ("--momentum", "1"),
    ("--weight-decay", "nan"), ("--weight-decay", "-1"), ("--weight-decay", "inf"),
    ("--epochs", "0"), ("--batch-size", "0"), ("--threads", "0"), ("--seed", "-1"),
    ("--gamma", "0"), ("--warmup-epochs", "-1"), ("--step-epochs", "0"), ("--epochs", "1.5"),
])
def test_out_of_range_options_are_refused_by_argparse(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(QUICK + ["--out", "r", flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"argument {flag}: must be" in err and "Traceback" not in err
    for kind in (int, float, str):  # the same value in a config built in code
        try:
            number = kind(value)
            break
        except ValueError:
            continue
    with pytest.raises(train_cli.TrainingError, match=f"{flag} must be"):
        train_cli.resolve_config({**vars(train_cli.build_parser().parse_args([])),
                                  flag[2:].replace("-", "_"): number})


# ------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_batch_norm_statistics_stop_the_run_and_keep_a_loadable_checkpoint(
        tmp_path, capsys):
    # the case: with SGD at lr 1e3 the loss stays finite while batch norm's running
    # variance overflows; the guard must stop at that step, before anything is saved
    code, out, err = run(QUICK + ["--epochs", "3", "--out", "big", "--optimizer", "sgd",
                                  "--lr", "1e3"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "batch-norm running variance of layer" in err and "became NaN or infinite" in err
    assert "epoch 2" in err and "(epoch 1) is kept" in err and "lower --lr" in err
    run_dir = tmp_path / "big"
    assert not (run_dir / "final.npz").exists()
    for name in ("best.npz", "checkpoint.npz"):
        arrays = read_npz(run_dir / name)
        assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f"), name
    minicnn.load(run_dir / "best.npz")
    # the checkpoint resumes (and stops again at the same step: the settings still diverge)
    code, out, err = run(QUICK + ["--epochs", "3", "--out", "big", "--optimizer", "sgd",
                                  "--lr", "1e3", "--resume"], capsys)
    assert "resuming" in out and "after epoch 1" in out
    assert code == 2 and "became NaN or infinite at epoch 2" in err


def test_a_non_finite_parameter_stops_at_once_naming_it(tmp_path, capsys, monkeypatch):
    real = train_cli.make_optimizer
    steps_per_epoch = 96 // 32

    def poisoned(cfg, model):
        opt = real(cfg, model)
        step, calls = opt.step, {"n": 0}

        def bad_step(grads):
            step(grads)
            calls["n"] += 1
            if calls["n"] == steps_per_epoch + 2:  # epoch 2, batch 2
                model.parameters()["0.W"][0, 0, 0, 0] = np.nan
        opt.step = bad_step
        return opt

    monkeypatch.setattr(train_cli, "make_optimizer", poisoned)
    code, _, err = run(QUICK + ["--epochs", "3", "--out", "p"], capsys)
    assert code == 2
    assert "parameter W of layer 0 (Conv2D) became NaN or infinite at epoch 2, batch 2" in err
    state = json.loads(str(read_npz(tmp_path / "p" / "checkpoint.npz")["state"]))
    assert state["epoch"] == 1


def test_divergence_hint_names_weight_decay_when_it_is_the_cause():
    cfg = {"lr": 0.05, "weight_decay": 40.0, "optimizer": "sgd"}
    assert "--weight-decay 40 times --lr 0.05" in train_cli.divergence_hint(cfg)
    assert "lower --lr" in train_cli.divergence_hint({**cfg, "weight_decay": 5e-4})


# ------------------------------------------------------------------------------ resume
def rewrite_checkpoint(path, change):
    """Read a checkpoint, let ``change(arrays, config, state)`` edit it, write it back."""
    arrays = read_npz(path)
    config, state = json.loads(str(arrays["config"])), json.loads(str(arrays["state"]))
    change(arrays, config, state)
    arrays["config"], arrays["state"] = np.array(json.dumps(config)), np.array(json.dumps(state))
    np.savez(path, **arrays)


def test_resume_accepts_the_folder_moved_or_spelled_differently(tmp_path, capsys):
    args = QUICK + ["--epochs", "2"]
    assert run(args + ["--out", "r", "--stop-after-epoch", "1"], capsys)[0] == 0
    (tmp_path / "r").rename(tmp_path / "moved")
    code, out, err = run(args + ["--out", "moved/", "--resume"], capsys)
    assert code == 0, err
    assert "after epoch 1" in out


def test_resume_of_an_older_checkpoint_treats_missing_options_as_their_defaults(tmp_path,
                                                                               capsys):
    args = QUICK + ["--epochs", "2"]
    assert run(args + ["--out", "r", "--stop-after-epoch", "1"], capsys)[0] == 0

    def drop_gamma(arrays, config, state):
        del config["gamma"], config["label_smoothing"]  # options added "later"

    rewrite_checkpoint(tmp_path / "r" / "checkpoint.npz", drop_gamma)
    code, _, err = run(args + ["--out", "r", "--resume", "--gamma", "0.5"], capsys)
    assert code == 2 and "gamma: '(not set)' -> 0.5" in err
    code, out, err = run(args + ["--out", "r", "--resume"], capsys)
    assert code == 0, err


def test_resume_with_other_threads_continues_and_says_it_is_not_bit_exact(tmp_path, capsys):
    args = QUICK[:-2] + ["--epochs", "2"]
    assert run(args + ["--threads", "2", "--out", "r", "--stop-after-epoch", "1"], capsys)[0] == 0
    code, out, err = run(args + ["--threads", "1", "--out", "r", "--resume"], capsys)
    assert code == 0, err
    assert "--threads 2" in out and "not bit for bit" in out
    assert (tmp_path / "r" / "final.npz").is_file()


@pytest.mark.parametrize("damage, message", [
    (lambda a, c, s: s.update(epoch=5, history=s["history"] * 5),
     "the checkpoint is at epoch 5, beyond --epochs 2"),
    (lambda a, c, s: a[next(k for k in a if k.startswith("opt/") and k.endswith("/m"))]
     .__setitem__(..., np.nan), "holds NaN or infinite values"),
    (lambda a, c, s: a.pop(next(k for k in a if k.startswith("opt/") and k.endswith("/v"))),
     "does not match the model and optimizer: missing"),
    (lambda a, c, s: a.pop("opt/__t__"), "has no valid step count"),
    (lambda a, c, s: s.update(epoch="one"), "its epoch is 'one'"),
    (lambda a, c, s: s.update(rng={"bit_generator": "nonsense"}),
     "random-number-generator state is invalid"),
], ids=["epoch-beyond", "nan-opt", "missing-slot", "no-step-count", "bad-epoch", "bad-rng"])
def test_resume_refuses_a_damaged_checkpoint_with_a_message(tmp_path, capsys, damage, message):
    args = QUICK + ["--epochs", "2"]
    assert run(args + ["--out", "r", "--stop-after-epoch", "1"], capsys)[0] == 0
    rewrite_checkpoint(tmp_path / "r" / "checkpoint.npz", damage)
    code, _, err = run(args + ["--out", "r", "--resume"], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_temporary_files_of_interrupted_writes_are_removed_at_start(tmp_path, capsys):
    args = QUICK + ["--epochs", "2"]
    assert run(args + ["--out", "r", "--stop-after-epoch", "1"], capsys)[0] == 0
    run_dir = tmp_path / "r"
    orphans = [".checkpoint.npz.k2j4h_x.tmp", ".best.npz.abc.tmp", ".metrics.json.tmp",
               ".curves.png.tmp.png", ".curves.png.x7_q2.tmp", ".config.json.tmp"]
    for name in orphans:
        (run_dir / name).write_bytes(b"\0" * 1000)
    (run_dir / "notes.tmp").write_text("mine")  # not ours: stays
    code, out, err = run(args + ["--out", "r", "--resume"], capsys)
    assert code == 0, err
    assert "removed 6 temporary files" in out
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []
    assert (run_dir / "notes.tmp").read_text() == "mine"


# -------------------------------------------------------------------------------- Ctrl-C
def interrupt_at(call: int, wrapped: bool):
    """A softmax_cross_entropy that is interrupted on its ``call``-th call, as Ctrl-C is:
    a KeyboardInterrupt, or (inside a Numba function) a SystemError around one."""
    real, calls = train_cli.softmax_cross_entropy, {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            if not wrapped:
                raise KeyboardInterrupt
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SystemError("CPUDispatcher(<function x>) returned a result with an "
                                  "exception set") from None
        return real(*args, **kwargs)
    return fake


@pytest.mark.parametrize("wrapped", [False, True], ids=["KeyboardInterrupt", "SystemError"])
def test_ctrl_c_in_the_first_epoch_says_nothing_is_saved_and_leaves_no_run(
        tmp_path, capsys, monkeypatch, wrapped):
    real = train_cli.softmax_cross_entropy
    monkeypatch.setattr(train_cli, "softmax_cross_entropy", interrupt_at(2, wrapped))
    code, _, err = run(QUICK + ["--epochs", "2", "--out", "r"], capsys)
    assert code == 130 and "Traceback" not in err and "SystemError" not in err
    assert "nothing is saved" in err and "last finished epoch" not in err
    assert list((tmp_path / "r").iterdir()) == []  # the same command can run again
    monkeypatch.setattr(train_cli, "softmax_cross_entropy", real)
    assert run(QUICK + ["--epochs", "1", "--out", "r"], capsys)[0] == 0


@pytest.mark.parametrize("wrapped", [False, True], ids=["KeyboardInterrupt", "SystemError"])
def test_ctrl_c_later_names_the_saved_epoch_and_resume(tmp_path, capsys, monkeypatch, wrapped):
    monkeypatch.setattr(train_cli, "softmax_cross_entropy", interrupt_at(96 // 32 + 2, wrapped))
    code, _, err = run(QUICK + ["--epochs", "2", "--out", "r"], capsys)
    assert code == 130 and "Traceback" not in err
    assert "during epoch 2 of 2" in err and "holds epoch 1" in err
    assert "--resume --out r" in err


def test_a_system_error_that_is_not_an_interrupt_is_not_hidden(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise SystemError("a real bug")

    monkeypatch.setattr(train_cli, "softmax_cross_entropy", broken)
    with pytest.raises(SystemError, match="a real bug"):
        train_cli.main(QUICK + ["--epochs", "1", "--out", "r"])


# ------------------------------------------------------------------------ help and plots
def test_help_shows_real_defaults_only(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "(default: None)" not in text
    body = text[text.index("model and optimisation:"):]  # past the usage line
    for entry, default in (("--batch-size N", "64"), ("--gamma GAMMA", "0.1"),
                           ("--label-smoothing LABEL_SMOOTHING", "0.1"), ("--seed SEED", "0")):
        section = body[body.index(entry):]
        assert section[section.index("(default:"):].startswith(f"(default: {default})"), entry


def test_one_epoch_header_and_curves(tmp_path, capsys):
    code, out, err = run(QUICK + ["--epochs", "1", "--out", "r"], capsys)
    assert code == 0, err
    assert "1 epoch x 3 steps of 32" in out and "1 epochs" not in out
    from emotion.plots import curves_figure

    history = json.loads((tmp_path / "r" / "metrics.json").read_text())["history"]
    cfg = train_cli.resolve_config(train_cli.build_parser().parse_args(QUICK))
    fig = curves_figure(history, train_loss_label=train_cli.train_loss_label(cfg))
    for ax in fig.axes:
        assert ax.get_xlim() == (0.5, 1.5)
        ticks = [t for t in ax.get_xticks() if 0.5 <= t <= 1.5]
        assert ticks == [1.0]  # whole epochs only
        assert all(line.get_marker() == "o" for line in ax.get_lines())
    assert fig.axes[0].get_ylim()[0] == 0 and fig.axes[1].get_ylim()[0] == 0
    assert fig.axes[0].get_ylim()[1] > max(history[0]["train_loss"], history[0]["val_loss"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["train (label smoothing 0.1, sqrt class weights, augmented)",
                      "validation (plain cross-entropy)"]


def test_photo_augment_trains_with_the_photo_faults(tmp_path, capsys, monkeypatch):
    seen = []
    real = train_cli.augment_batch
    monkeypatch.setattr(train_cli, "augment_batch",
                        lambda x, rng, cfg: seen.append(cfg) or real(x, rng, cfg))
    code, _, err = run(QUICK + ["--epochs", "1", "--photo-augment", "--out", "p"], capsys)
    assert code == 0, err
    assert seen and all(cfg == AugmentConfig.photo() for cfg in seen)
    assert json.loads((tmp_path / "p" / "config.json").read_text())["photo_augment"] is True


def test_the_defaults_on_fer2013_are_the_shipped_models_recipe():
    """The README's command (no options) trains the recipe: ``wide``, 80 epochs of which
    the last 45 three warm restarts of 15 (before --minutes drops the last restart or
    shortens the first cycle: see below), photo faults on; the synthetic quickstart stays
    small and without them; either can be overridden."""
    def filled(args, synthetic):
        cfg = train_cli.resolve_config(train_cli.build_parser().parse_args(args))
        cfg["synthetic"] = synthetic
        return train_cli.fill_recipe(cfg)

    def recipe(cfg):
        return (cfg["arch"], cfg["epochs"], cfg["restart_epochs"], cfg["restarts"],
                cfg["photo_augment"])

    assert recipe(filled([], synthetic=False)) == ("wide", 80, 15, 3, True)
    assert recipe(filled([], synthetic=True)) == ("small", 10, 0, 1, False)
    cfg = filled(["--arch", "default", "--epochs", "30", "--no-photo-augment"], False)
    assert recipe(cfg) == ("default", 30, 0, 1, False)  # epochs of one's own: no restart
    assert recipe(filled(["--epochs", "30", "--restart-epochs", "10"], False))[1:4] == (30, 10, 1)
    # restarts of one's own with the recipe's epochs: the recipe's first cycle before them
    assert recipe(filled(["--restart-epochs", "10"], False))[1:4] == (65, 10, 3)
    assert filled(["--photo-augment"], synthetic=True)["photo_augment"] is True
    with pytest.raises(train_cli.TrainingError, match="1 x --restart-epochs 5 must be fewer"):
        filled(["--epochs", "5", "--restart-epochs", "5"], False)
    with pytest.raises(train_cli.TrainingError, match="3 x --restart-epochs 2 must be fewer"):
        filled(["--epochs", "6", "--restart-epochs", "2", "--restarts", "3"], False)
    # deferred re-weighting: the recipe's last restart weighs the classes by capped 1/frequency
    assert filled([], False)["final_class_weights"] == "capped"
    for args, synthetic in (([], True), (["--restart-epochs", "0"], False),
                            (["--epochs", "30", "--restart-epochs", "10"], False),
                            (["--class-weights", "none"], False)):
        cfg = filled(args, synthetic)
        assert cfg["final_class_weights"] == cfg["class_weights"], args
    assert filled(["--final-class-weights", "none"], False)["final_class_weights"] == "none"
    with pytest.raises(train_cli.TrainingError, match="needs --restart-epochs"):
        filled(["--epochs", "6", "--final-class-weights", "balanced"], False)


def test_the_first_cycle_is_what_fits_in_the_minutes_between_a_floor_and_v4s():
    plan = train_cli.plan_first_cycle
    assert plan(100.0, 65 * 100.0, 30) == 35  # v4's recipe fits exactly
    assert plan(100.0, 200 * 100.0, 30) == 35  # never longer than v4's
    assert plan(160.0, 150 * 60 * 0.95, 30) == 23  # a slower machine: 53 epochs fit
    assert plan(600.0, 150 * 60 * 0.95, 30) == train_cli.REAL_FIRST_CYCLE_MIN  # the floor


def test_below_the_first_cycles_floor_the_restarts_are_shortened_to_fit():
    """Where 10 first-cycle epochs and the recipe's restarts do not fit, the restarts are
    shortened evenly, never below REAL_RESTART_MIN each; where they fit, they keep theirs."""
    plan = train_cli.plan_epochs
    budget = 150 * 60 * 0.95
    assert plan(100.0, budget, 2, 15) == (35, 15)  # v4's recipe, unchanged
    assert plan(200.0, budget, 2, 15) == (12, 15)  # only the first cycle is shorter
    assert plan(210.0, budget, 2, 15) == (10, 15)  # 40 epochs fit: the floor and all 30
    assert plan(214.0, budget, 2, 15) == (11, 14)  # 39 fit: 2 x 14, and the odd one first
    assert plan(250.0, budget, 2, 15) == (10, 12)  # 34 fit: 10 + 2 x 12 (restarts shorter)
    assert plan(366.0, budget, 2, 15) == (11, 6)  # 23 fit, the `deep` run's 2026-12-04 pace
    assert plan(900.0, budget, 2, 15) == (10, train_cli.REAL_RESTART_MIN)  # nothing shorter
    assert plan(900.0, budget, 2, 3) == (10, 3)  # restarts already shorter keep theirs
    assert plan(900.0, budget, 0, 15) == (10, 15)  # no restarts: nothing to shorten
    for seconds in (150.0, 214.0, 250.0, 300.0, 366.0):  # each fits (or is the shortest)
        first, each = plan(seconds, budget, 2, 15)
        assert (first + 2 * each) * seconds <= budget or each == train_cli.REAL_RESTART_MIN
        assert (first + 1 + 2 * each) * seconds > budget or first == 35  # and it fills it


def test_a_slow_machine_shortens_the_restarts_says_so_and_a_resume_keeps_them(
        tmp_path, capsys, monkeypatch):
    """A sized run on a machine too slow for the first cycle's floor and the recipe's
    restarts shortens the restarts, says so, and saves them; a resume keeps them; where even
    the shortest plan is too long it warns; --restart-epochs of one's own is never changed."""
    data = kaggle_folder(tmp_path / "kaggle")
    # an epoch of 60 s: 0.95 * 16 minutes less the report's 3 s hold 15 epochs: 10 + 5
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: cfg["epochs"]
                        - cfg["restarts"] * cfg["restart_epochs"])
    monkeypatch.setattr(train_cli, "replan_restarts", lambda cfg, *a: cfg["restart_epochs"])
    monkeypatch.setattr(train_cli, "REAL_RESTART", 8)  # the recipe's: 10 + 8 would not fit
    args = ["--data", str(data), "--arch", "small", "--batch-size", "32", "--no-progress",
            "--restarts", "1", "--minutes", "16"]
    code, out, err = run(args + ["--out", "m", "--stop-after-epoch", "1"], capsys)
    assert code == 0, err
    assert "first cycle 10 epochs (the shipped model had 35), restarts of 5 (the shipped " \
           "model's: 8), 15 in all: about 15 minutes" in out
    assert "ending in 1 warm restart of 5" in out and "warning" not in out
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["epochs"] == 15 and saved["restart_epochs"] == 5
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: pytest.fail("timed"))
    code, out, err = run(args + ["--out", "m", "--resume", "--stop-after-epoch", "2"], capsys)
    assert code == 0, err  # not refused as a run with other settings (8 against 5)
    assert "after epoch 1 of 15" in out and "ending in 1 warm restart of 5" in out

    # 90-s epochs: 10 epochs fit, so even 10 + 5 is too long, and it says so
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 90.0))
    code, out, err = run(args + ["--out", "s", "--stop-after-epoch", "1"], capsys)
    assert code == 0, err
    assert "restarts of 5" in out and "15 in all: about 22 minutes" in out
    assert "warning: even the shortest plan takes longer than --minutes 16" in out

    # restarts of one's own are the user's: only the first cycle is sized
    code, out, err = run(args + ["--restart-epochs", "8", "--out", "o",
                                 "--stop-after-epoch", "1"], capsys)
    assert code == 0, err
    assert "first cycle 10 epochs (the shipped model had 35), 18 in all" in out
    assert "restarts of" not in out and "warning: even the shortest plan" in out


def count_optimizers(monkeypatch) -> list:
    """A list that grows by one at each optimizer the run makes (a fresh state: the start,
    a resume, each warm restart)."""
    made, real = [], train_cli.make_optimizer
    monkeypatch.setattr(train_cli, "make_optimizer", lambda *a: made.append(1) or real(*a))
    return made


def test_the_recipe_runs_its_third_restart_only_where_a_whole_first_cycle_fits_with_it():
    """The recipe's three warm restarts run where its first cycle's 35 epochs fit with them
    in the budget; elsewhere v4's two, before the first cycle is shortened; a count of
    one's own, or restarts of no epochs, are never changed."""
    count = train_cli.plan_restart_count
    budget = 150 * 60 * 0.95  # 8,550 s
    assert count(98.0, budget, 3, 15) == 3  # 87 epochs fit: 35 + 3 x 15
    assert count(106.8, budget, 3, 15) == 3 and count(107.0, budget, 3, 15) == 2  # 80 / 79
    assert count(111.0, budget, 3, 15) == 2  # 77 fit: 35 + 2 x 15, v4's recipe
    assert count(155.0, budget, 3, 15) == 2  # never fewer than v4's two
    assert count(155.0, budget, 1, 15) == 1 and count(155.0, budget, 3, 0) == 3
    assert train_cli.plan_epochs(111.0, budget, 2, 15) == (35, 15)
    assert train_cli.plan_epochs(155.0, budget, 2, 15) == (25, 15)  # then a shorter first


def test_a_sized_run_drops_the_last_restart_where_it_does_not_fit_and_a_re_plan_adds_it(
        tmp_path, capsys, monkeypatch):
    """Where the first cycle would be shortened, the probe's plan runs v4's two restarts,
    says so, and saves them; a resume keeps them; a re-plan at a faster pace adds the third
    back (each with its fresh optimizer); --restarts of one's own is never changed."""
    data = kaggle_folder(tmp_path / "kaggle")  # 21 faces: one step an epoch
    # 60-s epochs: 0.95 * 16 minutes less the report's 3 s hold 15 epochs, not 35 + 3 x 2
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    monkeypatch.setattr(train_cli, "REAL_RESTART", 2)
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: 11)
    monkeypatch.setattr(train_cli, "replan_restart_count", lambda cfg, *a: 2)
    fresh = count_optimizers(monkeypatch)
    args = ["--data", str(data), "--arch", "small", "--batch-size", "32", "--no-progress",
            "--minutes", "16"]
    code, out, err = run(args + ["--out", "m", "--stop-after-epoch", "1"], capsys)
    assert code == 0, err
    assert "first cycle 11 epochs (the shipped model had 35), 2 warm restarts (the recipe's " \
           "3 where its first cycle fits with them), 15 in all" in out
    assert "ending in 2 warm restarts of 2" in out and "re-planned" not in out
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (saved["epochs"], saved["restarts"], saved["restart_epochs"]) == (15, 2, 2)
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: pytest.fail("timed"))
    code, out, err = run(args + ["--out", "m", "--resume", "--stop-after-epoch", "2"], capsys)
    assert code == 0, err  # not refused as a run with other settings (3 against 2)
    assert "after epoch 1 of 15" in out and "ending in 2 warm restarts of 2" in out

    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    monkeypatch.setattr(train_cli, "replan_restart_count", lambda cfg, *a: 3)
    fresh.clear()
    code, out, err = run(args + ["--out", "r"], capsys)
    assert code == 0, err
    assert "15 -> 17 epochs, the first cycle 11, warm restarts 2 -> 3" in out
    assert "epoch  17/17" in out and len(fresh) == 1 + 3  # the first optimizer, 3 restarts'
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["epochs"], saved["restarts"], saved["restart_epochs"]) == (17, 3, 2)

    # a count of one's own is the user's: planned and re-planned as given
    monkeypatch.setattr(train_cli, "replan_restart_count", lambda *a: pytest.fail("counted"))
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: 13)
    code, out, err = run(args + ["--restarts", "1", "--out", "o", "--stop-after-epoch", "1"],
                         capsys)
    assert code == 0, err
    assert "first cycle 13 epochs (the shipped model had 35), 15 in all" in out
    assert "warm restarts (the recipe's" not in out and "ending in 1 warm restart of 2" in out


def kaggle_folder(root: Path) -> Path:
    """A tiny Kaggle-layout FER2013 folder of synthetic faces (21 a split)."""
    import cv2

    from emotion.labels import CLASSES
    from emotion.synthetic import make_synthetic

    faces, labels = make_synthetic(3, rng=1)
    for split in ("train", "test"):
        for i, (face, label) in enumerate(zip(faces, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i}.png"), face)
    return root


def test_minutes_sizes_the_recipe_from_the_timed_steps_and_a_resume_keeps_it(
        tmp_path, capsys, monkeypatch):
    """Without --epochs on FER2013 the run times a few steps, then gives the first cycle as
    many epochs as fit in --minutes with the restarts; a resume keeps the planned epochs
    and times nothing."""
    data = kaggle_folder(tmp_path / "kaggle")
    step, val, epoch = train_cli.time_epoch(  # the real measurement runs and is positive
        {"arch": "small", "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05,
         "momentum": 0.9, "label_smoothing": 0.1},
        np.zeros((8, 48, 48), np.uint8), np.zeros(8, np.int64), np.zeros((4, 48, 48), np.uint8),
        4, 2, None, train_cli.AugmentConfig())
    assert 0 < step and 0 < val and epoch == pytest.approx(2 * step + val)
    # an epoch of 60 s: 0.95 * 16 minutes (less the final report's 3 s) hold 15 epochs,
    # 1 of them the restart
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    # the epochs here take milliseconds: their re-plan is the next test's
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: cfg["epochs"] - 1)
    args = ["--data", str(data), "--arch", "small", "--batch-size", "32", "--no-progress",
            "--restart-epochs", "1", "--restarts", "1", "--minutes", "16"]
    code, out, err = run(args + ["--out", "m", "--stop-after-epoch", "2"], capsys)
    assert code == 0, err
    assert "--minutes 16: a step takes 500 ms here and a validation 1.0 s, so an epoch " \
           "about 60 s; first cycle 14 epochs (the shipped model had 35), 15 in all" in out
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["epochs"] == 15 and saved["restart_epochs"] == 1

    def never(*a, **k):
        raise AssertionError("a resume timed the steps again")

    monkeypatch.setattr(train_cli, "time_epoch", never)
    code, out, err = run(args + ["--out", "m", "--resume", "--stop-after-epoch", "3"], capsys)
    assert code == 0, err
    assert "resuming" in out and "after epoch 2 of 15" in out


def test_the_plan_is_made_again_from_the_first_epochs_measured_times():
    """After each of its first epochs a sized run plans its first cycle again as if it had
    known their pace (their median: one slow epoch does not decide): faster epochs than
    the probe's give it more, slower ones fewer, but the one-cycle's fall moves by at most
    REPLAN_BAND, and never past v4's 35 or below the floor."""
    cfg = {"minutes": 150.0, "restarts": 2, "restart_epochs": 15}
    budget = 150 * 60 * 0.95

    def epochs(*seconds, planned=25, val=8.0, loading=60.0):
        history = [{"seconds": s, "train_seconds": s - val} for s in seconds]
        return train_cli.replan_first_cycle(cfg, history, loading + sum(seconds), planned)

    # 144-s epochs: 8,490 s less the report's 24 s hold 58 epochs, 28 of them the first cycle
    assert epochs(144.0) == int((budget - 60 - 24) // 144) - 30 == 28
    assert epochs(144.0, 144.0) == 28  # the pace, not the count, decides
    # one slow epoch: the median pace plans 25, less the time it took (the mean would: 21)
    assert epochs(150.0) == 26 and epochs(150.0, 150.0, 284.0) == 25
    # a 25-epoch plan rises for 7.5 epochs and falls for 17.5: the fall moves by 4 at most
    assert epochs(120.0, 125.0) == 29 and epochs(190.0) == 21
    assert epochs(120.0, planned=33) == 35  # never more than v4's first cycle
    assert epochs(900.0, planned=11) == train_cli.REAL_FIRST_CYCLE_MIN  # nor below the floor


def test_the_re_plan_sizes_the_recipes_restarts_at_the_measured_pace_too():
    """After its first epochs a sized run also sizes the recipe's restarts again: shorter
    where the epochs turned out slower than the probe said, back to the recipe's 15 where
    they are fast enough; and counts them again: the third only where a whole first cycle
    fits with it."""
    cfg = {"minutes": 150.0, "restarts": 2, "restart_epochs": 9}

    def each(*seconds, val=8.0, loading=60.0):
        history = [{"seconds": s, "train_seconds": s - val} for s in seconds]
        return train_cli.replan_restarts(cfg, history, loading + sum(seconds))

    # 8,466 s for the epochs (8,550 less loading and the report): 240-s epochs fit 35,
    # 10 + 2 x 12; 300-s ones 28, 10 + 2 x 9; 150-s ones all 15s; 900-s ones the floor
    assert each(240.0) == 12 and each(300.0) == 9 and each(150.0) == 15
    assert each(900.0) == train_cli.REAL_RESTART_MIN
    assert each(240.0, 240.0, 500.0) == 12  # the median pace: one slow epoch does not decide

    def count(*seconds, val=8.0, loading=60.0):
        history = [{"seconds": s, "train_seconds": s - val} for s in seconds]
        return train_cli.replan_restart_count(cfg, history, loading + sum(seconds), 15)

    # and how many: 98-s epochs fit 86, so 35 + 3 x 15; 106-s ones 79, so v4's 35 + 2 x 15
    assert count(98.0) == 3 and count(105.8) == 3 and count(106.0) == 2
    assert count(98.0, 98.0, 300.0) == 3 and count(150.0) == 2


def test_a_re_plan_that_shortens_the_restarts_runs_them_so_and_a_resume_keeps_them(
        tmp_path, capsys, monkeypatch):
    """Where the re-plan changes the recipe's restarts, the loop runs the new ones (the
    fresh optimizer at each), says so and saves them; a resume keeps them."""
    data = kaggle_folder(tmp_path / "kaggle")  # 21 faces: one step an epoch
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    # 60-s epochs: 0.95 * 15 minutes less the report's 3 s hold 14, so the probe's plan is
    # 10 + 2 x 2 (two of the recipe's three restarts, its 3 epochs made short enough here
    # by a floor of 1)
    monkeypatch.setattr(train_cli, "REAL_RESTART", 3)
    monkeypatch.setattr(train_cli, "REAL_RESTART_MIN", 1)
    monkeypatch.setattr(train_cli, "replan_restarts", lambda cfg, *a: 1)
    monkeypatch.setattr(train_cli, "replan_restart_count", lambda cfg, *a: 2)
    monkeypatch.setattr(train_cli, "replan_first_cycle",
                        lambda cfg, *a: 10 if cfg["restart_epochs"] == 1 else pytest.fail(
                            "the first cycle was planned with the old restarts"))
    fresh = count_optimizers(monkeypatch)
    args = ["--data", str(data), "--arch", "small", "--batch-size", "32", "--no-progress",
            "--minutes", "15"]
    code, out, err = run(args + ["--out", "m", "--stop-after-epoch", "11"], capsys)
    assert code == 0, err
    assert "first cycle 10 epochs (the shipped model had 35), 2 warm restarts (the recipe's " \
           "3 where its first cycle fits with them), restarts of 2 (the shipped model's: 3), " \
           "14 in all" in out
    assert "14 -> 12 epochs, the first cycle 10, restarts of 2 -> 1" in out
    assert "epoch  11/12" in out and len(fresh) == 2  # the first restart began at epoch 11
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["epochs"] == 12 and saved["restart_epochs"] == 1
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: pytest.fail("timed"))
    monkeypatch.setattr(train_cli, "replan_restarts", lambda *a: pytest.fail("re-planned"))
    code, out, err = run(args + ["--out", "m", "--resume"], capsys)
    assert code == 0, err
    assert "after epoch 11 of 12" in out and "epoch  12/12" in out and len(fresh) == 4


def test_a_re_plan_moves_the_end_of_the_run_keeps_the_rise_and_a_resume_keeps_it(
        tmp_path, capsys, monkeypatch):
    """The loop runs to the re-planned end, with the restarts moved with it, the learning
    rate of the first plan's rise unchanged, and the new plan in the checkpoint and
    config.json; only the first REPLAN_EPOCHS epochs re-plan, and a resume neither
    re-plans nor times anything."""
    data = kaggle_folder(tmp_path / "kaggle")  # 21 faces: one step an epoch
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    plans, seen = iter([6, 7, 7]), []  # the probe's plan: 15 epochs, a first cycle of 13

    def replan(cfg, history, elapsed, planned):
        seen.append((len(history), elapsed, planned))
        return next(plans)

    monkeypatch.setattr(train_cli, "replan_first_cycle", replan)
    fresh = count_optimizers(monkeypatch)
    args = ["--data", str(data), "--arch", "small", "--batch-size", "32", "--no-progress",
            "--restart-epochs", "1", "--restarts", "2", "--minutes", "16"]
    code, out, err = run(args + ["--out", "m", "--stop-after-epoch", "8"], capsys)
    assert code == 0, err
    assert [(n, p) for n, _, p in seen] == [(1, 13), (2, 13), (3, 13)]  # after epochs 1-3
    assert all(b > a > 0 for (_, a, _), (_, b, _) in zip(seen, seen[1:]))  # since the start
    assert "re-planned from the epochs so far" in out and "15 -> 8 epochs, the first " \
           "cycle 6" in out and "8 -> 9 epochs, the first cycle 7" in out
    assert "epoch   8/9" in out and "stopping after epoch 8" in out
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["epochs"] == 9 and saved["planned_first"] == 13
    assert len(fresh) == 2  # the first optimizer, and the first restart's at epoch 8 (not 7)
    # the learning rate rose as the 13-epoch plan's did (3.9 steps), then fell to nothing
    lrs = [r["lr"] for r in json.loads((tmp_path / "m" / "metrics.json").read_text())["history"]]
    probe_plan = train_cli.make_schedule({**saved, "epochs": 15, "planned_first": 13}, 1)
    unplanned = train_cli.make_schedule({k: v for k, v in {**saved, "epochs": 15}.items()
                                         if k != "planned_first"}, 1)
    assert lrs[:3] == pytest.approx([unplanned(s) for s in range(3)], rel=1e-9)
    assert lrs[:3] == pytest.approx([probe_plan(s) for s in range(3)], rel=1e-9)
    assert lrs[3] != pytest.approx(unplanned(3))  # the fall is the new plan's
    assert lrs[3] > lrs[4] > lrs[5] > lrs[6] and lrs[6] < 1e-5 * max(lrs)  # 7 epochs

    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: pytest.fail("timed"))
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda *a: pytest.fail("re-planned"))
    (tmp_path / "m" / "config.json").write_text(json.dumps({**saved, "epochs": 15}))
    code, out, err = run(args + ["--out", "m", "--resume"], capsys)
    assert code == 0, err
    assert "after epoch 8 of 9" in out and "epoch   9/9" in out
    assert len(fresh) == 4  # the resumed run's optimizer, then the second restart's
    assert len(json.loads((tmp_path / "m" / "metrics.json").read_text())["history"]) == 9
    # the checkpoint's plan counts, and config.json is made to say it again
    assert json.loads((tmp_path / "m" / "config.json").read_text())["epochs"] == 9

    # a run resumed within the first REPLAN_EPOCHS epochs keeps its plan too
    monkeypatch.setattr(train_cli, "time_epoch", lambda *a, **k: (0.5, 1.0, 60.0))
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: 10)
    code, out, err = run(args + ["--out", "r", "--stop-after-epoch", "1"], capsys)
    assert code == 0 and "15 -> 12 epochs" in out, err
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda *a: pytest.fail("re-planned"))
    code, out, err = run(args + ["--out", "r", "--resume", "--stop-after-epoch", "3"], capsys)
    assert code == 0, err
    assert "after epoch 1 of 12" in out and "epoch   3/12" in out

    # a sized run without restarts re-plans its one cycle; a run on --crop windows does not
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda cfg, *a: 12)
    code, out, err = run(args[:-6] + ["--restart-epochs", "0", "--minutes", "16", "--out", "z",
                                      "--stop-after-epoch", "1"], capsys)
    assert code == 0, err
    assert "-> 12 epochs, the first cycle 12" in out
    monkeypatch.setattr(train_cli, "replan_first_cycle", lambda *a: pytest.fail("re-planned"))
    code, out, err = run(args + ["--crop", "40", "--out", "c", "--stop-after-epoch", "1"],
                         capsys)
    assert code == 0, err


def test_minutes_is_refused_where_it_cannot_size_the_recipe(tmp_path, capsys):
    for extra, message in ((["--epochs", "3"], "cannot be used with --epochs"),
                           (["--synthetic"], "or on the synthetic set")):
        code, _, err = run(["--minutes", "5", "--out", "x", *extra], capsys)
        assert code != 0 and "--minutes sizes the FER2013 recipe" in err and message in err


def test_a_checkpoint_from_before_photo_augment_resumes_as_without_it():
    """Runs saved before ``--photo-augment`` existed trained without the photo faults: a
    resume must say so (``--no-photo-augment``), not take the new default silently."""
    saved = {"photo_augment": False}
    assert train_cli.changed_settings({"photo_augment": False}, {}) == \
        train_cli.changed_settings({"photo_augment": False}, saved) == []
    assert train_cli.changed_settings({"photo_augment": True}, {}) == ["photo_augment"]



def test_init_starts_from_a_trained_models_weights(tmp_path, capsys):
    """--init loads a finished run's weights before the first step (a new learning-rate
    cycle on a trained model); a missing file or one from another architecture is refused
    by name."""
    assert run(QUICK + ["--epochs", "1", "--out", "a"], capsys)[0] == 0
    trained = minicnn.load(tmp_path / "a" / "final.npz").parameters()
    code, out, err = run(QUICK + ["--epochs", "1", "--lr", "1e-12", "--out", "b",
                                  "--init", str(tmp_path / "a" / "final.npz")], capsys)
    assert code == 0, err
    assert "starting from the weights in" in out
    # a learning rate of 1e-12 leaves the weights where --init put them
    tuned = minicnn.load(tmp_path / "b" / "final.npz").parameters()
    for name, value in trained.items():
        np.testing.assert_allclose(tuned[name], value, atol=1e-6, err_msg=name)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["init"].endswith("final.npz")
    # and without --init the same run starts elsewhere: the check above can fail
    assert run(QUICK + ["--epochs", "1", "--lr", "1e-12", "--out", "c", "--seed", "5"],
               capsys)[0] == 0
    other = minicnn.load(tmp_path / "c" / "final.npz").parameters()
    assert max(np.abs(other[k] - v).max() for k, v in trained.items()) > 1e-3

    code, _, err = run(QUICK + ["--epochs", "1", "--out", "d", "--arch", "default",
                                "--init", str(tmp_path / "a" / "final.npz")], capsys)
    assert code != 0 and "--init" in err and "different architecture" in err
    code, _, err = run(QUICK + ["--epochs", "1", "--out", "e",
                                "--init", str(tmp_path / "missing.npz")], capsys)
    assert code != 0 and "missing.npz" in err


def test_warm_restarts_start_new_cycles_and_resume_across_them(tmp_path, capsys):
    """--restart-epochs: the last epochs rerun a warm-up and a cosine from --restart-lr,
    with the optimizer started afresh, once or --restarts times; a run killed at a restart
    resumes to the same weights as one that was not."""
    cfg = train_cli.resolve_config(train_cli.build_parser().parse_args(
        ["--epochs", "4", "--restart-epochs", "2", "--restart-lr", "0.004"]))
    cfg["synthetic"] = True
    schedule = train_cli.make_schedule(train_cli.fill_recipe(cfg), 10)  # 10 steps an epoch
    plain = train_cli.make_schedule({**cfg, "epochs": 2, "restart_epochs": 0}, 10)
    assert [schedule(s) for s in range(20)] == [plain(s) for s in range(20)]
    # one epoch of warm-up, then the half cosine
    assert schedule(19) < 1e-5 and schedule(20) == pytest.approx(0.004 / 10)
    assert schedule(29) == pytest.approx(0.004)
    assert schedule(39) == pytest.approx(0.004 * 0.5 * (1 + np.cos(np.pi * 9 / 10)))
    assert train_cli.restart_steps(cfg, 10) == [20]
    # two restarts of 2 epochs in 5: cycles start at steps 10 and 30, each the same
    two = train_cli.fill_recipe({**cfg, "epochs": 5, "restarts": 2})
    schedule = train_cli.make_schedule(two, 10)
    assert train_cli.restart_steps(two, 10) == [10, 30]
    assert [schedule(s) for s in range(10, 30)] == [schedule(s) for s in range(30, 50)]
    assert schedule(10) == pytest.approx(0.004 / 10) and schedule(9) != schedule(10)

    args = QUICK + ["--epochs", "3", "--restart-epochs", "1", "--restarts", "2", "--seed", "2"]
    code, out, err = run(args + ["--out", "straight"], capsys)
    assert code == 0, err
    assert "ending in 2 warm restarts of 1" in out
    # the optimizer started afresh at the last restart: it counts its 3 steps, not 9
    assert int(read_npz(tmp_path / "straight" / "checkpoint.npz")["opt/__t__"]) == 3
    assert run(args + ["--out", "killed", "--stop-after-epoch", "2"], capsys)[0] == 0
    assert run(args + ["--out", "killed", "--resume"], capsys)[0] == 0
    a = read_npz(tmp_path / "straight" / "final.npz")
    b = read_npz(tmp_path / "killed" / "final.npz")
    for key in a:
        if key != "__spec__":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_crop_trains_the_first_cycle_on_windows_and_the_restarts_on_whole_faces(
        tmp_path, capsys, monkeypatch):
    """--crop N: the epochs before the first warm restart see N x N windows of the
    standardised faces; the restart's epochs and validation see whole 48x48 faces."""
    shapes = []
    real = minicnn.Sequential.forward

    def spy(self, x, *args, **kwargs):
        if self.training:
            shapes.append(x.shape[2:])
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(minicnn.Sequential, "forward", spy)
    code, out, err = run(QUICK + ["--epochs", "3", "--restart-epochs", "1", "--crop", "40",
                                  "--out", "c"], capsys)
    assert code == 0, err
    assert "40x40 windows until the first restart" in out
    assert shapes == [(40, 40)] * 6 + [(48, 48)] * 3  # 3 steps an epoch
    assert json.loads((tmp_path / "c" / "config.json").read_text())["crop"] == 40
    # the cropped epochs are validated on centre windows and are never the best epoch
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert [h.get("val_window") for h in metrics["history"]] == [40, 40, None]
    assert metrics["best_epoch"] == 3 and out.count("(40x40 centres)") == 2
    assert minicnn.load(tmp_path / "c" / "best.npz").metadata["epoch"] == 3
    for args, message in ((["--crop", "49"], "--crop 49 is larger than the 48x48 faces"),
                          (["--crop", "40", "--epochs", "2"], "needs --restart-epochs")):
        code, _, err = run(QUICK + args + ["--out", "d"], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err


def test_the_last_restart_trains_with_the_final_class_weights(tmp_path, capsys, monkeypatch):
    """Each step's loss gets --class-weights until the last warm restart's first step and
    --final-class-weights from there; a resume keeps the switch; a checkpoint from before
    the option existed resumes when both weights are its one."""
    seen = []
    real = train_cli.softmax_cross_entropy

    def spy(logits, y, smoothing, weights):
        seen.append(None if weights is None else weights.copy())
        return real(logits, y, smoothing, weights)

    monkeypatch.setattr(train_cli, "softmax_cross_entropy", spy)
    args = QUICK + ["--epochs", "5", "--restart-epochs", "1", "--restarts", "2",
                    "--final-class-weights", "balanced", "--out", "w"]
    code, out, err = run(args + ["--stop-after-epoch", "4"], capsys)
    assert code == 0, err
    assert "class weights of the last warm restart (balanced)" in out
    code, out, err = run(args + ["--resume"], capsys)
    assert code == 0, err
    assert len(seen) == 5 * 3  # 96 faces in 3 steps of 32
    first, last = seen[0], seen[-1]
    assert first is not None and last is not None and not np.allclose(first, last)
    for step, w in enumerate(seen):  # the last restart is epoch 5: steps 12-14
        np.testing.assert_array_equal(w, last if step >= 12 else first, err_msg=str(step))
    assert last.max() / last.min() > first.max() / first.min()  # 1/f spreads more than 1/sqrt(f)
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    old = {k: v for k, v in cfg.items() if k != "final_class_weights"}
    assert train_cli.changed_settings({**cfg, "final_class_weights": "sqrt"}, old) == []
    assert train_cli.changed_settings(cfg, old) == ["final_class_weights"]

    # A resume without the option keeps the run's own weights, whatever the default now
    # (here as if the recipe's capped); a run from before the option, its one set.
    real_fill = train_cli.fill_recipe

    def capped_default(cfg):
        cfg.setdefault("final_class_weights", None)
        cfg["final_class_weights"] = cfg["final_class_weights"] or "capped"
        return real_fill(cfg)

    monkeypatch.setattr(train_cli, "fill_recipe", capped_default)
    plain = QUICK + ["--epochs", "3", "--restart-epochs", "1", "--out", "o"]
    assert run(plain + ["--final-class-weights", "sqrt", "--stop-after-epoch", "1"],
               capsys)[0] == 0
    ckpt = tmp_path / "o" / "checkpoint.npz"
    arrays = read_npz(ckpt)
    saved = json.loads(str(arrays["config"]))
    del saved["final_class_weights"]  # as a checkpoint written before the option
    arrays["config"] = train_cli.json_array(saved)
    np.savez(ckpt, **arrays)
    seen.clear()
    code, out, err = run(plain + ["--resume", "--stop-after-epoch", "2"], capsys)
    assert code == 0, err
    assert len(seen) == 3 and "class weights of the last warm restart" not in out
    code, out, err = run(plain + ["--resume", "--final-class-weights", "balanced"], capsys)
    assert code == 2 and "final_class_weights: 'sqrt' -> 'balanced'" in err, err


def test_with_final_class_weights_the_best_epoch_is_one_of_the_last_restart(
        tmp_path, capsys, monkeypatch):
    """The last restart's re-weighting costs a little accuracy, so with other weights
    there best.npz is the best of its epochs once it has begun (before, the best so far),
    even when an earlier epoch scored higher; across resumes too, and from a checkpoint of
    an older version whose best epoch came before that restart. Without them, the best
    epoch of the whole run, as before."""
    # validation accuracy by epoch; the first cycle is epochs 1-2, the last restart 6-8
    scripted = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6, 5: 0.65, 6: 0.3, 7: 0.5, 8: 0.4}
    real = train_cli.evaluate_split
    epochs = []

    def fake(model, images, labels, tta="none", **kw):
        if "window" not in kw:  # the final report on best.npz: the real thing
            return real(model, images, labels, tta=tta)
        epochs.append(len(epochs) + 1)
        return 1.0, scripted[len(epochs)], None

    def best_of(name):
        doc = json.loads((tmp_path / name / "metrics.json").read_text())
        return doc["best_epoch"], doc["best_val_acc"]

    monkeypatch.setattr(train_cli, "evaluate_split", fake)
    args = QUICK + ["--epochs", "8", "--restart-epochs", "3", "--restarts", "2",
                    "--final-class-weights", "balanced"]
    best = {}
    for stop in (5, 6, 7, None):  # each part a process of its own, as after a kill
        code, out, err = run(args + ["--out", "f"] + (["--resume"] if stop != 5 else [])
                             + (["--stop-after-epoch", str(stop)] if stop else []), capsys)
        assert code == 0, err
        best[stop] = best_of("f")
    assert best == {5: (1, 0.9), 6: (6, 0.3), 7: (7, 0.5), None: (7, 0.5)}
    assert "best.npz will be the best of its epochs" in out
    assert "at epoch 7 (of the last restart's epochs)" in out
    assert minicnn.load(tmp_path / "f" / "best.npz").metadata["epoch"] == 7

    # a checkpoint of an older version: in the last restart, its best epoch before it
    epochs.clear()
    assert run(args + ["--out", "g", "--stop-after-epoch", "6"], capsys)[0] == 0
    ckpt = tmp_path / "g" / "checkpoint.npz"
    arrays = read_npz(ckpt)
    state = json.loads(str(arrays["state"]))
    state.update(best_epoch=1, best_val_acc=0.9)
    arrays["state"] = train_cli.json_array(state)
    np.savez(ckpt, **arrays)
    code, out, err = run(args + ["--out", "g", "--resume", "--stop-after-epoch", "7"], capsys)
    assert code == 0, err
    assert "the checkpoint's best epoch (1) comes before the last restart" in out
    assert best_of("g") == (7, 0.5)

    epochs.clear()
    code, out, err = run(QUICK + ["--epochs", "8", "--restart-epochs", "3", "--restarts",
                                  "2", "--out", "p"], capsys)  # one set of weights
    assert code == 0, err
    assert best_of("p") == (1, 0.9) and "last restart's epochs" not in out

    cfg = {"epochs": 8, "restart_epochs": 3, "class_weights": "sqrt",
           "final_class_weights": "capped"}
    assert train_cli.reweighted_from(cfg) == 6
    assert train_cli.reweighted_from({**cfg, "final_class_weights": "sqrt"}) is None

    def stopped_after(saved):
        return train_cli.interrupt_message(cfg, {"started": True, "saved": saved,
                                                 "epoch": saved + 1, "out": Path("r")})
    assert "(best.npz the best epoch so far)" in stopped_after(5)
    assert "(best.npz the best of the last restart's epochs so far)" in stopped_after(6)


def test_mix_batch_mixes_faces_and_returns_the_other_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 4, 4)).astype(np.float32)
    y = np.arange(6)
    mixed, other, lam = train_cli.mix_batch(x, 0.4, np.random.default_rng(7), y)
    again = np.random.default_rng(7)  # the same draws, in the same order
    assert lam == again.beta(0.4, 0.4) and 0 < lam < 1
    perm = again.permutation(6)
    np.testing.assert_array_equal(other, y[perm])
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[perm], rtol=1e-6)
    assert mixed.dtype == np.float32


def test_mixup_trains_on_the_mixed_loss_and_resumes_bit_for_bit(tmp_path, capsys,
                                                                 monkeypatch):
    """The network sees the mixed faces; each step's loss and gradient are lam times
    those on the faces' labels plus 1 - lam times those on the paired faces' labels, and
    the epoch's training loss is their mean; a resumed run ends in the same weights; a
    checkpoint from before the option resumes as without it."""
    lams, others, mixed, seen, losses, grads = [], [], [], [], [], []
    real_mix, real_loss = train_cli.mix_batch, train_cli.softmax_cross_entropy
    real_backward, real_forward = minicnn.Sequential.backward, minicnn.Sequential.forward

    def spy_mix(*args):
        out = real_mix(*args)
        mixed.append(out[0].copy())
        others.append(out[1].copy())
        lams.append(out[2])
        return out

    def spy_loss(logits, y, smoothing, weights):
        out = real_loss(logits, y, smoothing, weights)
        losses.append((y.copy(), out[1].copy(), out[0]))
        return out

    def spy_forward(self, x, *args, **kwargs):
        if self.training:
            seen.append(x.copy())
        return real_forward(self, x, *args, **kwargs)

    def spy_backward(self, d, **kwargs):
        grads.append(d.copy())
        return real_backward(self, d, **kwargs)

    monkeypatch.setattr(train_cli, "mix_batch", spy_mix)
    monkeypatch.setattr(train_cli, "softmax_cross_entropy", spy_loss)
    monkeypatch.setattr(minicnn.Sequential, "backward", spy_backward)
    monkeypatch.setattr(minicnn.Sequential, "forward", spy_forward)
    args = QUICK + ["--epochs", "2", "--mixup", "0.4"]
    code, out, err = run(args + ["--out", "straight"], capsys)
    assert code == 0, err
    assert len(lams) == len(grads) == len(seen) == 2 * 3 and len(losses) == 2 * len(grads)
    step_losses = []
    for k, lam in enumerate(lams):
        np.testing.assert_array_equal(seen[k], mixed[k])  # the network sees the mix
        (ya, da, la), (yb, db, lb) = losses[2 * k], losses[2 * k + 1]
        step_losses.append(lam * la + (1 - lam) * lb)
        np.testing.assert_array_equal(yb, others[k])  # the other faces' labels
        assert not np.array_equal(ya, yb) and sorted(ya) == sorted(yb)
        np.testing.assert_allclose(grads[k], lam * da + (1 - lam) * db, rtol=1e-5,
                                   atol=1e-8)
    assert len(set(lams)) == len(lams) and any(0.1 < lam < 0.9 for lam in lams)
    history = json.loads((tmp_path / "straight" / "metrics.json").read_text())["history"]
    for epoch in (0, 1):  # 3 steps of 32 faces an epoch
        assert history[epoch]["train_loss"] == pytest.approx(
            np.mean(step_losses[3 * epoch:3 * epoch + 3]), rel=1e-6)

    assert run(args + ["--out", "killed", "--stop-after-epoch", "1"], capsys)[0] == 0
    code, out, err = run(args + ["--out", "killed", "--resume"], capsys)
    assert code == 0, err
    a = read_npz(tmp_path / "straight" / "final.npz")
    b = read_npz(tmp_path / "killed" / "final.npz")
    for key in a:
        if key != "__spec__":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    code, out, err = run(args[:-2] + ["--out", "killed", "--resume"], capsys)
    assert code == 2 and "mixup: 0.4 -> 0.0" in err, err
    assert train_cli.changed_settings({"mixup": 0.0}, {}) == []  # before the option
    assert train_cli.changed_settings({"mixup": 0.2}, {}) == ["mixup"]
    with pytest.raises(SystemExit) as exc:
        train_cli.main(QUICK + ["--mixup", "-1", "--out", "m"])
    assert exc.value.code == 2 and "--mixup: must be >= 0" in capsys.readouterr().err


def test_class_weights_by_mode():
    """FER2013's class counts: every mode averages 1 over the faces; "balanced" gives each
    class the same total weight; "capped" is "balanced" with disgust held to 3x the
    median class; a class with no faces gets no weight."""
    counts = np.array([3995, 436, 4097, 7215, 4965, 4830, 3171])
    labels = np.repeat(np.arange(7), counts)
    assert train_cli.class_weight_vector(labels, "none") is None
    w = {mode: train_cli.class_weight_vector(labels, mode).astype(np.float64)
         for mode in ("sqrt", "balanced", "capped")}
    for mode, weights in w.items():
        assert (weights * counts).sum() == pytest.approx(counts.sum(), rel=1e-6), mode
    np.testing.assert_allclose(w["balanced"] * counts, counts.sum() / 7, rtol=1e-6)
    np.testing.assert_allclose(w["sqrt"] * np.sqrt(counts), (w["sqrt"] * np.sqrt(counts))[0],
                               rtol=1e-6)
    capped = w["capped"]
    assert capped[1] == pytest.approx(train_cli.WEIGHT_CAP * np.median(capped), rel=1e-6)
    others = np.arange(7) != 1  # below the cap: in the same proportions as "balanced"
    np.testing.assert_allclose(capped[others] / w["balanced"][others],
                               capped[0] / w["balanced"][0], rtol=1e-6)
    assert w["balanced"][1] > train_cli.WEIGHT_CAP * np.median(w["balanced"])
    missing = train_cli.class_weight_vector(np.repeat([0, 2, 3], [10, 20, 40]), "capped")
    assert missing[1] == 0 and missing[4:].sum() == 0 and (missing[[0, 2, 3]] > 0).all()
