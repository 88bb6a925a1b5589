"""The deployments of deployments/prefect.yaml on real parts, set up by the README's own
commands: the README's deployment section is read at test time and its commands run as
written, in order, in a copy of the repository, against a Prefect server (SQLite, UI on)
that the test starts and stops itself. What they made is then checked: one run of the
local deployment completed, its files and artifacts, the deployments' parameter schema
and the server's refusals, the GPU deployment's declaration, and what the UI shows of the
run in headless Chromium (screenshots kept under test-output/ui/). The same deployment on
PostgreSQL runs once more, set up by the harness."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lrf.recipe import RECIPE_PATTERN
from tests.support.postgres import running_postgres
from tests.support.prefect_server import (
    flow_run_logs,
    free_port,
    log_tail,
    pid_alive,
    prefect_client,
    prefect_env,
    processes_with_prefect_home,
    run_cli,
    run_deployment,
    running_prefect_server,
    running_worker,
    server_args,
    wait_for_flow_run,
)
from tests.support.readme import shell_commands

ROOT = Path(__file__).resolve().parents[2]
PREFECT_FILE = "deployments/prefect.yaml"
README_SECTION = "## Run on a GPU worker"
SCREENSHOTS = ROOT / "test-output" / "ui"  # ignored by git; the latest run's screenshots

# The README's commands this test does not run as written; each pattern must match exactly
# one command, so that the README and this list cannot drift apart unnoticed.
ADDRESS = re.compile(r"export PREFECT_API_URL=http://SERVER:(?P<port>\d+)/api")  # this test's server instead
SERVER = re.compile(r"uv run prefect (?P<args>server start --host \S+ --port (?P<port>\d+))")  # the harness's
GPU_GROUP = " --no-group mxnet-cpu --group mxnet-gpu"  # the GPU machine's MXNet build, in its every uv command
NEEDS_A_GPU = (f"uv sync --locked{GPU_GROUP}", "worker start --pool gpu-pool", "deployment run lr-finder/nightly-gpu")
COMMAND_TIMEOUT, RUN_TIMEOUT = 300, 900

# signal method: a timeout raises inside the test, so the harness still stops everything
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200, method="signal")]


@dataclass
class Deployed:
    """What the README's commands made, on a server that is still up."""

    api_url: str
    checkout: Path
    run_dir: Path
    flow_run_id: str
    home: Path = Path()  # the server's PREFECT_HOME, also every CLI call's
    ran: list[str] = field(default_factory=list)  # the commands run as written, in order
    not_run: dict[str, str] = field(default_factory=dict)  # command -> what stood in for it, or why not
    watched: str = ""  # the output of the deployment run --watch
    exported: dict[str, str] = field(default_factory=dict)  # by the README's export lines, as bash read them
    seconds: dict[str, float] = field(default_factory=dict)


def _copy_of_the_repository(target: Path) -> Path:
    """The repository's files as a fresh checkout has them (nothing built, no runs, no venv)."""
    ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "lrf-runs", "runs",
                                     ".prefect", "test-output", "*.egg-info")
    return Path(shutil.copytree(ROOT, target, ignore=ignored))


def _user_shell(env: dict[str, str], checkout: Path) -> dict[str, str]:
    """``env`` as a person's shell in ``checkout`` has it: not inside the test's virtual
    environment (pytest runs under ``uv run``)."""
    env = dict(env)
    env.pop("VIRTUAL_ENV", None)
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env["PWD"] = str(checkout)
    return env


def _exported(command: str, env: dict[str, str]) -> dict[str, str]:
    """The variables an ``export A=... B=...`` line sets, as bash evaluates it in ``env``."""
    names = [word.split("=", 1)[0] for word in shlex.split(command)[1:]]
    shown = subprocess.run(["bash", "-c", f"{command}\nprintf '%s\\0' " + " ".join(f'"${n}"' for n in names)],
                           env=env, capture_output=True, text=True, check=True).stdout
    return dict(zip(names, shown.split("\0")))


def _shell(command: str, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"README command failed with exit {done.returncode}: {command}\n"
                             f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}")
    return done


def _run_as_written(command: str, env: dict[str, str], cwd: Path, workers: contextlib.ExitStack, log: Path) -> str:
    """One README command as written: a worker in the background (stopped with ``workers``),
    anything else to its end; its stdout (a failure shows the worker's log too)."""
    if " worker start " in command:
        pool = shlex.split(command)[shlex.split(command).index("--pool") + 1]
        workers.enter_context(running_worker(pool, env, cwd, log, command=["bash", "-c", command]))
        return ""
    timeout = RUN_TIMEOUT if " deployment run " in command else COMMAND_TIMEOUT
    try:
        return _shell(command, env, cwd, timeout).stdout
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log_tail(log)}") from None


@pytest.fixture(scope="module")
def readme_deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("readme-deployment")
    checkout = _copy_of_the_repository(tmp / "lrf")
    home = (tmp / "prefect-home").resolve()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _user_shell(prefect_env(api_url, home), checkout)
    commands = [c for block in shell_commands(ROOT / "README.md", README_SECTION) for c in block]
    server: dict = {}
    exported: dict[str, str] = {}
    done = Deployed(api_url, checkout, run_dir=Path(), flow_run_id="", home=home)
    with contextlib.ExitStack() as up:
        with contextlib.ExitStack() as workers:
            for command in commands:
                started = time.monotonic()
                gpu = [need for need in NEEDS_A_GPU if need in command]
                if ADDRESS.fullmatch(command):
                    done.not_run[command] = f"the address of this test's server: PREFECT_API_URL={api_url}"
                elif gpu:
                    done.not_run[command] = f"needs a GPU ({gpu[0]})"
                elif command.startswith("export "):
                    exported.update(_exported(command, env))
                    env.update(exported)
                    done.ran.append(command)
                elif GPU_GROUP in command:  # needs no GPU: run with the CPU build (no 2 GB of CUDA wheels)
                    cpu = command.replace(GPU_GROUP, "")
                    _run_as_written(cpu, env, checkout, workers, tmp / "worker.log")
                    done.not_run[command] = f"with the CPU build: {cpu}"
                elif SERVER.fullmatch(command):
                    up.enter_context(running_prefect_server(home, port=port, ui=True, extra_env=exported, info=server))
                    done.not_run[command] = "the harness's: prefect " + " ".join(server_args("127.0.0.1", port))
                else:
                    output = _run_as_written(command, env, checkout, workers, tmp / "worker.log")
                    if " deployment run " in command:
                        done.watched = output
                    done.ran.append(command)
                done.seconds[command] = round(time.monotonic() - started, 1)
        # the worker is stopped; the server stays up for the tests of this module
        (done.flow_run_id,) = re.findall(r"UUID:\s*([0-9a-f-]{36})", done.watched)
        (done.run_dir,) = [p.parent for p in (checkout / "lrf-runs").glob("run-*/summary.json")]
        done.exported = exported
        yield done
    assert not pid_alive(server["pid"])
    assert processes_with_prefect_home(home) == []  # server, worker, CLI calls and flow runs all gone


def test_the_readmes_deployment_commands_run_as_written(readme_deployment):
    done = readme_deployment
    print("\n".join(f"{done.seconds[c]:6.1f} s  {c}" for c in done.seconds))
    commands = [c for block in shell_commands(ROOT / "README.md", README_SECTION) for c in block]
    assert len(done.ran) + len(done.not_run) == len(commands) >= 10
    # what was not run as written: the address, the server (the harness's, same command), the GPU
    # steps, and the GPU machine's deploy (run with the CPU build)
    assert sorted(done.not_run) == sorted([c for c in commands if ADDRESS.fullmatch(c) or SERVER.fullmatch(c)
                                           or GPU_GROUP in c])
    assert [c for c in done.not_run if done.not_run[c].startswith("with the CPU build")] == [
        c for c in commands if " prefect deploy --all " in c]
    assert [sum(need in c for c in commands) for need in NEEDS_A_GPU] == [1, 1, 1]
    (address,) = [ADDRESS.fullmatch(c) for c in commands if ADDRESS.fullmatch(c)]
    (server,) = [SERVER.fullmatch(c) for c in commands if SERVER.fullmatch(c)]
    assert server["port"] == address["port"]  # the README's address is its server's
    assert shlex.split(server["args"]) == server_args(shlex.split(server["args"])[3], server["port"])
    # the server got the README's environment: analytics off, the UI's API address (here, this server's)
    assert done.exported == {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": done.api_url}
    # every uv command of the GPU machine keeps the CUDA build; its worker's is the CPU one's
    # (which ran) on the GPU pool
    gpu_machine = next(block for block in shell_commands(ROOT / "README.md", README_SECTION) if NEEDS_A_GPU[0] in block)
    assert all(GPU_GROUP in c for c in gpu_machine[gpu_machine.index(NEEDS_A_GPU[0]):] if " uv " in f" {c}")
    (gpu_worker,) = [c for c in commands if "worker start --pool gpu-pool" in c]
    (cpu_worker,) = [c for c in done.ran if " worker start " in c]
    assert gpu_worker.replace(f" --locked{GPU_GROUP}", "").replace("gpu-pool", "local-pool") == cpu_worker
    # the run, as --watch reported it, and the run folder it wrote in the checkout
    assert "Flow run finished successfully in 'Completed'" in done.watched, done.watched[-3000:]
    assert done.run_dir.parent == done.checkout / "lrf-runs"
    summary = json.loads((done.run_dir / "summary.json").read_text())
    assert summary["plan"]["iterations"] == 40  # the README's --param
    assert wait_for_flow_run(done.api_url, done.flow_run_id, timeout=30).is_completed()


def _artifacts(api_url: str, flow_run_id: str) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_client(api_url) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in artifacts if a.key}


def _check_run_folder_and_artifacts(run_dir: Path, api_url: str, flow_run_id: str) -> None:
    """One complete run folder of the defaults (digits, CPU), and its table and report in Prefect."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["setup"]["data"] == "digits" and summary["setup"]["device"] == "cpu"
    assert len(summary["final_losses"]) == 3
    for name in summary["files"].values():
        assert (run_dir / name).stat().st_size > 0, name
    by_key = _artifacts(api_url, flow_run_id)
    assert by_key["lr-finder-final-losses"].type == "table"
    assert by_key["lr-finder-report"].type == "markdown"
    assert str(run_dir) in by_key["lr-finder-report"].data


def test_the_local_run_wrote_its_folder_and_published_its_artifacts(readme_deployment):
    _check_run_folder_and_artifacts(readme_deployment.run_dir, readme_deployment.api_url,
                                    readme_deployment.flow_run_id)


EXAMPLE = Path("examples") / "spirals"
EXAMPLE_RUN, EXAMPLE_DEPLOY = "## Run it", "## As a nightly deployment"
EXAMPLE_ADDRESS = re.compile(r"export PREFECT_API_URL=http://SERVER:\d+/api")
EXAMPLE_TRAINS = ("lrf-flow --recipe", "lrf find --check")  # run with shorter trainings by test_flow, test_cli


def test_the_example_project_deploys_and_runs_as_its_readme_says(readme_deployment, tmp_path):
    """examples/spirals/README.md's commands as written, in the fresh copy of the repository,
    on the module's server: the project's own environment from its lock, its prefect.yaml
    deployed, its worker running lrf's flow on the project's recipe and optimizer."""
    done = readme_deployment
    readme = done.checkout / EXAMPLE / "README.md"
    (setup,) = shell_commands(readme, EXAMPLE_RUN)
    (deploy,) = shell_commands(readme, EXAMPLE_DEPLOY)
    env = _user_shell(prefect_env(done.api_url, done.home), done.checkout)
    env.pop("PYTHONPATH", None)  # the tests' own way to the example (conftest): here, the project's environment
    cwd, watched, not_run = done.checkout, "", []
    with contextlib.ExitStack() as workers:
        for command in setup + deploy:
            if command.startswith("cd "):
                cwd = cwd / shlex.split(command)[1]
            elif any(trains in command for trains in EXAMPLE_TRAINS) or EXAMPLE_ADDRESS.fullmatch(command):
                not_run.append(command)  # the address: this server's, in env already
            else:
                output = _run_as_written(command, env, cwd, workers, tmp_path / "worker.log")
                watched += output if " deployment run " in command else ""
    assert cwd == done.checkout / EXAMPLE and (cwd / ".venv").is_dir()  # the project's own environment
    assert len(not_run) == 3, not_run
    assert "Flow run finished successfully in 'Completed'" in watched, watched[-3000:]
    (flow_run_id,) = re.findall(r"UUID:\s*([0-9a-f-]{36})", watched)
    (run_dir,) = [p.parent for p in (cwd / "lrf-runs").glob("run-*/summary.json")]  # the pull step's folder
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["setup"]["recipe"] == "spirals.recipe:recipe" and summary["setup"]["data"] is None
    assert summary["setup"]["optimizer"] == "sgd"
    assert summary["setup"]["optimizer_params"] == {"momentum": 0.9, "wd": 0.0005}
    assert summary["plan"]["iterations"] == 40 and len(summary["final_losses"]) == 3
    assert summary["recommendation"]["measure"] == "holdout_loss"  # the recipe's held-out set
    for name in summary["files"].values():
        assert (run_dir / name).stat().st_size > 0, name
    by_key = _artifacts(done.api_url, flow_run_id)
    assert by_key["lr-finder-final-losses"].type == "table"
    assert "recipe spirals.recipe:recipe" in by_key["lr-finder-report"].data
    with prefect_client(done.api_url) as client:
        deployment = client.read_deployment_by_name("lr-finder/spirals")
    assert deployment.parameters == {"recipe": "spirals.recipe:recipe", "optimizer": "sgd",
                                     "optimizer_params": {"momentum": 0.9, "wd": 0.0005}}
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]


def test_the_form_describes_every_parameter_and_the_server_refuses_bad_ones(readme_deployment):
    with prefect_client(readme_deployment.api_url) as client:
        local = client.read_deployment_by_name("lr-finder/local")
        refusals = {}
        for bad in ({"rule": "valey"}, {"lr_start": -1}, {"batch_size": 0}, {"device": "tpu"},
                    {"plan": "grid"}, {"candidate_rates": []}):
            try:
                client.create_flow_run_from_deployment(local.id, parameters=bad)
            except Exception as error:  # noqa: BLE001 - the refusal is what is tested
                refusals[next(iter(bad))] = str(error)
    # the deployment's form: every parameter described, choices and bounds in the schema ...
    schema = local.parameter_openapi_schema["properties"]
    assert [name for name, spec in schema.items() if not spec.get("description")] == []
    assert schema["rule"]["enum"] == ["reference", "steepest", "valley", "minimum"]
    assert schema["plan"]["enum"] == ["multiples", "refine"]
    assert schema["lr_start"]["exclusiveMinimum"] == 0 and schema["batch_size"]["minimum"] == 1
    assert "init_params" in schema
    # the user's training (issue 18): typed and described
    assert "sgd" in schema["optimizer"]["enum"] and "adam" in schema["optimizer"]["enum"]
    assert {"type": "object"}.items() <= next(t for t in schema["optimizer_params"]["anyOf"]
                                              if t.get("type") == "object").items()
    assert {"type": "string", "pattern": RECIPE_PATTERN}.items() <= next(
        t for t in schema["recipe"]["anyOf"] if t.get("type") == "string").items()
    assert all(schema[name]["description"] for name in ("optimizer", "optimizer_params", "recipe"))
    # ... and the server refuses a run that the flow would refuse, when it is created
    assert sorted(refusals) == sorted(["rule", "lr_start", "batch_size", "device", "plan", "candidate_rates"])
    assert all("409" in message or "422" in message for message in refusals.values()), refusals


def test_the_gpu_deployment_is_declared(readme_deployment):
    with prefect_client(readme_deployment.api_url) as client:
        gpu = client.read_deployment_by_name("lr-finder/nightly-gpu")
        schedules = client.read_deployment_schedules(gpu.id)
        pool = client.read_work_pool("gpu-pool")
    # nightly, on the GPU pool limited to one run, with GPU parameters
    assert [s.schedule.cron for s in schedules] == ["0 2 * * *"] and schedules[0].active
    assert gpu.parameters["device"] == "gpu" and gpu.parameters["model"] == "resnet18_v2"
    assert gpu.work_pool_name == "gpu-pool" and pool.type == "process" and pool.concurrency_limit == 1
    assert gpu.global_concurrency_limit is not None and gpu.global_concurrency_limit.limit == 1
    assert gpu.job_variables["env"]["CUDA_VISIBLE_DEVICES"] == "0"


class _Page(HTMLParser):
    """What a person reads on a page: table cells, headings, image sources, all its text."""

    def __init__(self, html: str):
        super().__init__()
        self.cells, self.headings, self.images, self._open, self.text = [], [], [], [], ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        elif tag in ("td", "h1", "h2", "h3"):
            self._open.append([tag, ""])

    def handle_data(self, data):
        self.text += data
        for entry in self._open:
            entry[1] += data

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            kind, text = self._open.pop()
            (self.cells if kind == "td" else self.headings).append(" ".join(text.split()))


def test_the_ui_shows_the_runs_table_report_and_plot(readme_deployment, tmp_path):
    from lrf.report import formatted_rows
    from tests.support.chromium import page_dom, screenshot

    done = readme_deployment
    summary = json.loads((done.run_dir / "summary.json").read_text())
    base = done.api_url.removesuffix("/api")
    artifacts = _artifacts(done.api_url, done.flow_run_id)
    pages = {key: f"{base}/artifacts/artifact/{artifacts[key].id}"
             for key in ("lr-finder-final-losses", "lr-finder-report")}
    profile = tmp_path / "chromium-profile"
    table, report = (_Page(page_dom(url, profile)) for url in pages.values())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for key, url in pages.items():
        shutil.copy(screenshot(url, tmp_path / f"{key}.png", profile), SCREENSHOTS / f"{key}.png")

    # the final-loss table, cell by cell, with its numbers formatted as the Markdown table has them
    rows = [{k: float(v) if v in ("NaN", "Infinity", "-Infinity") else v for k, v in row.items()}
            for row in summary["final_losses"]]  # strict JSON keeps a diverged loss as "NaN"
    assert table.cells == [str(value) for row in formatted_rows(rows) for value in row.values()]
    # the report: its heading, the recommended rate, and the sweep plot, the run's own sweep.png
    setup = summary["setup"]
    assert f"LR finder: {setup['model']} on {setup['data']}" in report.headings, report.headings
    assert "Loss against learning rate" in report.headings
    assert f"Recommended learning rate: {summary['recommended_lr']:.4g}" in report.text
    bounds = summary["cyclical_range"]
    assert f"cyclical range (Smith 2017): {bounds['base_lr']:.3g} to {bounds['max_lr']:.3g}" in report.text
    shown = [base64.b64decode(src.split(",", 1)[1]) for src in report.images if src.startswith("data:image/png;base64,")]
    assert (done.run_dir / "sweep.png").read_bytes() in shown
    assert (done.run_dir / "candidates.png").read_bytes() in shown


def test_the_local_deployment_runs_on_postgresql(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    out = tmp_path / "runs"
    worker_log = tmp_path / "worker.log"
    server: dict = {}
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(running_postgres())
        api_url = stack.enter_context(running_prefect_server(home, database_url=database_url, info=server))
        env = {**prefect_env(api_url, home), "PWD": str(ROOT)}  # the pull step's directory
        run_cli(["work-pool", "create", "local-pool", "--type", "process"], env, ROOT)
        run_cli(["deploy", "--name", "local", "--no-prompt", "--prefect-file", PREFECT_FILE], env, ROOT)

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
            (run_dir,) = list(out.glob("run-*"))
            _check_run_folder_and_artifacts(run_dir, api_url, flow_run_id)
        # the run is really in PostgreSQL, not in a SQLite file
        assert _psql(database_url, f"select state_type from flow_run where id = '{flow_run_id}'") == "COMPLETED"
        assert not list(home.glob("*.db"))

    # everything stopped
    assert not pid_alive(server["pid"]) and not pid_alive(worker.pid)
    assert processes_with_prefect_home(home.resolve()) == []


def _psql(database_url: str, query: str) -> str:
    from urllib.parse import urlparse

    url = urlparse(database_url.replace("postgresql+asyncpg", "postgresql"))
    done = subprocess.run(["psql", "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d", url.path[1:],
                           "-tAc", query], capture_output=True, text=True, check=True)
    return done.stdout.strip()
