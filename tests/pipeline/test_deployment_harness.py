"""End-to-end proof of tests/support/prefect_server.py with a toy flow:
a real Prefect server, a process work pool with a concurrency limit, a
`prefect deploy` from a prefect.yaml, a worker, one deployment run."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import (
    flow_run_logs,
    log_tail,
    pid_alive,
    prefect_client,
    prefect_env,
    processes_with_prefect_home,
    run_cli,
    run_deployment,
    running_prefect_server,
    running_worker,
    wait_for_flow_run,
)

# signal method: the timeout raises in the test, so the harness's finally
# blocks still stop the server and the worker
pytestmark = pytest.mark.timeout(300, method="signal")

POOL = "toy-pool"
DEPLOYMENT = "toy/toy-nightly"
CRON = "0 3 * * *"

TOY_FLOW = '''
import json
import os
import sys
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact


@flow(name="toy", log_prints=True)
def toy(out: str) -> str:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "device": os.environ.get("TOY_DEVICE"),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }
    path = folder / "toy-output.json"
    path.write_text(json.dumps(result))
    create_markdown_artifact(
        key="toy-report",
        markdown=f"# Toy report\\n\\ndevice: `{result['device']}`",
        description="toy flow report",
    )
    print(f"wrote {path}")
    return str(path)
'''


def _prefect_yaml(project: Path) -> str:
    return textwrap.dedent(
        f"""\
        name: toy-project
        prefect-version: 3.9.1
        build: null
        push: null
        pull:
          - prefect.deployments.steps.set_working_directory:
              directory: {json.dumps(str(project))}
        deployments:
          - name: toy-nightly
            entrypoint: toy_flow.py:toy
            parameters: {{}}
            work_pool:
              name: {POOL}
              job_variables:
                env:
                  TOY_DEVICE: cpu
            schedules:
              - cron: "{CRON}"
                timezone: UTC
                active: false
        """
    )


@pytest.mark.slow
def test_deployment_runs_on_real_server_and_worker(tmp_path: Path, record_property) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "toy_flow.py").write_text(TOY_FLOW)
    (project / "prefect.yaml").write_text(_prefect_yaml(project))
    out = tmp_path / "out"
    home = tmp_path / "prefect-home"
    worker_log = tmp_path / "worker.log"

    timings: dict[str, float] = {}
    server: dict = {}
    t_all = time.monotonic()
    with running_prefect_server(home, info=server) as api_url:
        timings["server_start"] = server["startup_seconds"]
        env = prefect_env(api_url, home)

        t = time.monotonic()
        run_cli(["work-pool", "create", POOL, "--type", "process"], env, tmp_path)
        run_cli(["work-pool", "set-concurrency-limit", POOL, "1"], env, tmp_path)
        timings["pool"] = time.monotonic() - t

        t = time.monotonic()
        run_cli(["deploy", "--all", "--no-prompt"], env, project)
        timings["deploy"] = time.monotonic() - t

        t = time.monotonic()
        with running_worker(POOL, env, project, worker_log) as worker:
            timings["worker_ready"] = time.monotonic() - t

            t = time.monotonic()
            flow_run_id = run_deployment(DEPLOYMENT, env, tmp_path, {"out": str(out)})
            state = wait_for_flow_run(api_url, flow_run_id, timeout=180)
            timings["run"] = time.monotonic() - t
            assert state.is_completed(), (
                f"flow run ended {state.name}: {state.message}\n"
                f"{flow_run_logs(api_url, flow_run_id)}\n{log_tail(worker_log)}"
            )

            with prefect_client(api_url) as client:
                from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

                artifacts = client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                    )
                )
                deployment = client.read_deployment_by_name(DEPLOYMENT)
                schedules = client.read_deployment_schedules(deployment.id)
                pool = client.read_work_pool(POOL)
                flow_run = client.read_flow_run(flow_run_id)

        t = time.monotonic()
    timings["teardown"] = time.monotonic() - t
    timings["total"] = time.monotonic() - t_all

    # the flow ran in the project folder with job_variables.env, on our interpreter
    result = json.loads((out / "toy-output.json").read_text())
    assert result["device"] == "cpu"
    assert result["executable"] == sys.executable
    assert result["prefix"] == sys.prefix
    assert Path(result["cwd"]).resolve() == project.resolve()
    assert flow_run.deployment_id == deployment.id
    assert flow_run.work_pool_name == POOL

    assert [a.key for a in artifacts] == ["toy-report"]
    assert artifacts[0].type == "markdown"
    assert "device: `cpu`" in artifacts[0].data

    assert len(schedules) == 1
    assert schedules[0].schedule.cron == CRON
    assert schedules[0].active is False

    assert pool.type == "process"
    assert pool.concurrency_limit == 1

    # everything stopped: server, worker, flow-run process, CLI calls
    for what, pid in (("server", server["pid"]), ("worker", worker.pid), ("flow run", result["pid"])):
        assert not pid_alive(pid), f"{what} process {pid} still alive"
    # 0 = stopped cleanly by one SIGTERM (see the SIGINT note in the harness)
    assert worker.returncode == 0, log_tail(worker_log)
    assert server["strays_killed"] == [], "the harness had to kill leftover processes"
    assert processes_with_prefect_home(home.resolve()) == []

    for key, value in timings.items():
        record_property(f"seconds_{key}", round(value, 2))
    print("timings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
