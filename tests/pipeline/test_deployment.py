"""The deployments of deployments/prefect.yaml on real parts: a Prefect server on
127.0.0.1 (SQLite, and PostgreSQL), process work pools, `prefect deploy`, a worker,
one run of the local deployment awaited to Completed, its files and Prefect
artifacts checked. The test starts and stops all of it itself."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from tests.support.postgres import running_postgres
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

ROOT = Path(__file__).resolve().parents[2]
PREFECT_FILE = "deployments/prefect.yaml"

# signal method: a timeout raises inside the test, so the harness still stops everything
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="signal")]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_local_deployment_runs_and_gpu_deployment_is_declared(tmp_path: Path, database: str) -> None:
    home = tmp_path / "prefect-home"
    out = tmp_path / "runs"
    worker_log = tmp_path / "worker.log"
    server: dict = {}
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(running_postgres()) if database == "postgresql" else None
        api_url = stack.enter_context(running_prefect_server(home, database_url=database_url, info=server))
        env = {**prefect_env(api_url, home), "PWD": str(ROOT)}  # the pull step's directory
        run_cli(["work-pool", "create", "local-pool", "--type", "process"], env, ROOT)
        run_cli(["work-pool", "create", "gpu-pool", "--type", "process"], env, ROOT)
        run_cli(["work-pool", "set-concurrency-limit", "gpu-pool", "1"], env, ROOT)
        run_cli(["deploy", "--all", "--no-prompt", "--prefect-file", PREFECT_FILE], env, ROOT)

        with running_worker("local-pool", env, ROOT, worker_log) as worker:
            parameters = {"iterations": 40, "last_k": 5, "at_once": 2, "output_root": str(out)}
            flow_run_id = run_deployment("lr-finder/local", env, ROOT, parameters)
            try:
                state = wait_for_flow_run(api_url, flow_run_id, timeout=600)
            except TimeoutError as error:
                raise AssertionError(f"{error}\n{flow_run_logs(api_url, flow_run_id)}\n{log_tail(worker_log)}") from None
            assert state.is_completed(), (
                f"flow run ended {state.name}: {state.message}\n"
                f"{flow_run_logs(api_url, flow_run_id)}\n{log_tail(worker_log)}"
            )
            with prefect_client(api_url) as client:
                from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

                artifacts = client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
                )
                local = client.read_deployment_by_name("lr-finder/local")
                refusals = {}
                for bad in ({"rule": "valey"}, {"lr_start": -1}, {"batch_size": 0}, {"device": "tpu"},
                            {"plan": "grid"}, {"candidate_rates": []}):
                    try:
                        client.create_flow_run_from_deployment(local.id, parameters=bad)
                    except Exception as error:  # noqa: BLE001 - the refusal is what is tested
                        refusals[next(iter(bad))] = str(error)
                gpu = client.read_deployment_by_name("lr-finder/nightly-gpu")
                gpu_schedules = client.read_deployment_schedules(gpu.id)
                gpu_pool = client.read_work_pool("gpu-pool")
        if database_url is not None:  # the run is really in PostgreSQL, not in a SQLite file
            assert _psql(database_url, f"select state_type from flow_run where id = '{flow_run_id}'") == "COMPLETED"
            assert not list(home.glob("*.db"))

    # the run wrote one complete run folder
    (run_dir,) = list(out.glob("run-*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["setup"]["data"] == "digits" and summary["setup"]["device"] == "cpu"
    assert len(summary["final_losses"]) == 3
    for name in summary["files"].values():
        assert (run_dir / name).stat().st_size > 0, name

    # ... and published its table and report in Prefect, for this flow run
    by_key = {a.key: a for a in artifacts}
    assert by_key["lr-finder-final-losses"].type == "table"
    assert by_key["lr-finder-report"].type == "markdown"
    assert str(run_dir) in by_key["lr-finder-report"].data

    # the deployment's form: every parameter described, choices and bounds in the schema ...
    schema = local.parameter_openapi_schema["properties"]
    assert [name for name, field in schema.items() if not field.get("description")] == []
    assert schema["rule"]["enum"] == ["reference", "steepest", "valley", "minimum"]
    assert schema["plan"]["enum"] == ["reference", "refine"]
    assert schema["lr_start"]["exclusiveMinimum"] == 0 and schema["batch_size"]["minimum"] == 1
    # ... and the server refuses a run that the flow would refuse, when it is created
    assert sorted(refusals) == sorted(["rule", "lr_start", "batch_size", "device", "plan", "candidate_rates"])
    assert all("409" in message or "422" in message for message in refusals.values()), refusals

    # the GPU deployment: nightly, on the GPU pool limited to one run, with GPU parameters
    assert [s.schedule.cron for s in gpu_schedules] == ["0 2 * * *"] and gpu_schedules[0].active
    assert gpu.parameters["device"] == "gpu" and gpu.parameters["model"] == "resnet18_v2"
    assert gpu.work_pool_name == "gpu-pool" and gpu_pool.type == "process" and gpu_pool.concurrency_limit == 1
    assert gpu.global_concurrency_limit is not None and gpu.global_concurrency_limit.limit == 1
    assert gpu.job_variables["env"]["CUDA_VISIBLE_DEVICES"] == "0"

    # everything stopped
    assert not pid_alive(server["pid"]) and not pid_alive(worker.pid)
    assert processes_with_prefect_home(home.resolve()) == []


def _psql(database_url: str, query: str) -> str:
    import subprocess
    from urllib.parse import urlparse

    url = urlparse(database_url.replace("postgresql+asyncpg", "postgresql"))
    done = subprocess.run(["psql", "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d", url.path[1:],
                           "-tAc", query], capture_output=True, text=True, check=True)
    return done.stdout.strip()
