"""``lrf-flow`` stopped by SIGTERM or Ctrl-C: it stops promptly, leaves no process behind (the
temporary Prefect server included), and the same command again goes on from the cache.

"No process behind" does not depend on how the jobs are executed (a child process per
job, worker processes of a cluster the flow starts, ...): 15 s after the signal, no
process may remain that was ever seen below the ``lrf-flow`` process, or that carries
this run's marker or its ``PREFECT_HOME`` in its environment (a process reparented to
PID 1 keeps its environment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.terminal import sigint_as_in_a_terminal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STOPPED_WITHIN = 15.0  # seconds from the signal to: lrf-flow gone, and nothing of it left
# three candidates one after another, long enough to be stopped while one trains
FLOW_ARGS = ["--candidate-rates", "0.05", "0.1", "0.02", "--iterations", "600", "--last-k", "5",
             "--at-once", "1", "--loader-workers", "0"]


class FlowProcess:
    """``lrf-flow`` with its own PREFECT_HOME (so Prefect starts a temporary server), in a
    session of its own (so Ctrl-C can be sent to its group as a terminal does), and a
    watcher that records every process ever seen below it."""

    def __init__(self, tmp: Path, prefect_home: Path, args: list[str]):
        self.marker = f"lrf-stop-test-{uuid.uuid4().hex}"
        self.prefect_home = prefect_home
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=str(prefect_home), LRF_STOP_TEST=self.marker)
        self.log = tmp / f"lrf-flow-{self.marker[-6:]}.log"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "flows.main", *args], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=sigint_as_in_a_terminal)
        self.seen: set[tuple[int, str]] = set()
        self._watching = True
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while self._watching:
            self.seen.update(_descendants(self.process.pid))
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition, what: str, timeout: float = 600):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"lrf-flow ended before {what}:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def stop(self, how: int, group: bool = False, again_after: float | None = None) -> tuple[int, float]:
        """Send ``how`` (to the process group, as a terminal's Ctrl-C does, if ``group``; once more
        after ``again_after`` seconds if it is still running, as an impatient user does); return
        the exit status and the seconds it took to exit, after checking that nothing of the run
        is left ``STOPPED_WITHIN`` seconds after the (first) signal."""
        self.seen.update(_descendants(self.process.pid))
        sent = time.monotonic()
        (os.killpg if group else os.kill)(self.process.pid, how)
        try:
            if again_after is not None:
                try:
                    self.process.wait(timeout=again_after)
                except subprocess.TimeoutExpired:
                    self.process.send_signal(how)
            status = self.process.wait(timeout=max(0.0, STOPPED_WITHIN - (time.monotonic() - sent)))
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - sent
        self._watching = False
        self._thread.join()
        # once every process tied to the run is gone none can start again (what could start
        # one is among them), so the first empty look is as good as the one at the deadline
        left = self.left_behind()
        while left and time.monotonic() - sent < STOPPED_WITHIN:
            time.sleep(0.2)
            left = self.left_behind()
        for pid in left:  # do not leave them to the next test either
            _kill(pid)
        if status is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        assert status is not None, f"lrf-flow still running {STOPPED_WITHIN} s after the signal"
        assert not left, f"left behind {STOPPED_WITHIN} s after the signal: {left}"
        return status, took

    def kill_all(self) -> None:
        """After a failed test: nothing of this run stays for the next one."""
        self._watching = False
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self.left_behind():
            _kill(pid)

    def left_behind(self) -> dict[int, str]:
        """Every live process tied to this run: seen below lrf-flow (same pid and start time),
        or carrying its marker or its PREFECT_HOME in its environment."""
        tied = {pid for pid, start in self.seen if _start_time(pid) == start}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    environ = Path(f"/proc/{entry}/environ").read_bytes()
                except OSError:
                    continue
                if self.marker.encode() in environ or f"PREFECT_HOME={self.prefect_home}\0".encode() in environ:
                    tied.add(int(entry))
        return {pid: _cmdline(pid) for pid in tied if _alive(pid)}


def _descendants(root: int) -> set[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            start = _start_time(pid)
            if start is not None:
                found.add((pid, start))
            todo.append(pid)
    return found


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[19] if stat else None


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def _kill(pid: int):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _kill_everything_of(process: subprocess.Popen, seen: set) -> None:
    """After a test, whatever it left: every process seen below ``process`` (still the same
    one), whatever is below it now, and its process group."""
    for pid, start in seen | _descendants(process.pid):
        if _start_time(pid) == start:
            _kill(pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _cache(root: Path) -> dict[str, int]:
    cache = root / "cache"
    return {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} if cache.is_dir() else {}


def _candidates(root: Path) -> list[str]:
    return sorted(name for name in _cache(root) if name.startswith("candidate-") and name.endswith(".json"))


@pytest.fixture
def start_flow():
    """``start_flow(tmp, home, args)`` starts a :class:`FlowProcess`; whatever is left of it when
    the test ends (a failed one) is killed."""
    started: list[FlowProcess] = []

    def start(*args) -> FlowProcess:
        started.append(FlowProcess(*args))
        return started[-1]

    yield start
    for flow in started:
        flow.kill_all()


def test_sigterm_twice_while_the_temporary_server_starts_leaves_nothing(tmp_path, start_flow):
    flow = start_flow(tmp_path, tmp_path / "prefect", [*FLOW_ARGS, "--output-root", str(tmp_path / "runs")])
    flow.wait_for(lambda: "Starting temporary server" in flow.output(), "temporary server starting")
    time.sleep(1.0)  # uvicorn is up or coming up
    status, took = flow.stop(signal.SIGTERM, again_after=0.5)  # the second one while it unwinds
    # 143 from the first; a second SIGTERM that lands while the interpreter finalises (handlers
    # back at their defaults) ends it the default way: -15
    assert status in (128 + signal.SIGTERM, -signal.SIGTERM), flow.output()[-3000:]
    assert "Traceback" not in flow.output(), flow.output()[-3000:]


def test_sigterm_then_ctrl_c_during_training_stop_everything_and_the_rerun_resumes(tmp_path, start_flow):
    root, home = tmp_path / "runs", tmp_path / "prefect"  # one Prefect home: the second server starts faster
    args = [*FLOW_ARGS, "--output-root", str(root)]

    # SIGTERM (as `kill` sends it, to lrf-flow alone) while the second candidate trains
    first = start_flow(tmp_path, home, args)
    first.wait_for(lambda: len(_candidates(root)) == 1, "first candidate finished")
    time.sleep(1.5)
    status, took = first.stop(signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, first.output()[-3000:]
    print(f"SIGTERM: lrf-flow exited in {took:.1f} s")
    assert "stopped by SIGTERM" in first.output()
    done = _cache(root)
    assert len(_candidates(root)) == 1 and any(n.startswith("sweep-") for n in done), done
    (stopped_run,) = root.glob("run-*")
    assert not (stopped_run / "summary.json").exists()  # a stopped run's folder does not look complete

    # the same command again: reuses the finished work, trains the second candidate; then
    # Ctrl-C, to the whole process group as a terminal sends it, while the third trains
    second = start_flow(tmp_path, home, args)
    second.wait_for(lambda: len(_candidates(root)) == 2, "second candidate finished")
    time.sleep(1.5)
    status, took = second.stop(signal.SIGINT, group=True)
    assert status == 128 + signal.SIGINT, second.output()[-3000:]
    print(f"Ctrl-C: lrf-flow exited in {took:.1f} s")
    after = _cache(root)
    assert {name: after[name] for name in done} == done  # finished work was reused, not redone
    assert len(_candidates(root)) == 2


# --- the mechanism alone, framework-free, in seconds ------------------------------------

SCRIPT = """
import os, signal, subprocess, sys, threading, time
from lrf._signals import stop_started_processes

stuck = sys.argv[1] != "unwinds"
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
deaf = [sys.executable, "-c", "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"]
with stop_started_processes(spare=lambda argv: "server" in argv, grace=float(sys.argv[2])):
    server = subprocess.Popen([*sleeper, "server"])  # spared while the run unwinds
    job = subprocess.Popen(deaf if stuck else sleeper)  # a job (with a child of its own when stuck)
    waiter = threading.Thread(target=job.wait)  # a task runner's thread, waiting on its job
    waiter.start()
    print("running", server.pid, flush=True)
    while True:
        if stuck:
            waiter.join()  # never returns: the job ignores SIGTERM
        time.sleep(0.1)
"""


@pytest.mark.parametrize("case, grace, within", [("unwinds", 3, 5), ("stuck", 3, 8), ("server-gone", 12, 9)])
def test_everything_a_stopped_run_started_ends_with_it(tmp_path, case, grace, within):
    """``unwinds``: SIGTERM becomes SystemExit, the job is stopped at once, the spared "server"
    when the process exits. ``stuck``: the main thread waits for ever on a job that ignores
    SIGTERM (and has a child): after the grace period all of it is killed and the process
    exits. ``server-gone``: stuck too, but the spared server ends right after the signal (as
    a Ctrl-C to the whole group ends Prefect's): the end comes without the whole grace."""
    marker = f"lrf-stop-test-{uuid.uuid4().hex}"
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, case, str(grace)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "LRF_STOP_TEST": marker}, start_new_session=True)
    seen: set = set()
    try:
        running, server = process.stdout.readline().split()
        assert running == "running"
        time.sleep(2.0)  # the watcher has seen the server, the stuck job's child is up
        seen = _descendants(process.pid)
        assert len(seen) == (2 if case == "unwinds" else 3), seen  # server, job (and its child)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        if case == "server-gone":
            _kill(int(server))
        status = process.wait(timeout=20)
        took = time.monotonic() - sent
        left = {pid for pid, start in seen if _start_time(pid) == start and _alive(pid)}
        assert not left, [_cmdline(pid) for pid in left]
        assert status == 128 + signal.SIGTERM
        assert took < within, took  # stuck: the grace (+ 2 s from SIGTERM to SIGKILL)
    finally:  # whatever failed: nothing of it stays for the next test
        _kill_everything_of(process, seen)


EXITING = """
import atexit, signal, subprocess, sys
from lrf._signals import stop_started_processes

deaf = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('deaf', flush=True); time.sleep(600)"]
with stop_started_processes():
    job = subprocess.Popen(deaf, stdout=subprocess.PIPE)  # outlives the block: stopped at the exit, killed after 5 s
    job.stdout.readline()  # it ignores SIGTERM from now on
    atexit.register(lambda: print("exiting", flush=True))  # runs just before that wait
    print("running", job.pid, flush=True)
"""


def test_a_second_signal_while_exiting_ends_what_it_started_without_a_traceback(tmp_path):
    """The interpreter's exit waits (up to 5 s) for the processes the block left running; a
    SIGTERM then (the second of a double SIGTERM, as in the temporary-server test above)
    kills them and ends the process at once, rather than raising SystemExit into the exit
    handler as "Exception ignored ... Traceback" and leaving them running."""
    process = subprocess.Popen([sys.executable, "-c", EXITING], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    job = None
    try:
        running, pid = process.stdout.readline().split()
        job = (int(pid), _start_time(int(pid)))
        assert process.stdout.readline().strip() == "exiting"
        time.sleep(1.0)  # in the exit handler's wait
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
        took = time.monotonic() - sent
        stderr = process.stderr.read()
        assert "Traceback" not in stderr, stderr
        assert status == 128 + signal.SIGTERM, (status, stderr)
        assert took < 2.0, took  # not the rest of the 5 s wait
        time.sleep(0.2)
        assert not (_start_time(job[0]) == job[1] and _alive(job[0])), "the deaf job outlived the process"
    finally:
        if job is not None and _start_time(job[0]) == job[1]:
            _kill(job[0])
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


TRACKED = """
import multiprocessing, sys, time
from lrf._signals import stop_started_processes, stopping

def main():
    with stop_started_processes(grace=30):
        queue = multiprocessing.get_context("spawn").Queue()  # starts multiprocessing's resource tracker
        job = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,))
        job.start()
        print("running", stopping(), flush=True)
        try:
            while True:
                time.sleep(0.1)
        finally:
            print("stopping", stopping(), flush=True)

if __name__ == "__main__":
    main()
"""


def test_a_stopped_run_does_not_wait_for_the_resource_tracker_that_ends_with_it(tmp_path):
    """A local cluster's spawned processes start multiprocessing's resource tracker, which
    ignores SIGTERM and SIGINT by design and exits with the process that started it: the
    exit must not wait for it (it did, until the grace ran out: 10 s instead of 2 for every
    stopped lrf-flow). ``stopping()`` says the stop has begun, so no job is retried then."""
    script = tmp_path / "tracked.py"
    script.write_text(TRACKED)
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    seen: set = set()
    try:
        assert process.stdout.readline().split() == ["running", "False"]
        time.sleep(1.0)
        seen = _descendants(process.pid)
        assert any("resource_tracker" in _cmdline(pid) for pid, _ in seen), [_cmdline(pid) for pid, _ in seen]
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().split() == ["stopping", "True"]
        status = process.wait(timeout=40)
        took = time.monotonic() - sent
        assert status == 128 + signal.SIGTERM
        assert took < 4.0, took  # not the exit handler's 5 s wait, nor the 30 s grace
        time.sleep(0.5)
        left = {pid for pid, start in seen if _start_time(pid) == start and _alive(pid)}
        assert not left, [_cmdline(pid) for pid in left]  # the tracker ended with it
    finally:
        _kill_everything_of(process, seen)
