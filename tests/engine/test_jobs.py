"""MXNet jobs on Dask workers: same results as in-process, paired candidates, failures reported,
a job whose worker dies run again on another."""

import os
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

from lrf import SweepConfig
from lrf.cluster import client_for, run_job
from lrf.config import Setup
from lrf import jobs
from lrf.cache import WorkCache
from lrf.gluon.experiment import run_sweep

SETUP = Setup(data="digits", loader_workers=0)


@pytest.fixture(scope="module")
def init_params(tmp_path_factory, local_jobs):
    return jobs.init_job(SETUP, WorkCache(tmp_path_factory.mktemp("init")), executor=local_jobs)


def test_initialisation_is_reproducible(init_params, tmp_path, local_jobs):
    again = jobs.init_job(SETUP, WorkCache(tmp_path), executor=local_jobs, slot=1)
    assert again.read_bytes() == Path(init_params).read_bytes()


def test_sweep_on_a_worker_equals_the_sweep_in_process(init_params, tmp_path, local_jobs):
    lines, done = [], []
    config = SweepConfig(max_iter=60)
    remote = jobs.sweep_job(SETUP, config, init_params, WorkCache(tmp_path), executor=local_jobs,
                            watch=jobs.Watch(report=lines.append, done=done.append), report_every=20)
    here = run_sweep(SETUP, config, init_params=init_params)
    assert remote.losses == here.losses and remote.lrs == here.lrs
    assert [line.split()[:2] for line in lines[:3]] == [["iteration", "0"], ["iteration", "20"], ["iteration", "40"]]
    assert lines[-1].startswith("sweep: 60 iterations") and len(lines) == 4  # each line once
    assert done == sorted(done) and done[-1] == 1.0
    assert len(list(tmp_path.glob("sweep-*.json"))) == 1  # kept in the cache


def test_candidates_are_paired_same_weights_same_batches_wherever_they_run(init_params, tmp_path, local_jobs):
    on = (0, 1, 1)  # the slots each runs on
    a = jobs.candidate_job(SETUP, init_params, 0.1, WorkCache(tmp_path / "a"), executor=local_jobs, slot=on[0], iterations=40, last_k=5)[0]
    b = jobs.candidate_job(SETUP, init_params, 0.01, WorkCache(tmp_path / "b"), executor=local_jobs, slot=on[1], iterations=40, last_k=5)[0]
    again = jobs.candidate_job(SETUP, init_params, 0.1, WorkCache(tmp_path / "c"), executor=local_jobs, slot=on[2], iterations=40, last_k=5)[0]
    assert a.losses[0] == b.losses[0]  # the first loss is before any step: same weights, same batch
    assert a.losses[1] != b.losses[1]  # then only the rate differs
    assert again.losses == a.losses  # another worker, the same numbers
    assert a.final_loss == a.losses[-1] and a.mean_last_k == pytest.approx(sum(a.losses[-5:]) / 5)
    assert 0 < a.holdout_accuracy <= 1 and a.holdout_loss > 0  # digits has a held-out split
    assert (a.ran_on, again.ran_on) == ("lrf-cpu0 (cpu)", "lrf-cpu1 (cpu)")  # where each ran


def test_a_diverging_candidate_stops_and_says_so(init_params, tmp_path, local_jobs):
    result = jobs.candidate_job(SETUP, init_params, 2.0, WorkCache(tmp_path), executor=local_jobs, iterations=200)[0]
    assert result.diverged and len(result.losses) < 200 and result.holdout_loss is None


def test_large_inputs_travel_with_the_job_without_a_warning(local_jobs):
    # ResNet-18's parameters (45 MB) go with every candidate on purpose (scattered data dies with
    # its worker): distributed's advice to scatter them must not reach the user's terminal
    inputs = {"init.params": os.urandom(12 * 2**20)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sizes = run_job(local_jobs, 0, lambda received, topic: {k: len(v) for k, v in received.items()},
                        inputs=inputs)
    assert sizes == {"init.params": 12 * 2**20}
    assert not [w for w in caught if "large" in str(w.message).lower()], [str(w.message) for w in caught]


def test_a_missing_input_is_named_before_any_work(tmp_path, local_jobs):
    with pytest.raises(RuntimeError, match="cannot read its init_params") as error:
        jobs.candidate_job(SETUP, tmp_path / "missing.params", 0.1, WorkCache(tmp_path), executor=local_jobs,
                           iterations=5)
    assert "missing.params" in str(error.value)
    assert not list(tmp_path.glob("candidate-*"))


def test_an_error_on_the_worker_is_raised_here_with_its_message(tmp_path, local_jobs):
    bad = tmp_path / "bad.params"
    bad.write_bytes(b"not parameters")
    with pytest.raises(RuntimeError, match="lrf job 'candidate' failed on its worker: .*Error"):
        jobs.candidate_job(SETUP, bad, 0.1, WorkCache(tmp_path), executor=local_jobs, iterations=5)
    assert not list(tmp_path.glob("candidate-*"))


def test_a_job_whose_worker_is_killed_runs_again_on_another_and_completes(init_params, tmp_path, local_jobs):
    started, outcome = threading.Event(), {}
    watch = jobs.Watch(done=lambda fraction: started.set())
    left_before = set(Path(tempfile.gettempdir()).glob("lrf-candidate-*"))

    def train():
        try:
            outcome["result"], _ = jobs.candidate_job(SETUP, init_params, 0.01, WorkCache(tmp_path),
                                                      executor=local_jobs, iterations=150, watch=watch)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            outcome["error"] = error

    thread = threading.Thread(target=train)
    thread.start()
    assert started.wait(120), "the job never reported progress"
    victim, victims_folder = _worker_pid(local_jobs, "lrf-cpu0"), _worker_folder(local_jobs, "lrf-cpu0")
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert len(result.losses) == 150 and result.ran_on == "lrf-cpu1 (cpu)"  # the other worker finished it
    assert len(list(tmp_path.glob("candidate-*.json"))) == 1
    # the killed job's temporary folder was in its worker's own, which the worker started in
    # its place removes: nothing is left in the system's temporary directory
    assert set(Path(tempfile.gettempdir()).glob("lrf-candidate-*")) <= left_before
    deadline = time.monotonic() + 120
    while Path(victims_folder).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(victims_folder).exists(), f"the killed worker's folder {victims_folder} was left"


def _worker_pid(cluster, name: str) -> int:
    return _on_worker(cluster, name, os.getpid)


def _worker_folder(cluster, name: str) -> str:
    return _on_worker(cluster, name, lambda dask_worker: dask_worker.local_directory)


def _on_worker(cluster, name: str, function):
    client, deadline = client_for(cluster.address), time.monotonic() + 60
    while True:  # a worker under heavy load may be between a restart and its registration
        workers = client.scheduler_info(n_workers=-1)["workers"]
        addresses = [addr for addr, info in workers.items() if str(info.get("name")) == name]
        if addresses or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert addresses, f"no worker named {name} among {[info.get('name') for info in workers.values()]}"
    return client.run(function, workers=addresses)[addresses[0]]
