"""A machine dying mid-run: the worker and the flow-run process killed together.

With the automation of ``lrf-automations`` on the server and flow-run heartbeats every
30 s (the worker's documented start command), the run is marked Crashed instead of
staying Running for ever; started again, the deployment resumes from the work cache.
Real server, real worker, real processes; the test starts and stops all of it. Its
window is two missed heartbeats rather than the default three: the same mechanism, 30 s
sooner."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
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
WINDOW = 60  # seconds: two missed heartbeats


@pytest.mark.parametrize("argv, env, named", [
    (["--window", "30"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, "--window must be more than 30 seconds"),
    (["--window", "nan"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, "got nan"),
    (["--window", "1e9"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, "at most 86400"),
    ([], {}, "PREFECT_API_URL is not set"),
])
def test_lrf_automations_refuses_bad_options_before_it_calls_a_server(argv, env, named, monkeypatch, capsys):
    from deployments.automations import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(argv)  # a server at 127.0.0.1:9 (discard) would refuse: nothing is called
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def _automation_windows(api_url: str) -> list[float]:
    request = urllib.request.Request(f"{api_url}/automations/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return [automation["trigger"]["within"] for automation in json.load(response)]


@pytest.mark.slow
@pytest.mark.timeout(900, method="signal")
def test_a_run_whose_machine_dies_is_marked_crashed_and_resumes_from_the_cache(tmp_path: Path) -> None:
    home, out = tmp_path / "prefect-home", tmp_path / "runs"
    parameters = {"iterations": 600, "last_k": 5, "at_once": 1, "output_root": str(out)}  # ~7 s a candidate
    with contextlib.ExitStack() as stack:
        api_url = stack.enter_context(running_prefect_server(home))
        env = {**prefect_env(api_url, home), "PWD": str(ROOT), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT}
        run_cli(["work-pool", "create", "local-pool", "--type", "process"], env, ROOT)
        run_cli(["deploy", "--name", "local", "--no-prompt", "--prefect-file", "deployments/prefect.yaml"], env, ROOT)
        automations = [sys.executable, "-m", "deployments.automations"]
        done = subprocess.run(automations, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert _automation_windows(api_url) == [90.0]  # the default
        again = subprocess.run([*automations, "--window", str(WINDOW)], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout == done.stdout  # idempotent: the same automation ...
        assert _automation_windows(api_url) == [WINDOW]  # ... updated in place
        started = time.monotonic()

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
        print(f"killed {killed_at - started:.0f} s after the run was started; Crashed {crashed_after:.0f} s later")
        assert state.name == "Crashed", f"{state.name}: {state.message}\n{flow_run_logs(api_url, flow_run_id)}"
        assert crashed_after < WINDOW + 60  # the window after the last heartbeat, and the server's evaluation

        finished = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
        with running_worker("local-pool", env, ROOT, tmp_path / "worker-2.log"):
            second = run_deployment("lr-finder/local", env, ROOT, parameters)
            state = wait_for_flow_run(api_url, second, timeout=600, poll=3)
            logs = flow_run_logs(api_url, second)
        print(f"the second run took {time.monotonic() - killed_at - crashed_after:.0f} s, its worker's start included")
        assert state.is_completed(), f"{state.name}: {state.message}\n{logs}"
        assert "reusing" in logs  # the killed run's finished work ...
        for name, stamp in finished.items():  # ... was not redone
            if name.endswith((".json", ".params")):
                assert (cache / name).stat().st_mtime_ns == stamp, name
    (run_dir,) = [p for p in out.glob("run-*") if (p / "summary.json").is_file()]
    assert run_dir.is_dir()
