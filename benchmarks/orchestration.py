"""Orchestration overhead: the Prefect flow's wall time against the compute inside it.

The lr-finder flow runs with at_once=1 (so its compute adds up) in a fresh
process each time, as ``lrf-flow`` runs it, against a Prefect API that is
already running (``prefect_test_harness``; its start-up is reported on its
own). Compute = loading the data once + building and saving the initial
parameters + the sweep (both timed in one plain process after its imports, the
same work as the ``initialise-model`` and ``lr-sweep`` jobs) + every
candidate's own ``seconds`` (as its result file reports it). Goals: flow wall /
compute <= 1.15 on the flow's defaults (digits, lrf.config.CandidatePlan) and
<= 1.02 at CIFAR-10 scale. The rest is broken down from the API's task-run
records and from start-up timings measured alone. The jobs run on the one Dask
worker of the cluster the flow starts (at_once=1), which imports MXNet once, in a
warm-up queued before the first job (:func:`lrf.cluster.job_cluster`);
``benchmarks/scale_out.py`` measures that execution on its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import (CIFAR_DATA, HARNESS_STARTUP_TIMEOUT, REPO, Report, Table, cifar_available, figure,
                                interleaved, log, module_main, timed)
from lrf.config import CandidatePlan, Setup, SweepConfig

NAME = "orchestration"
MARK = "BENCH-RESULT "
SMALL_TASKS = ("check-inputs", "prepare-dataset", "create-run-folder", "select-lr")
JOB_TASKS = ("initialise-model", "lr-sweep", "train-candidate")
STARTUP = {
    "python -c pass (interpreter)": ["-c", "pass"],
    "python -c 'import mxnet'": ["-c", "import mxnet"],
    "python -c 'import lrf.jobs' (the caller's side of a job)": ["-c", "import lrf.jobs"],
    "a job's imports: python -c 'import lrf.jobs, lrf.gluon.experiment'":
        ["-c", "import lrf.jobs, lrf.gluon.experiment"],
    "python -c 'import prefect'": ["-c", "import prefect"],
}
JOB_IMPORTS = "a job's imports: python -c 'import lrf.jobs, lrf.gluon.experiment'"
FIRST_CALL = """
import json, time
started = time.perf_counter()
from prefect.client.orchestration import get_client
imported = time.perf_counter()
with get_client(sync_client=True) as client:
    client.hello()
print(json.dumps({"import": imported - started, "first_call": time.perf_counter() - imported}))
"""


def cases(quick: bool) -> list[dict]:
    if quick:
        return [dict(label="digits, 50 iterations per candidate (quick)", params=dict(iterations=50, at_once=1),
                     rounds=1, goal=None)]
    defaults = f"{CandidatePlan.iterations} iterations × {len(CandidatePlan.candidate_multipliers)} candidates"
    out = [dict(label=f"digits defaults ({defaults})", params=dict(at_once=1), rounds=3, goal=1.15)]
    if cifar_available():
        out.append(dict(label="CIFAR-10 scale: resnet18_v2, rec, 100 iterations per candidate",
                        params=dict(data=CIFAR_DATA, iterations=100, at_once=1), rounds=1, goal=1.02))
    return out


def _env(**updates) -> dict:
    """This process's environment without PREFECT_API_URL, with ``updates``."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.update(updates)
    return env


def startup_times(rounds: int) -> dict[str, list[float]]:
    def command(args):
        return lambda: timed(lambda: subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True,
                                                    env=_env(), timeout=300))
    return interleaved({name: command(args) for name, args in STARTUP.items()}, rounds)


def first_api_call(home: Path) -> dict:
    """Time of the first API call with no server: Prefect starts a temporary one (SQLite under ``home``)."""
    env = _env(PREFECT_HOME=str(home), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    done = subprocess.run([sys.executable, "-c", FIRST_CALL], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"first API call failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_flow(params: dict, api_url: str, log_path: Path) -> dict:
    env = _env(PREFECT_API_URL=api_url)
    with open(log_path, "a") as sink:
        done = subprocess.run([sys.executable, "-m", "benchmarks._flow_run", json.dumps(params)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=sink, text=True, env=env, timeout=7200)
        sink.write(done.stdout)
    lines = [line[len(MARK):] for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"flow run failed (exit {done.returncode}); see {log_path}")
    return json.loads(lines[-1])


def reference_compute(setup: dict, config: dict, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks._reference_compute", json.dumps(setup),
                           json.dumps(config), str(folder)], cwd=REPO, capture_output=True, text=True, env=_env(),
                          timeout=7200)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"reference compute failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def task_runs(flow_run_id: str, expected: int, timeout: float = 60.0) -> tuple[list[dict], dict]:
    """The flow run's task runs (name, seconds) once the API has recorded them all, and the flow run's own times."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            done = [r for r in runs if r.start_time is not None and r.end_time is not None]
            if len(done) >= expected or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        flow_run = client.read_flow_run(flow_run_id)
    tasks = [{"name": r.name, "seconds": (r.end_time - r.start_time).total_seconds(),
              "start": r.start_time.timestamp(), "end": r.end_time.timestamp()} for r in done]
    flow = {"seconds": (flow_run.end_time - flow_run.start_time).total_seconds()
            if flow_run.start_time and flow_run.end_time else None}
    return sorted(tasks, key=lambda t: t["start"]), flow


def _kind(name: str) -> str:
    for prefix in (*JOB_TASKS, "report", *SMALL_TASKS):
        if name.startswith(prefix):
            return prefix
    return "other"


def measure_case(case: dict, api_url: str, folder: Path) -> list[dict]:
    params = dict(case["params"])
    setup_dict = Setup(**{k: params[k] for k in Setup().to_dict() if k in params}).to_dict()  # the flow's setup
    config = SweepConfig().to_dict()
    rounds: list[dict] = []
    current: dict = {}

    def flow() -> float:
        # a new output root every time: the flow reuses finished work it finds in output_root/cache
        root = folder / f"runs-{time.monotonic_ns()}"
        current["root"] = str(root)
        result = run_flow({**params, "output_root": str(root)}, api_url, folder / "flow-runs.log")
        current["flow"] = result
        return result["wall"]

    def compute() -> float:
        result = reference_compute(setup_dict, config, folder)
        current["compute"] = result
        return result["data"] + result["init"] + result["sweep"]

    for r in range(case["rounds"]):
        current = {}
        log(f"{case['label']}: round {r + 1}/{case['rounds']}")
        interleaved({"flow": flow, "compute": compute} if r % 2 == 0 else {"compute": compute, "flow": flow}, 1)
        candidates = [json.loads(p.read_text()) for p in sorted(Path(current["root"]).rglob("candidate*.json"))]
        if not candidates:  # before the work cache, results were in the run folder
            run_dir = Path(current["flow"]["run_dir"])
            candidates = [json.loads(p.read_text()) for p in sorted((run_dir / "candidates").glob("lr-*.json"))]
        tasks, flow_run = task_runs(current["flow"]["flow_run_id"], expected=7 + len(candidates))
        rounds.append({**current, "candidates": [{"lr": c["lr"], "seconds": c["seconds"]} for c in candidates],
                       "tasks": tasks, "flow_run": flow_run})
    return rounds


def summarise(case: dict, rounds: list[dict], startup: dict[str, list[float]]) -> tuple[list, dict]:
    """Per round: flow wall, compute and the breakdown of the rest."""
    per_round = []
    for r in rounds:
        ref, wall = r["compute"], r["flow"]["wall"]
        candidates = sum(c["seconds"] for c in r["candidates"])
        compute = ref["data"] + ref["init"] + ref["sweep"] + candidates
        by_kind: dict[str, float] = {}
        for t in r["tasks"]:
            by_kind[_kind(t["name"])] = by_kind.get(_kind(t["name"]), 0.0) + t["seconds"]
        in_tasks = sum(by_kind.values())
        per_round.append({
            "wall": wall, "compute": compute, "ratio": wall / compute, "candidates": candidates,
            "data": ref["data"], "init": ref["init"], "sweep": ref["sweep"],
            "init_rest": by_kind.get("initialise-model", 0.0) - ref["init"],
            "sweep_rest": by_kind.get("lr-sweep", 0.0) - ref["sweep"],
            "candidates_rest": by_kind.get("train-candidate", 0.0) - candidates,
            "report": by_kind.get("report", 0.0),
            "small": sum(by_kind.get(k, 0.0) for k in SMALL_TASKS),
            "between": wall - in_tasks,
            "imports": r["flow"]["imports"], "empty": r["flow"]["empty_wall"],
        })
    med = {k: statistics.median(p[k] for p in per_round) for k in per_round[0]}
    job_imports = statistics.median(startup[JOB_IMPORTS])
    wall = med["wall"]

    def share(x):
        return f"{100 * x / wall:.1f} %"

    rows = [
        ["flow wall (lr_finder call, API already running)", wall, "100 %"],
        ["compute: data set loaded once", med["data"], share(med["data"])],
        ["compute: build + save initial parameters", med["init"], share(med["init"])],
        ["compute: sweep (run_sweep)", med["sweep"], share(med["sweep"])],
        ["compute: candidates (their own `seconds`)", med["candidates"], share(med["candidates"])],
        ["= compute", med["compute"], share(med["compute"])],
        ["initialise-model task − its compute (waits for the worker's warm-up: the engine's imports; "
         "job round trip)", med["init_rest"], share(med["init_rest"])],
        [f"  of which: the worker's imports, once per run (measured alone, {job_imports:.2f} s)",
         job_imports, share(job_imports)],
        ["lr-sweep task − its compute (job round trip, data load, JSON)", med["sweep_rest"], share(med["sweep_rest"])],
        ["train-candidate tasks − their `seconds` (job round trips, cache files)", med["candidates_rest"],
         share(med["candidates_rest"])],
        ["report task (CSV/Markdown/JSON files, two plots, Prefect artifacts)", med["report"], share(med["report"])],
        ["other tasks (check-inputs, prepare-dataset, create-run-folder, select-lr)", med["small"], share(med["small"])],
        ["Prefect, and the cluster's start and stop, outside the tasks (flow wall − Σ task durations)",
         med["between"], share(med["between"])],
        ["— not in the flow wall —", None, ""],
        ["importing the flow module (prefect, lrf) in the flow's process", med["imports"], share(med["imports"])],
        ["an empty flow of the same shape (no-op tasks), same process afterwards", med["empty"], share(med["empty"])],
    ]
    return per_round, {"rows": rows, "median": med}


def run(quick: bool) -> Report:
    # as lrf-flow sets it; also keeps a harmless "database is locked" error off a fresh database
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    report = Report(
        NAME, "Orchestration overhead: Prefect flow wall vs compute", quick,
        "The lr-finder flow with at_once=1 (compute adds up), each run in a fresh process as `lrf-flow` runs it, "
        "against an already running Prefect API (`prefect_test_harness(server_startup_timeout=600)`, its start-up "
        "reported separately), interleaved with one plain process doing the flow's data loading, initialisation "
        "and sweep (timed after its imports). Compute = that + the candidates' own `seconds`. Goals: flow wall / "
        "compute ≤ 1.15 on the digits default, ≤ 1.02 at CIFAR-10 scale.",
    )
    startup_rounds = 1 if quick else 4
    log(f"start-up of child processes and imports: {startup_rounds} rounds")
    startup = startup_times(startup_rounds)
    report.raw["startup"] = startup
    report.tables.append(Table(
        "Process start-up and imports, measured alone (seconds, median [min–max])",
        ["command", "seconds"],
        [[name, _fmt_spread(values)] for name, values in startup.items()],
        note="Each flow run starts a Dask cluster (here one worker: at_once=1) whose worker pays the job's imports "
             "(MXNet and the engine) once, before its first job; before the Dask execution every job "
             "(initialise-model, lr-sweep, one per candidate) was a child process paying them.",
    ))

    with tempfile.TemporaryDirectory(prefix="lrf-bench-orch-") as tmp:
        folder = Path(tmp)
        first = {}
        if not quick:
            log("first API call without a server (fresh database, then the same database again)")
            first["fresh"] = first_api_call(folder / "prefect-home")
            first["existing"] = first_api_call(folder / "prefect-home")
            report.raw["first_api_call"] = first

        from prefect.testing.utilities import prefect_test_harness
        import prefect.settings

        log("starting the Prefect test harness (temporary API server)")
        started = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=HARNESS_STARTUP_TIMEOUT):
            harness = time.perf_counter() - started
            api_url = prefect.settings.PREFECT_API_URL.value()
            report.raw["harness_start"] = harness
            for case in cases(quick):
                rounds = measure_case(case, api_url, folder)
                per_round, table = summarise(case, rounds, startup)
                report.raw[case["label"]] = {"rounds": rounds, "per_round": per_round}
                report.sizes[case["label"]] = (f"{case['rounds']} round(s); flow parameters "
                                               f"{ {k: v for k, v in case['params'].items()} }, the rest default")
                values = [p["ratio"] for p in per_round]
                if case["goal"] is not None:
                    report.figures.append(figure(f"{case['label']}: flow wall / compute", values, le=case["goal"]))
                else:
                    report.figures.append(figure(f"{case['label']}: flow wall / compute", values,
                                                 note="smoke size; the goals are for the full sizes"))
                report.figures.append(figure(
                    f"{case['label']}: (server start-up + imports + flow wall) / compute",
                    [(harness + p["imports"] + p["wall"]) / p["compute"] for p in per_round],
                    note="informational: `lrf-flow` end to end with its temporary server"))
                report.tables.append(Table(f"{case['label']}: where the flow's wall time goes (medians over rounds)",
                                           ["part", "seconds", "share of flow wall"], table["rows"]))

    rows = [["Prefect test harness start (temporary server, fresh SQLite)", harness]]
    if first:
        rows += [["first API call without a server, fresh PREFECT_HOME", first["fresh"]["first_call"]],
                 ["first API call without a server, same PREFECT_HOME again", first["existing"]["first_call"]],
                 ["importing the Prefect client (in that process)", first["fresh"]["import"]]]
    report.tables.append(Table(
        "Ephemeral server start-up (seconds; once each, not in any flow wall above)", ["what", "seconds"], rows,
        note="`lrf-flow` without PREFECT_API_URL pays the first-API-call time once per run, on top of the flow; "
             "with a running server (deployments, the harness) it does not.",
    ))
    report.notes += [
        "Every flow run gets a new output root, so the flow's work cache (output_root/cache) never short-cuts a "
        "round.",
        "Task durations are the API's task-run records (end − start); 'Prefect outside the tasks' is the flow wall "
        "minus their sum, which is exact here because at_once=1 makes every task wait for the previous one.",
        "A candidate's `seconds` covers building its learner (loading the data set on its worker), training and "
        "the held-out evaluation; it is counted as compute. What happens before its clock starts (sending the job "
        "and its initial parameters to the worker, the result back, the cache files) is in the task's remainder.",
        "The cluster's start (a Dask scheduler and a worker process) and its stop happen inside the flow but "
        "outside every task: they are in 'Prefect, and the cluster's start and stop'.",
    ]
    return report


def _fmt_spread(values) -> str:
    values = sorted(values)
    return f"{statistics.median(values):.2f} [{values[0]:.2f}–{values[-1]:.2f}]"


if __name__ == "__main__":
    module_main(NAME, run)
