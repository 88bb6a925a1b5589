"""The lr-finder flow under Prefect's test harness, on the offline digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.lr_finder import lr_finder
from lrf.candidates import TIE_TOLERANCE

pytestmark = pytest.mark.slow


def test_flow_writes_a_complete_run_folder_and_prefect_artifacts(prefect_api, tmp_path):
    summary = lr_finder(iterations=40, last_k=5, at_once=2, loader_workers=0, output_root=str(tmp_path))
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path.resolve()
    expected = {"init.params", "sweep.csv", "sweep.png", "candidate_losses.csv", "candidates.png",
                "final_losses.csv", "final_losses.md", "summary.json"}
    assert {p.name for p in run_dir.iterdir()} == expected
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["pick_lr"] == summary["pick_lr"] and on_disk["rule"] == "reference"
    # paths relative to the output root and to the run folder: the folder can be moved or shared
    assert on_disk["run_dir"] == run_dir.name and str(tmp_path.resolve()) not in (run_dir / "summary.json").read_text()
    rows = on_disk["final_losses"]
    (recommended,) = [r for r in rows if r["recommended"]]
    best = min(r["holdout_loss"] for r in rows if r["holdout_loss"] is not None)  # digits has a held-out split
    assert recommended["lr"] == on_disk["recommended_lr"]
    assert recommended["holdout_loss"] <= best * (1 + TIE_TOLERANCE)  # the best, or the lower rate of a tie
    assert on_disk["recommendation"]["measure"] == "holdout_loss" and on_disk["recommendation"]["evidence"]
    assert [row["multiplier"] for row in on_disk["final_losses"]] != []
    assert sorted(round(r["multiplier"], 9) for r in on_disk["final_losses"]) == [0.1, 1.0, 10.0]
    header = (run_dir / "candidate_losses.csv").read_text().splitlines()[0]
    assert header.count("lr=") == 3
    # the run's own cluster: two workers (at_once=2), candidates placed round-robin
    assert sorted(r["ran_on"] for r in rows) == ["lrf-cpu0 (cpu)", "lrf-cpu0 (cpu)", "lrf-cpu1 (cpu)"]
    assert "| ran on |" in (run_dir / "final_losses.md").read_text()

    from prefect.artifacts import Artifact

    table = Artifact.get("lr-finder-final-losses")
    assert table.type == "table" and str(run_dir) in table.description


def test_bad_parameter_fails_before_any_folder_is_made(prefect_api, tmp_path):
    with pytest.raises(ValueError, match="candidate_multipliers=\\[\\]"):
        lr_finder(candidate_multipliers=(), output_root=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()



def test_a_given_init_params_file_is_where_the_run_starts(prefect_api, tmp_path, dask_cluster):
    import mxnet as mx

    from lrf.cache import file_sha256
    from lrf.gluon.models import build_model, save_parameters

    given = save_parameters(build_model("small-cnn", 10, (1, 8, 8), mx.cpu(), seed=7), tmp_path / "mine.params")
    summary = lr_finder(init_params=str(given), candidate_rates=(0.05,), iterations=10, last_k=5, loader_workers=0,
                        output_root=str(tmp_path / "runs"), cluster=dask_cluster.address)
    assert (Path(summary["run_dir"]) / "init.params").read_bytes() == given.read_bytes()
    # the cache holds a copy named by the file's content, and every job started from it
    digest, cache = file_sha256(given), tmp_path / "runs" / "cache"
    assert (cache / f"init-given-{digest[:16]}.params").read_bytes() == given.read_bytes()
    started_from = [json.loads(path.read_text())["work"]["init_params"]
                    for pattern in ("sweep-*.json", "candidate-*.json") for path in cache.glob(pattern)]
    assert len(started_from) == 2 and set(started_from) == {digest}  # the sweep and the candidate


def test_refine_plan_halves_the_candidates_and_recommends_a_finalist(prefect_api, tmp_path, dask_cluster):
    summary = lr_finder(plan="refine", refine_rates=4, rungs=2, iterations=40, last_k=5, loader_workers=0,
                        output_root=str(tmp_path), cluster=dask_cluster.address)
    rungs = summary["rungs"]
    assert [len(r["rates"]) for r in rungs] <= [4, 2] and len(rungs[0]["rates"]) == 4
    assert [r["end"] for r in rungs] == [20, 40]  # 4 x 20 + 2 x 20 = 120 = 3 x 40
    assert set(rungs[1]["rates"]) <= set(rungs[0]["rates"])  # survivors only
    assert summary["recommended_lr"] in rungs[-1]["rates"]
    assert summary["compute"]["candidate_iterations"] <= 3 * 40
    rows = {row["lr"]: row for row in summary["final_losses"]}
    stopped = set(rungs[0]["rates"]) - set(rungs[1]["rates"])
    assert all(rows[lr]["iterations"] == 20 for lr in stopped)
    report = (Path(summary["run_dir"]) / "final_losses.md").read_text()
    assert "### Rung 1: 4 candidates" in report and "### Rung 2:" in report


def test_several_sweeps_report_the_median_pick_and_the_spread(prefect_api, tmp_path, dask_cluster):
    summary = lr_finder(sweeps=3, iterations=20, last_k=5, loader_workers=0, output_root=str(tmp_path),
                        cluster=dask_cluster.address)
    sweeps = summary["sweeps"]
    assert sweeps["count"] == 3 and len(sweeps["picks"]) == 3
    picks = sorted(p for p in sweeps["picks"] if p is not None)
    assert summary["pick_lr"] == picks[(len(picks) - 1) // 2]
    assert sweeps["spread"] == pytest.approx(picks[-1] / picks[0])
    files = {p.name for p in Path(summary["run_dir"]).iterdir()}
    assert {"sweep.csv", "sweep-1.csv", "sweep-2.csv"} <= files or {"sweep.csv", "sweep-0.csv"} <= files
    assert summary["compute"]["sweep_iterations"] > summary["sweep"]["iterations"]


def test_a_task_run_says_what_happened_in_its_state(prefect_api):
    from prefect import flow, task

    from tasks._ui import completed_as

    @task
    def diverging() -> tuple:
        return completed_as((1, None), "Diverged", "the loss was not finite")

    @flow
    def one_task():
        future = diverging.submit()
        return future.result(), future.state

    value, state = one_task()
    assert value == (1, None) and state.is_completed() and state.name == "Diverged"
    assert diverging.fn() == (1, None)  # a unit test calling the function gets the plain value


def test_reused_work_says_so_and_recompute_forces_it_again(prefect_api, tmp_path, dask_cluster):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

    def run(**kwargs) -> tuple[dict, list]:
        state = lr_finder(iterations=20, last_k=5, loader_workers=0, output_root=str(tmp_path), return_state=True,
                          cluster=dask_cluster.address, **kwargs)
        assert state.is_completed(), state.message
        flow_run_id = state.state_details.flow_run_id
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        names = {task: {r.state.name for r in runs if r.name.startswith(task)}
                 for task in ("initialise-model", "lr-sweep", "train-candidate")}
        return names, [a for a in artifacts if a.type == "progress"]

    first, bars = run()
    assert first == {"initialise-model": {"Completed"}, "lr-sweep": {"Completed"},
                     "train-candidate": {"Completed", "Diverged"} & first["train-candidate"] or {"Completed"}}
    assert len(bars) >= 5 and all(float(bar.data) == 100.0 for bar in bars)  # one bar per job, each finished
    again, _ = run()
    assert again["initialise-model"] == {"Reused"} and again["lr-sweep"] == {"Reused"}
    summary = json.loads(sorted(tmp_path.glob("run-*/summary.json"))[-1].read_text())
    assert summary["reused"][:2] == ["initialise-model", "lr-sweep 0"]  # and the report says so
    assert again["train-candidate"] <= {"Reused", "Diverged"}  # a diverged one says so first
    forced, _ = run(recompute=True)
    assert forced["initialise-model"] == {"Completed"} and forced["lr-sweep"] == {"Completed"}
    assert "Reused" not in forced["train-candidate"]


def test_lrf_flow_runs_the_users_recipe_with_their_optimizer_on_dask_workers(tmp_path):
    """The example project's recipe (examples/spirals: its own network, augmentation and data)
    with SGD, momentum 0.9 and weight decay, through ``lrf-flow`` as its README says: the jobs
    import the recipe on the run's own Dask workers, and the report says what was trained."""
    import subprocess
    import sys

    from tests.conftest import EXAMPLE_RECIPE

    done = subprocess.run([sys.executable, "-m", "flows.main", "--recipe", EXAMPLE_RECIPE, "--optimizer-params",
                           "momentum=0.9", "wd=5e-4", "--iterations", "80", "--at-once", "2", "--loader-workers", "0",
                           "--output-root", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.glob("run-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["setup"]["recipe"] == EXAMPLE_RECIPE
    assert summary["setup"]["optimizer_params"] == {"momentum": 0.9, "wd": 5e-4}
    assert summary["recommendation"]["measure"] == "holdout_loss"
    assert {row["ran_on"] for row in summary["final_losses"]} <= {"lrf-cpu0 (cpu)", "lrf-cpu1 (cpu)"}
    assert "trained with: sgd {'momentum': 0.9, 'wd': 0.0005}" in done.stdout
