"""``lrf find`` end to end on the offline default, and its usage errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lrf import StopReason, SweepResult
from lrf.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("find") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "lrf.cli", "find", "--out", str(out), "--loader-workers", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    return out, done


def test_find_writes_curve_plot_and_summary(run):
    out, done = run
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "sweep.csv", "sweep.png"]
    result = SweepResult.load(out / "sweep.csv")
    assert result.stop_reason is StopReason.DIVERGED  # the small CNN on digits diverges by itself
    summary = json.loads((out / "summary.json").read_text())
    assert summary["setup"]["data"] == "digits" and summary["setup"]["model"] == "small-cnn"
    assert summary["format"] == "lrf-run-summary" and summary["checked"] is False  # the flow's dialect
    assert summary["sweep"]["iterations"] == len(result) and summary["pick_lr"] == summary["pick"]["lr"]
    assert summary["rule"] == "reference"
    assert summary["pick"]["lr"] == summary["suggestions"]["reference"]["lr"]
    assert result.lrs[0] < summary["pick"]["lr"] < result.lrs[-1]
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_find_prints_the_suggestion_and_a_progress_bar(run):
    out, done = run
    summary = json.loads((out / "summary.json").read_text())
    assert f"suggested learning rate (reference): {summary['pick']['lr']:.3g}" in done.stdout
    bounds = summary["cyclical_range"]
    assert f"cyclical range (Smith 2017): {bounds['base_lr']:.3g} to {bounds['max_lr']:.3g}" in done.stdout
    assert "lr sweep" in done.stderr and "smoothed_loss=" in done.stderr


def test_same_seed_same_curve(tmp_path, run):
    out, _ = run
    assert main(["find", "--out", str(tmp_path / "again"), "--loader-workers", "0", "--no-progress"]) == 0
    first = SweepResult.load(out / "sweep.csv")
    again = SweepResult.load(tmp_path / "again" / "sweep.csv")
    assert again.losses == first.losses  # workers change nothing: same seed, same batches, same curve


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--model", "--device", "--batch-size", "--seed", "--loader-workers", "--lr-start",
                   "--lr-multiplier", "--lr-end", "--schedule", "--smoothing", "--min-iter", "--max-iter",
                   "--max-lr", "--criterion", "--rule", "--out", "--init-params"):
        assert option in text


@pytest.mark.parametrize(
    "args, option, value",
    [
        (["--lr-start", "0"], "--lr-start", "lr_start=0.0"),
        (["--lr-start", "-0.001"], "--lr-start", "lr_start=-0.001"),
        (["--lr-start", "nan"], "--lr-start", "lr_start=nan"),
        (["--lr-multiplier", "1"], "--lr-multiplier", "lr_multiplier=1.0"),
        (["--smoothing", "1.5"], "--smoothing", "smoothing=1.5"),
        (["--min-iter", "0"], "--min-iter", "min_iter=0"),
        (["--max-iter", "-3"], "--max-iter", "max_iter=-3"),
        (["--max-lr", "inf"], "--max-lr", "max_lr=inf"),
        (["--lr-end", "1e-9"], "--lr-end", "lr_end=1e-09"),
        (["--schedule", "linear"], "--schedule", "lr_end=None"),
        (["--batch-size", "0"], "--batch-size", "batch_size=0"),
        (["--batch-size", "5000"], "--batch-size", "batch_size=5000"),
        (["--seed", "-1"], "--seed", "seed=-1"),
        (["--loader-workers", "-2"], "--loader-workers", "loader_workers=-2"),
        (["--model", "resnet19"], "--model", "model='resnet19'"),
        (["--device", "gpu:7"], "--device", "device='gpu:7'"),
        (["--device", "tpu"], "--device", "device='tpu'"),
        (["--data", "mnist"], "--data", "data='mnist'"),
        (["--data", "rec:/nonexistent/train.rec"], "--data", "/nonexistent/train.rec"),
        (["--init-params", "/nonexistent.params"], "--init-params", "init_params='/nonexistent.params'"),
    ],
)
def test_usage_errors_exit_2_naming_option_and_value(tmp_path, capsys, args, option, value):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--out", str(out), "--no-progress", *args])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}:" in error and value in error
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("args", [["--rule", "magic"], ["--criterion", "magic"], ["--lr-start", "abc"]])
def test_argparse_rejects_choices_and_types_with_status_2(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--out", str(tmp_path / "run"), *args])
    assert exit_.value.code == 2
    assert f"argument {args[0]}" in capsys.readouterr().err


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("a previous run")
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--out", str(tmp_path), "--no-progress"])
    assert exit_.value.code == 2
    assert "argument --out" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_parameters_of_another_model_exit_2(tmp_path, capsys):
    import mxnet as mx

    from lrf.gluon.models import build_model, save_parameters

    params = save_parameters(build_model("resnet18_v2", 10, (3, 32, 32), mx.cpu()), tmp_path / "resnet.params")
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--out", str(tmp_path / "run"), "--no-progress", "--init-params", str(params)])
    assert exit_.value.code == 2
    assert "argument --init-params" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """``lrf find --check``: the run without Prefect, its jobs in this process."""
    root = tmp_path_factory.mktemp("check")
    args = ["find", "--check", "--iterations", "30", "--loader-workers", "0", "--no-progress",
            "--cache", str(root / "cache")]
    return root, args, main([*args, "--out", str(root / "first")])


def test_find_check_trains_the_candidates_and_recommends_one(checked, capsys):
    root, _, code = checked
    assert code == 0
    summary = json.loads((root / "first" / "summary.json").read_text())
    assert summary["format"] == "lrf-run-summary" and summary["checked"] is True  # the flow's artifacts
    assert summary["pick_lr"] == pytest.approx(summary["candidates"][0]) and len(summary["candidates"]) == 3
    assert summary["recommended_lr"] in summary["candidates"]
    assert [row["iterations"] for row in summary["final_losses"]] <= [30, 30, 30]
    assert {"final_losses.md", "candidates.png", "sweep.png", "init.params"} <= {p.name for p in (root / "first").iterdir()}
    assert summary["reused"] == []


def test_find_check_again_reuses_the_finished_work(checked, capsys):
    root, args, _ = checked
    first = json.loads((root / "first" / "summary.json").read_text())
    assert main([*args, "--out", str(root / "again")]) == 0
    again = json.loads((root / "again" / "summary.json").read_text())
    assert again["recommended_lr"] == first["recommended_lr"] and again["final_losses"] == first["final_losses"]
    assert set(again["reused"]) >= {"initialise-model", "lr-sweep 0"} and len(again["reused"]) == 5
    assert "5 job(s) reused" in capsys.readouterr().out


@pytest.mark.parametrize("args, option", [(["--iterations", "1"], "--iterations"), (["--sweeps", "0"], "--sweeps"),
                                          (["--plan", "refine", "--iterations", "3"], "--iterations")])
def test_find_check_refuses_a_bad_plan_before_any_work(tmp_path, capsys, args, option):
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--check", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), *args])
    assert exit_.value.code == 2 and f"argument {option}:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_find_check_trains_with_the_users_optimizer_and_keys_its_work_by_it(checked):
    root, args, _ = checked
    assert main([*args, "--optimizer", "sgd", "--optimizer-params", "momentum=0.9", "wd=5e-4",
                 "--out", str(root / "momentum")]) == 0
    summary = json.loads((root / "momentum" / "summary.json").read_text())
    assert summary["setup"]["optimizer"] == "sgd"
    assert summary["setup"]["optimizer_params"] == {"momentum": 0.9, "wd": 5e-4}
    assert summary["reused"] == []  # other training, other work: nothing of the plain-SGD run is reused
    plain = json.loads((root / "first" / "summary.json").read_text())
    assert [r["final_loss"] for r in summary["final_losses"]] != [r["final_loss"] for r in plain["final_losses"]]


def test_find_check_trains_the_users_recipe_with_their_optimizer(tmp_path):
    """The example project's own network, augmentation and data (examples/spirals), SGD with
    momentum and weight decay: the answer is for that set-up, and its work is keyed by it."""
    from tests.conftest import EXAMPLE_RECIPE

    args = ["find", "--check", "--recipe", EXAMPLE_RECIPE, "--optimizer-params", "momentum=0.9", "wd=5e-4",
            "--iterations", "100", "--loader-workers", "0", "--no-progress", "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())
    assert summary["setup"]["recipe"] == EXAMPLE_RECIPE and summary["setup"]["model"] is None
    assert summary["recommendation"]["measure"] == "holdout_loss"  # the recipe's held-out set judged
    best = min(row["holdout_loss"] for row in summary["final_losses"] if row["holdout_loss"] is not None)
    assert best < 0.5  # ln 3 = 1.1 is guessing: the user's network learned their data
    assert main([*args, "--out", str(tmp_path / "again")]) == 0
    assert len(json.loads((tmp_path / "again" / "summary.json").read_text())["reused"]) == 5


def test_a_recipe_without_a_held_out_set_is_judged_by_its_last_training_losses(tmp_path):
    assert main(["find", "--check", "--recipe", "tests.support.recipes:without_holdout", "--iterations", "30",
                 "--loader-workers", "0", "--no-progress", "--cache", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["recommendation"]["measure"] == "mean_last_k"
    assert "mean training loss of the last k iterations" in summary["recommendation"]["evidence"]


@pytest.mark.parametrize("recipe, message", [
    ("tests.support.recipes:not_a_recipe", "must return an lrf.recipe.Recipe, got dict"),
    ("tests.support.recipes:unfit", "its network does not fit its data (one input of shape (2,))"),
    ("tests.support.recipes:failing", "failed: ValueError: the data file moved"),
    ("tests.support.recipes:nothing_here", "defines no 'nothing_here'"),
    ("tests.support.no_such_module:recipe", "no module named 'tests.support.no_such_module'"),
])
def test_a_recipe_that_cannot_give_what_to_train_is_one_line_naming_it(tmp_path, capsys, recipe, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--check", "--recipe", recipe, "--loader-workers", "0", "--no-progress",
              "--cache", str(tmp_path / "cache"), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"recipe={recipe!r}" in err and message in err, err
    assert "Traceback" not in err and not out.exists()


def test_find_engine_torch_checks_recommends_and_reuses_its_work(tmp_path, capsys):
    """``lrf find --engine torch``: the same range test, check and cache on PyTorch's learner."""
    args = ["find", "--engine", "torch", "--check", "--iterations", "30", "--loader-workers", "0", "--no-progress",
            "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())
    assert summary["setup"]["engine"] == "torch" and summary["recommended_lr"] in summary["candidates"]
    assert {"init.pt", "sweep.csv", "final_losses.md"} <= {p.name for p in (tmp_path / "first").iterdir()}
    result = SweepResult.load(tmp_path / "first" / "sweep.csv")
    assert result.stop_reason is StopReason.DIVERGED and result.lrs[0] < summary["pick"]["lr"] < result.lrs[-1]
    assert main([*args, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert len(again["reused"]) == 5 and again["final_losses"] == summary["final_losses"]


@pytest.mark.parametrize("args, value", [(["--model", "resnet18_v2"], "model='resnet18_v2'"),
                                         (["--optimizer", "nag"], "optimizer must be one of torch.optim's"),
                                         (["--data", "cifar10"], "engine='torch' reads")])
def test_find_engine_torch_refuses_what_torch_cannot_train_with_status_2(tmp_path, capsys, args, value):
    with pytest.raises(SystemExit) as exit_:
        main(["find", "--engine", "torch", "--out", str(tmp_path / "run"), "--no-progress", *args])
    assert exit_.value.code == 2 and value in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
