"""Each task's function called directly with small real inputs (real MXNet, digits)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from prefect.logging import disable_run_logger

from lrf import SweepConfig, SweepResult
from lrf.candidates import CandidateResult, Selection
from lrf.config import CandidatePlan, Setup
from lrf.run import Training
from tasks.dataset import prepare_dataset
from tasks.inputs import check_inputs
from tasks.model import initialise_model
from tasks.run_folder import create_run_folder
from tasks.sweep import lr_sweep, select_lr
from tasks.train import train_candidate

SETUP = Setup(data="digits", loader_workers=0)


@pytest.fixture(autouse=True)
def no_run_logger():
    with disable_run_logger():
        yield


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    with disable_run_logger():
        return create_run_folder.fn(str(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def run_dir(folders):
    return folders.run_dir


@pytest.fixture(scope="module")
def cache_dir(folders):
    return folders.cache_dir


@pytest.fixture(scope="module")
def init_params(cache_dir, local_jobs):
    with disable_run_logger():
        return initialise_model.fn(SETUP, cache_dir, local_jobs)


@pytest.fixture(scope="module")
def sweep(cache_dir, init_params, local_jobs):
    with disable_run_logger():
        return lr_sweep.fn(SETUP, SweepConfig(), init_params, cache_dir, local_jobs)


def test_check_inputs_builds_the_configuration():
    setup, config, plan, execution = check_inputs.fn(setup={"data": "digits"}, sweep={"lr_start": 1e-5},
                                                     plan={"iterations": 7}, execution={"at_once": 2},
                                                     output_root="lrf-runs")
    assert setup.model == "small-cnn" and config.lr_start == 1e-5 and plan.iterations == 7
    assert execution.at_once == 2


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
def test_check_inputs_then_prepare_dataset_reject_bad_values(setup, sweep, plan, message):
    with pytest.raises(ValueError, match=message):
        setup, _, _, _ = check_inputs.fn(setup=setup, sweep=sweep, plan=plan, execution={}, output_root="lrf-runs")
        prepare_dataset.fn(setup)


def test_prepare_dataset_makes_paths_absolute(monkeypatch, cifar10_dir):
    CIFAR10 = cifar10_dir / "train.rec"
    monkeypatch.chdir(CIFAR10.parent)
    prepared = prepare_dataset.fn(Setup(data="rec:train.rec", loader_workers=0))
    source, path = prepared.data.split(":", 1)
    assert source == "rec" and Path(path).is_absolute() and Path(path).resolve() == CIFAR10.resolve()
    assert prepare_dataset.fn(SETUP) == SETUP


def test_run_folders_are_new_each_time_and_share_the_cache(tmp_path):
    first, second = create_run_folder.fn(str(tmp_path)), create_run_folder.fn(str(tmp_path))
    assert first.run_dir != second.run_dir and Path(first.run_dir).is_dir() and Path(second.run_dir).is_dir()
    assert first.cache_dir == second.cache_dir == str(tmp_path.resolve() / "cache")


def test_initialise_model_saves_the_parameters_once(init_params, cache_dir, local_jobs):
    path = Path(init_params)
    assert path.parent == Path(cache_dir) and path.name.startswith("init-") and path.stat().st_size > 0
    stamp = path.stat().st_mtime_ns
    assert initialise_model.fn(SETUP, cache_dir, local_jobs) == init_params
    assert path.stat().st_mtime_ns == stamp  # reused
    other = initialise_model.fn(replace(SETUP, seed=7), cache_dir, local_jobs)
    assert other != init_params and Path(other).read_bytes() != path.read_bytes()


def test_lr_sweep_returns_the_result_and_keeps_its_file(sweep, cache_dir):
    assert isinstance(sweep, SweepResult) and sweep.stop_reason.value == "diverged"
    (saved,) = Path(cache_dir).glob("sweep-*.json")
    assert SweepResult.load(saved) == sweep


def test_select_lr_gives_the_reference_candidates(sweep):
    selection = select_lr.fn([sweep], CandidatePlan())
    assert isinstance(selection, Selection) and selection.pick.ok
    pick = selection.pick_lr
    assert selection.candidates == pytest.approx((pick, 10 * pick, pick / 10))
    explicit = select_lr.fn([sweep], CandidatePlan(candidate_rates=(0.05, 0.2)))
    assert explicit.candidates == (0.05, 0.2)


def test_train_candidate_reports_losses_and_holdout(cache_dir, init_params, local_jobs):
    result, state = train_candidate.fn(SETUP, init_params, Training(0.1, 0, 30, last_k=5), cache_dir,
                                       local_jobs, slot=1)
    assert state is None  # trained to the end: nothing goes on from here
    assert isinstance(result, CandidateResult) and len(result.losses) == 30
    assert result.holdout_loss > 0 and 0 <= result.holdout_accuracy <= 1
    assert result.ran_on == "lrf-cpu1 (cpu)"  # the slot it was sent to
    saved = [json.loads(p.read_text()) for p in Path(cache_dir).glob("candidate-*.json")]
    assert [s["final_loss"] for s in saved if s["lr"] == 0.1 and s["iterations"] == 30] == [result.final_loss]


@pytest.mark.slow  # a temporary Prefect API first: about 20 s
def test_report_writes_every_artifact(prefect_api, run_dir, cache_dir, init_params, sweep, local_jobs):
    from lrf.execution import Execution
    from tasks.report import report

    plan = CandidatePlan(iterations=20, last_k=5)
    selection = select_lr.fn([sweep], plan)
    candidates = [train_candidate.fn(SETUP, init_params, Training(lr, 0, plan.iterations, plan.last_k), cache_dir,
                                     local_jobs, slot=i)[0]
                  for i, lr in enumerate(selection.candidates)]
    summary = report.fn(run_dir, SETUP, init_params, [sweep], selection, plan, Execution(), [candidates])
    files = {p.name for p in Path(run_dir).iterdir()}
    assert {"init.params", "sweep.csv", "sweep.png", "candidate_losses.csv", "candidates.png", "final_losses.csv",
            "final_losses.md", "summary.json"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    on_disk = json.loads((Path(run_dir) / "summary.json").read_text())
    assert on_disk["pick_lr"] == selection.pick_lr and on_disk["recommended_lr"] in selection.candidates
    spent = sum(len(c.losses) for c in candidates)  # a diverged candidate stops early
    assert on_disk["compute"]["candidate_iterations"] == spent and spent <= 60
    assert on_disk["compute"]["of_reference_check"] == pytest.approx(spent / 60, abs=1e-4)
    assert [row["rank"] for row in summary["final_losses"]] == [1, 2, 3]
    from prefect.artifacts import Artifact

    table = Artifact.get("lr-finder-final-losses")
    assert table is not None and "0.19873012250342248" not in table.data
    cells = [cell for row in json.loads(table.data) for cell in row.values()]
    assert all(not isinstance(cell, float) for cell in cells)  # formatted as the Markdown table is
    markdown = Artifact.get("lr-finder-report").data
    assert str(run_dir) in markdown and markdown.count("](data:image/png;base64,") == 2  # plots in the UI


def test_a_candidate_goes_on_from_its_saved_state_as_if_it_never_stopped(cache_dir, init_params, local_jobs):
    cluster = local_jobs
    whole, _ = train_candidate.fn(SETUP, init_params, Training(0.05, 0, 30, 5), cache_dir, cluster)
    first, state = train_candidate.fn(SETUP, init_params, Training(0.05, 0, 12, 5, saves_state=True), cache_dir,
                                      cluster, 0)
    assert state is not None and Path(state).is_file()
    rest, _ = train_candidate.fn(SETUP, init_params, Training(0.05, 12, 30, 5, resume_from=state), cache_dir,
                                 cluster, 1)  # on the other worker
    assert first.losses + rest.losses == pytest.approx(whole.losses, rel=1e-5)  # same batches, same state
    assert rest.holdout_loss == pytest.approx(whole.holdout_loss, rel=1e-5)


def test_setup_is_a_small_picklable_value():
    import pickle

    assert pickle.loads(pickle.dumps(replace(SETUP, seed=1))).seed == 1


def test_candidates_go_one_per_device_round_robin_each_lane_in_order():
    from tasks.stages import in_lanes  # what the flow submits its jobs with

    class Recording:  # in the place of a Prefect task: what in_lanes asks of it
        def __init__(self):
            self.submitted = []

        def submit(self, *, job, slot, wait_for):
            self.submitted.append((job, slot, list(wait_for)))
            return job

    task = Recording()
    from lrf.cluster import ClusterRef, local_slots
    from lrf.config import parse_devices

    ref = ClusterRef("tcp://127.0.0.1:1", tuple(local_slots(parse_devices("gpu:0,gpu:2"), at_once=None)), True)
    assert in_lanes(task, [dict(job=j) for j in range(5)], len(ref.slots)) == [0, 1, 2, 3, 4]  # in call order
    placed = {job: ref.slot(slot).label for job, slot, _ in task.submitted}
    assert [placed[j] for j in range(5)] == ["gpu:0", "gpu:2", "gpu:0", "gpu:2", "gpu:0"]
    assert {job: waits for job, _, waits in task.submitted} == {0: [], 1: [], 2: [0], 3: [1], 4: [2]}  # lanes
