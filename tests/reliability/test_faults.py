"""Faults in a running pipeline: a candidate's process killed, two runs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _busy_worker_pid(known: set[str], job: str = "lrf-candidate", timeout: float = 600) -> int:
    """The pid of a worker of the run's own cluster (a cluster this process has a client for,
    other than ``known``) while it runs a ``job``."""
    from lrf import cluster

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address in set(cluster._clients) - known:
            client = cluster.client_for(address)
            busy = [addr for addr, keys in client.processing().items() if any(job in k for k in keys)]
            if busy:
                time.sleep(2)  # let it train a little
                return client.run(os.getpid, workers=busy[:1])[busy[0]]
        time.sleep(0.1)
    raise AssertionError(f"no {job} was seen running")


def test_a_killed_candidate_worker_loses_nothing_its_job_runs_again(prefect_api, tmp_path, local_jobs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.lr_finder import lr_finder
    from lrf import cluster

    known, killed = set(cluster._clients), []
    killer = threading.Thread(target=lambda: killed.append(os.kill(_busy_worker_pid(known), signal.SIGKILL)))
    killer.start()
    state = lr_finder(iterations=300, last_k=5, at_once=2, loader_workers=0, output_root=str(tmp_path), return_state=True)
    killer.join()
    assert killed, "no candidate's worker was killed"
    assert state.is_completed(), state.message
    summary = state.result()
    assert len(summary["final_losses"]) == 3 and (Path(summary["run_dir"]) / "summary.json").is_file()
    assert all(row["iterations"] == 300 for row in summary["final_losses"])  # the killed one trained again, whole

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    trainings = [r for r in runs if r.name.startswith("train-candidate")]
    assert all(r.state.is_completed() for r in trainings)
    assert sorted(r.name for r in trainings) == sorted(
        f"train-candidate-lr-{lr:.4g}-to-300" for lr in summary["candidates"]  # the rate, and how far it trains
    )


def test_two_runs_at_once_on_one_output_root_both_complete_apart(prefect_api, tmp_path, dask_cluster):
    from prefect.settings import PREFECT_API_URL

    from lrf import history

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    # on the session's cluster: what they share is the output root, not a cluster of their own each
    script = ("from flows.lr_finder import lr_finder; import json, sys; "
              "print(json.dumps(lr_finder(iterations=60, last_k=5, at_once=2, loader_workers=0, "
              f"cluster={dask_cluster.address!r}, output_root={str(tmp_path)!r})['run_dir']))")
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=800) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-3000:]
    run_dirs = [Path(json.loads(out.strip().splitlines()[-1])) for out, _ in outputs]
    assert run_dirs[0] != run_dirs[1] and {p.parent for p in run_dirs} == {tmp_path.resolve()}
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    assert summaries[0]["run_dir"] != summaries[1]["run_dir"]
    assert summaries[0]["recommended_lr"] == summaries[1]["recommended_lr"]  # same parameters, same answer
    for d in run_dirs:  # nothing of one run in the other's folder, nothing half-written anywhere
        assert {p.name for p in d.iterdir()} >= {"summary.json", "final_losses.csv", "sweep.png", "init.params"}
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert sorted(r["run_dir"] for r in history.read_history(tmp_path)) == sorted(d.name for d in run_dirs)


def test_a_flow_killed_during_candidate_training_resumes_without_redoing_work(prefect_api, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    script = ("from flows.lr_finder import lr_finder; import json; "
              "print(json.dumps(lr_finder(iterations=400, last_k=5, at_once=1, loader_workers=0, "
              f"output_root={str(tmp_path)!r})['run_dir']))")
    cache = tmp_path / "cache"

    first = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(cache.glob("candidate-*.json")):
        assert first.poll() is None, first.communicate()[1][-3000:]
        time.sleep(0.1)
    time.sleep(1)  # a later candidate is training now
    os.killpg(first.pid, signal.SIGKILL)  # the flow and its job processes, at once
    first.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    # one or two finished (the 10x candidate may diverge within the second), the last one was training
    assert 1 <= len([n for n in done_before if n.startswith("candidate-")]) < 3
    assert any(n.startswith("sweep-") for n in done_before) and any(n.startswith("init-") for n in done_before)
    (killed_run,) = list(tmp_path.glob("run-*"))
    assert not (killed_run / "summary.json").exists()  # the killed run's folder does not look complete

    again = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=800)
    assert again.returncode == 0, again.stderr[-3000:]
    run_dir = Path(json.loads(again.stdout.strip().splitlines()[-1]))
    assert run_dir != killed_run and (run_dir / "summary.json").is_file()
    after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {name: after[name] for name in done_before} == done_before  # finished work was not redone
    assert len([n for n in after if n.startswith("candidate-")]) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["final_losses"]) == 3


FIND = ["-m", "lrf.cli", "find", "--loader-workers", "0", "--max-iter", "600", "--lr-multiplier", "1.015"]


def _find(out: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, *FIND, "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=err, text=True)


def _refused_naming_out(log: Path, out: Path) -> None:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and "argument --out" in lines[0] and str(out) in lines[0], lines
    assert "lr sweep" not in lines[0]  # refused before its sweep


def _complete(out: Path) -> None:
    assert sorted(os.listdir(out)) == ["summary.json", "sweep.csv", "sweep.png"]  # one run's, whole
    assert json.loads((out / "summary.json").read_text())["sweep"]["iterations"] > 0


def test_a_second_lrf_find_into_a_folder_being_written_is_refused_before_its_sweep(tmp_path, capsys):
    from lrf.cli import main as cli_main

    out = tmp_path / "result"
    first = _find(out, tmp_path / "first.err")
    deadline = time.monotonic() + 300
    while "lr sweep" not in (tmp_path / "first.err").read_text():  # sweeping: the folder is taken
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.err").read_text()
        time.sleep(0.1)
    for late in ("second", "third"):  # the second's refusal must not free the folder for the third
        refused = _find(out, tmp_path / f"{late}.err")
        assert refused.wait(timeout=120) == 2
        _refused_naming_out(tmp_path / f"{late}.err", out)
    assert first.poll() is None, "the first run was meant to be still sweeping; make its sweep longer"
    assert first.wait(timeout=300) == 0, (tmp_path / "first.err").read_text()[-2000:]
    _complete(out)
    with pytest.raises(SystemExit) as exit_:  # and a finished folder is nobody else's either
        cli_main(["find", "--out", str(out), "--no-progress"])
    assert exit_.value.code == 2 and "exists and is not an empty folder" in capsys.readouterr().err
    _complete(out)


def test_two_lrf_find_started_at_once_into_one_out_one_is_refused(tmp_path):
    out = tmp_path / "new" / "result"
    runs = [_find(out, tmp_path / f"{i}.err") for i in range(2)]
    statuses = [run.wait(timeout=300) for run in runs]
    assert sorted(statuses) == [0, 2], [(tmp_path / f"{i}.err").read_text()[-2000:] for i in range(2)]
    _refused_naming_out(tmp_path / f"{statuses.index(2)}.err", out)
    _complete(out)
