"""Each task's function called directly with small real inputs (real MXNet, digits)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from prefect.logging import disable_run_logger

from lrf import SweepConfig, SweepResult
from lrf.check import CandidateResult, CheckPlan, Selection
from lrf.gluon.experiment import Setup
from tasks.dataset import prepare_dataset
from tasks.inputs import check_inputs
from tasks.model import create_run_folder, initialise_model
from tasks.sweep import lr_sweep, select_lr
from tasks.train import train_candidate

CIFAR10 = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10" / "train.rec"
SETUP = Setup(data="digits", workers=0)


@pytest.fixture(autouse=True)
def no_run_logger():
    with disable_run_logger():
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    with disable_run_logger():
        return create_run_folder.fn(str(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def init_params(run_dir):
    with disable_run_logger():
        return initialise_model.fn(SETUP, run_dir)


@pytest.fixture(scope="module")
def sweep(run_dir, init_params):
    with disable_run_logger():
        return lr_sweep.fn(SETUP, SweepConfig(), init_params, run_dir)


def test_check_inputs_builds_the_three_plans():
    setup, config, plan = check_inputs.fn(setup={"data": "digits"}, sweep={"lr_start": 1e-5}, plan={"parallel": 2})
    assert setup.model == "small-cnn" and config.lr_start == 1e-5 and plan.parallel == 2


@pytest.mark.parametrize(
    "setup, sweep, plan, message",
    [
        ({"batch_size": 0}, {}, {}, "batch_size=0"),
        ({"model": "nope"}, {}, {}, "model='nope'"),
        ({"device": "gpu:5"}, {}, {}, "device='gpu:5'"),
        ({}, {"lr_multiplier": 0.9}, {}, "lr_multiplier=0.9"),
        ({}, {}, {"candidate_rates": (0.1, 0.1)}, "must not repeat"),
        ({}, {}, {"iterations": 0}, "iterations=0"),
    ],
)
def test_check_inputs_rejects_bad_values(setup, sweep, plan, message):
    with pytest.raises(ValueError, match=message):
        check_inputs.fn(setup=setup, sweep=sweep, plan=plan)


def test_prepare_dataset_makes_paths_absolute(monkeypatch):
    monkeypatch.chdir(CIFAR10.parent)
    prepared = prepare_dataset.fn(Setup(data="rec:train.rec", workers=0))
    assert prepared.data == f"rec:{CIFAR10}"
    assert prepare_dataset.fn(SETUP) == SETUP


def test_run_folders_are_new_each_time(tmp_path):
    first, second = create_run_folder.fn(str(tmp_path)), create_run_folder.fn(str(tmp_path))
    assert first != second and Path(first).is_dir() and Path(second).is_dir()


def test_initialise_model_saves_the_parameters(init_params, run_dir):
    assert init_params == str(Path(run_dir) / "init.params") and Path(init_params).stat().st_size > 0


def test_lr_sweep_returns_the_result_and_keeps_its_file(sweep, run_dir):
    assert isinstance(sweep, SweepResult) and sweep.stop_reason.value == "diverged"
    assert SweepResult.load(Path(run_dir) / "sweep.json") == sweep


def test_select_lr_gives_the_reference_candidates(sweep):
    selection = select_lr.fn(sweep, CheckPlan())
    assert isinstance(selection, Selection) and selection.suggestion.ok
    pick = selection.chosen_lr
    assert selection.candidates == pytest.approx((pick, 10 * pick, pick / 10))
    explicit = select_lr.fn(sweep, CheckPlan(candidate_rates=(0.05, 0.2)))
    assert explicit.candidates == (0.05, 0.2)


def test_train_candidate_reports_losses_and_holdout(run_dir, init_params):
    result = train_candidate.fn(SETUP, init_params, 0.1, 30, 5, 2, run_dir)
    assert isinstance(result, CandidateResult) and len(result.losses) == 30
    assert result.holdout_loss > 0 and 0 <= result.holdout_accuracy <= 1
    saved = json.loads((Path(run_dir) / "candidates" / "lr-0.1.json").read_text())
    assert saved["final_loss"] == result.final_loss


def test_report_writes_every_artifact(prefect_api, run_dir, init_params, sweep):
    from tasks.report import report

    plan = CheckPlan(iterations=20, last_k=5)
    selection = select_lr.fn(sweep, plan)
    candidates = [train_candidate.fn(SETUP, init_params, lr, 20, 5, 3, run_dir) for lr in selection.candidates]
    summary = report.fn(run_dir, SETUP, sweep, selection, plan, candidates)
    files = {p.name for p in Path(run_dir).iterdir()}
    assert {"sweep.csv", "sweep.png", "candidate_losses.csv", "candidates.png", "final_losses.csv",
            "final_losses.md", "summary.json"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    assert json.loads((Path(run_dir) / "summary.json").read_text())["chosen_lr"] == selection.chosen_lr
    assert [row["rank"] for row in summary["final_losses"]] == [1, 2, 3]
    from prefect.artifacts import Artifact

    assert Artifact.get("lr-finder-final-losses") is not None
    assert str(run_dir) in Artifact.get("lr-finder-report").data


def test_setup_is_a_small_picklable_value():
    import pickle

    assert pickle.loads(pickle.dumps(replace(SETUP, seed=1))).seed == 1
