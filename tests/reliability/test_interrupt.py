"""Killing things mid-way: nothing half-written, nothing left running, the model restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrf import _io
from tests.support.terminal import sigint_as_in_a_terminal

ROOT = Path(__file__).resolve().parents[2]


def _start(args, cwd):
    return subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_as_in_a_terminal)


def _wait_for(path_predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path_predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition never met")


@pytest.mark.slow  # four CLI processes importing their engine
@pytest.mark.parametrize("engine", ["mxnet", "torch"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_cli_killed_mid_sweep_leaves_no_output_and_no_temporaries(tmp_path, how, engine):
    out = tmp_path / "run"
    # a sweep that cannot diverge and runs for minutes unless stopped, with a loader process
    child = _start(["-m", "lrf.cli", "find", "--engine", engine, "--out", str(out), "--loader-workers", "1",
                    "--lr-multiplier", "1.00001", "--max-iter", "1000000"], ROOT)
    line = ""
    while "lr sweep" not in line:  # the progress bar is up: the sweep is training
        line = child.stderr.read(64)
        assert line or child.poll() is None, child.stderr.read()
    time.sleep(1.0)
    child.send_signal(how)
    child.wait(timeout=240)
    assert child.returncode in (128 + signal.SIGTERM, 1, -signal.SIGINT, 130), child.returncode
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    # its loader worker went with it
    time.sleep(0.5)
    assert not [pid for pid in _pids_with(str(out))], "a process of the killed run is still alive"


def test_atomic_write_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old,complete\n")
    script = (
        "import sys, time; from lrf import _io\n"
        "with _io.atomic_path(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'w') as f:\n"
        "        f.write('new,partial\\n'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.kill()
    child.wait()
    assert target.read_text() == "old,complete\n"  # never the partial content
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "table.csv"]
    assert all(name.startswith(".table.csv.") and name.endswith(".tmp") for name in leftovers)  # hidden, marked


def test_atomic_write_that_raises_removes_its_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with _io.atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("{")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_job_whose_worker_dies_each_time_fails_naming_it_and_leaves_nothing(tmp_path, local_jobs):
    """Dask runs a job whose worker died once more elsewhere; when that worker dies too, the job
    fails (its task alone), saying so, and no result is left half-written."""
    import threading

    from lrf.cluster import client_for
    from lrf.config import Setup
    from lrf import jobs
    from lrf.cache import WorkCache

    setup = Setup(data="digits", loader_workers=1)
    init = jobs.init_job(setup, WorkCache(tmp_path), executor=local_jobs)
    out = tmp_path / "cand"
    progress, outcome = [], {}

    def train():
        try:
            jobs.candidate_job(setup, init, 0.01, WorkCache(out), iterations=2000, executor=local_jobs,
                               watch=jobs.Watch(done=progress.append))
        except RuntimeError as error:
            outcome["error"] = str(error)

    client = client_for(local_jobs.address)
    thread = threading.Thread(target=train)
    thread.start()
    for _ in range(2):  # its worker, then the one it was moved to
        progress.clear()
        _wait_for(lambda: bool(progress))
        busy = [addr for addr, keys in client.processing().items() if any("lrf-candidate" in k for k in keys)]
        os.kill(client.run(os.getpid, workers=busy)[busy[0]], signal.SIGKILL)
    thread.join(timeout=120)
    assert "its worker died while running it, 2 times" in outcome["error"] and "lrf job 'candidate'" in outcome["error"]
    assert not out.exists() and not (tmp_path / "cand").exists()


class _Killer:
    def __init__(self, marker, how):
        import threading

        self.marker, self.how = marker, how
        self.thread = threading.Thread(target=self.run)

    def start(self):
        self.thread.start()

    def join(self):
        self.thread.join(timeout=60)

    def run(self):
        _wait_for(lambda: bool(list(_pids_with(self.marker))))
        time.sleep(4)  # into training
        for pid in _pids_with(self.marker):
            os.kill(pid, self.how)


def _pids_with(marker: str):
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                yield int(entry)


@pytest.mark.slow  # loader processes and SIGTERMs: about 8 s
def test_closing_loaders_in_a_process_that_exits_on_sigterm_never_hangs():
    """The loader stops its forked workers with SIGTERM; with the entry points' handler inherited,
    a worker could swallow the exit and the close wait for ever (found by the benchmarks)."""
    script = (
        "from lrf._signals import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        "from lrf.gluon.data import close_loader, load_dataset, make_batch_loader\n"
        "dataset, _ = load_dataset('digits')\n"
        "for _ in range(40):\n"
        "    loader = make_batch_loader(dataset, 128, 2)\n"
        "    next(iter(loader))\n"
        "    close_loader(loader)  # workers still busy with prefetched batches\n"
        "print('closed all', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        out, _ = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise AssertionError("closing a loader hung") from None
    assert child.returncode == 0 and "closed all" in out
