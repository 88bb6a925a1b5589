"""MXNet jobs in child processes: same results as in-process, paired candidates, crashes reported."""

import os
import signal
import threading
from pathlib import Path

import pytest

from lrf import SweepConfig
from lrf.gluon import jobs
from lrf.config import Setup
from lrf.gluon.experiment import run_sweep

SETUP = Setup(data="digits", workers=0)


@pytest.fixture(scope="module")
def init_params(tmp_path_factory):
    return jobs.init_job(SETUP, tmp_path_factory.mktemp("init") / "init.params")


def test_initialisation_is_reproducible(init_params, tmp_path):
    again = jobs.init_job(SETUP, tmp_path / "again.params")
    assert again.read_bytes() == Path(init_params).read_bytes()


def test_sweep_in_a_child_equals_the_sweep_in_process(init_params, tmp_path):
    lines = []
    config = SweepConfig(max_iter=60)
    child = jobs.sweep_job(SETUP, config, init_params, tmp_path / "sweep.json", watch=jobs.Watch(report=lines.append),
                           report_every=20)
    here = run_sweep(SETUP, config, init_params=init_params)
    assert child.losses == here.losses and child.lrs == here.lrs
    assert [line.split()[:2] for line in lines[:3]] == [["iteration", "0"], ["iteration", "20"], ["iteration", "40"]]
    assert (tmp_path / "sweep.json").is_file()


def test_candidates_are_paired_same_weights_same_batches(init_params, tmp_path):
    a = jobs.candidate_job(SETUP, init_params, 0.1, tmp_path / "a.json", iterations=40, last_k=5, threads=1)
    b = jobs.candidate_job(SETUP, init_params, 0.01, tmp_path / "b.json", iterations=40, last_k=5, threads=1)
    again = jobs.candidate_job(SETUP, init_params, 0.1, tmp_path / "c.json", iterations=40, last_k=5, threads=1)
    assert a.losses[0] == b.losses[0]  # the first loss is before any step: same weights, same batch
    assert a.losses[1] != b.losses[1]  # then only the rate differs
    assert again.losses == a.losses
    assert a.final_loss == a.losses[-1] and a.mean_last_k == pytest.approx(sum(a.losses[-5:]) / 5)
    assert 0 < a.holdout_accuracy <= 1 and a.holdout_loss > 0  # digits has a held-out split


def test_a_diverging_candidate_stops_and_says_so(init_params, tmp_path):
    result = jobs.candidate_job(SETUP, init_params, 2.0, tmp_path / "x.json", iterations=200, threads=1)
    assert result.diverged and len(result.losses) < 200 and result.holdout_loss is None


def test_a_failing_job_raises_with_its_last_lines(tmp_path):
    with pytest.raises(RuntimeError, match="exit status 1") as error:
        jobs.candidate_job(SETUP, tmp_path / "missing.params", 0.1, tmp_path / "x.json", iterations=5)
    assert "missing.params" in str(error.value)
    assert not (tmp_path / "x.json").exists()


def test_a_killed_job_is_reported_as_killed(init_params, tmp_path):
    out = tmp_path / "killed.json"
    outcome = {}

    def train():
        try:
            jobs.candidate_job(SETUP, init_params, 0.01, out, iterations=100_000, threads=1)
        except RuntimeError as error:
            outcome["error"] = str(error)

    thread = threading.Thread(target=train)
    thread.start()
    pid = _wait_for_child(str(out))
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert "killed by signal 9" in outcome["error"]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []  # nothing half-written


def _wait_for_child(marker: str, timeout: float = 60) -> int:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "lrf.gluon.jobs" in cmdline and marker in cmdline:
                    time.sleep(3)  # let it get into training
                    return int(entry)
        time.sleep(0.2)
    raise AssertionError("the job's process never appeared")
