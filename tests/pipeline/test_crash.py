"""A machine dying mid-run: the worker and the flow-run process killed together.

With the automation of ``lrf-automations`` on the server and flow-run heartbeats every
30 s (the worker's documented start command), the run is marked Crashed instead of
staying Running for ever; started again, the deployment resumes from the work cache.
Real server, real worker, real processes; the test starts and stops all of it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import (
    _descendants,
    flow_run_logs,
    log_tail,
    prefect_env,
    run_cli,
    run_deployment,
    running_prefect_server,
    running_worker,
    wait_for_flow_run,
)

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT = "30"  # seconds: Prefect's minimum, as in the README's worker command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="signal")]


def test_a_run_whose_machine_dies_is_marked_crashed_and_resumes_from_the_cache(tmp_path: Path) -> None:
    home, out = tmp_path / "prefect-home", tmp_path / "runs"
    parameters = {"iterations": 1500, "last_k": 5, "at_once": 1, "output_root": str(out)}
    with contextlib.ExitStack() as stack:
        api_url = stack.enter_context(running_prefect_server(home))
        env = {**prefect_env(api_url, home), "PWD": str(ROOT), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT}
        run_cli(["work-pool", "create", "local-pool", "--type", "process"], env, ROOT)
        run_cli(["deploy", "--name", "local", "--no-prompt", "--prefect-file", "deployments/prefect.yaml"], env, ROOT)
        done = subprocess.run([sys.executable, "-m", "deployments.automations"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        again = subprocess.run([sys.executable, "-m", "deployments.automations"], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout == done.stdout  # idempotent: the same automation

        worker_log = tmp_path / "worker.log"
        with running_worker("local-pool", env, ROOT, worker_log, may_die=True) as worker:
            flow_run_id = run_deployment("lr-finder/local", env, ROOT, parameters)
            cache = out / "cache"
            deadline = time.monotonic() + 400
            while not list(cache.glob("sweep-*.json")):  # finished work to resume from
                assert time.monotonic() < deadline, f"no sweep in the cache\n{log_tail(worker_log)}"
                time.sleep(2)
            time.sleep(5)  # into the candidates
            for pid in [worker.pid, *_descendants(worker.pid)]:  # the machine dies: nothing reports
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            worker.wait(timeout=30)
        state = wait_for_flow_run(api_url, flow_run_id, timeout=300, poll=3)
        crashed_after = time.monotonic() - killed_at
        assert state.name == "Crashed", f"{state.name}: {state.message}\n{flow_run_logs(api_url, flow_run_id)}"
        assert crashed_after < 240

        finished = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
        with running_worker("local-pool", env, ROOT, tmp_path / "worker-2.log"):
            second = run_deployment("lr-finder/local", env, ROOT, parameters)
            state = wait_for_flow_run(api_url, second, timeout=600, poll=3)
            logs = flow_run_logs(api_url, second)
        assert state.is_completed(), f"{state.name}: {state.message}\n{logs}"
        assert "reusing" in logs  # the killed run's finished work ...
        for name, stamp in finished.items():  # ... was not redone
            if name.endswith((".json", ".params")):
                assert (cache / name).stat().st_mtime_ns == stamp, name
    (run_dir,) = [p for p in out.glob("run-*") if (p / "summary.json").is_file()]
    assert run_dir.is_dir()
