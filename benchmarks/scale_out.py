"""Scale out: what running jobs on Dask workers costs, against the work and against MXNet's import.

The jobs of a run (initialise, sweep, candidates) run on Dask workers that import
MXNet once and serve many jobs (:mod:`lrf.cluster`, :mod:`lrf.jobs`). Four
parts, each interleaving what it compares in rounds:

1. **Jobs on a warm worker** (a cluster of one worker, MXNet's default threads,
   started once; the worker has served every kind of job before the clock runs):
   a 1-iteration ResNet-18 v2 candidate on CIFAR-10 (wall at the caller minus its
   own ``seconds``: the job's overhead), an empty job (``lrf.cluster.run_job`` of
   a function that does nothing), an empty job carrying ResNet-18's initial
   parameters by value, one training iteration timed on that worker, and two fresh
   processes: ``import mxnet`` and a job's imports as every job paid them before
   the Dask execution (``import lrf.jobs, lrf.gluon.experiment``).
2. **K candidates on K workers** (K = 2, one worker per core, small-cnn on digits):
   both at once vs one alone on the same cluster.
3. **The default digits flow** as a user runs it (``lrf-flow`` in a fresh process,
   no ``PREFECT_API_URL``: Prefect starts a temporary server), against one bare
   ``import mxnet`` and the training compute (init and sweep timed in one plain
   process with the workers' threads, plus the candidates' own ``seconds`` on the
   schedule's critical path).
4. (full size, CIFAR-10 present, ``LRF_BENCH_CIFAR_FLOW=1``) **The CIFAR-10
   ResNet-18 flow** at 100 iterations per candidate, flow wall / training
   compute; run last (about 35 min on 2 shared cores, hence the switch).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import (CIFAR_DATA, REPO, Report, Table, cifar_available, figure, interleaved, log,
                                module_main, ratios, timed)
from lrf.cache import WorkCache
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import cpu_at_once, lanes, threads_per_job

NAME = "scale_out"
K = 2  # candidates on as many workers: one per core of this machine
LR = 0.01  # a rate no candidate diverges at (the parallel benchmark's pick)
IMPORT_MXNET = ("-c", "import mxnet")
JOB_IMPORTS = ("-c", "import lrf.jobs, lrf.gluon.experiment")  # what each job's own process imported before
FLOW_TIMEOUT = 3600.0
# part 4 (about 35 min on these 2 shared cores: the flow, then its init and sweep again) runs when this is 1
CIFAR_FLOW = "LRF_BENCH_CIFAR_FLOW"
LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| \w+\s*\| (.*)$")
FIRST_LINE = {"server": "Starting temporary server", "begin": "Beginning flow run", "cluster": "jobs run on"}
LAST_LINE = {"folder": "Task run 'create-run-folder", "init": "Task run 'initialise-model"}


def _quiet():
    from lrf import jobs

    return jobs.Watch(report=lambda line: None, recompute=True)  # measured again each time: never reused


def _env(**updates: str) -> dict:
    """This process's environment without PREFECT_API_URL (a run then starts its own server), with ``updates``."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.update(updates)
    return env


def fresh_process(args) -> float:
    """Seconds of ``python ARGS`` in a fresh process (interpreter start included)."""
    def call() -> None:
        done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, env=_env(), timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"python {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return timed(call)


# --- 1. jobs on a warm worker ------------------------------------------------------


def jobs_part(report: Report, quick: bool, folder: Path) -> dict:
    from benchmarks import _on_worker as on_worker
    from lrf.cluster import job_cluster, run_job
    from lrf import jobs

    if cifar_available():
        from benchmarks._engine import cifar_with_small_holdout

        # loader_workers=0: a job's loader threads share the RecordIO file handle, whose seek + read is not
        # thread-safe (records came back corrupt: "buffer is smaller than requested size")
        setup = Setup(data=cifar_with_small_holdout(folder / "cifar"), loader_workers=0)
        label = "resnet18_v2 / CIFAR-10"
    else:
        setup = Setup()
        label = "small-cnn / digits (CIFAR-10 not found: the goal is for ResNet-18)"
    rounds = 2 if quick else 5
    log(f"jobs on a warm worker, {label}: {rounds} rounds")
    quiet = _quiet()
    with job_cluster("cpu", 1, warm_up=jobs.warm_up) as cluster:
        cache = WorkCache(folder)
        init = jobs.init_job(setup, cache, executor=cluster, watch=quiet)
        params = init.read_bytes()
        # the worker serves every kind of job once before the clock runs
        jobs.candidate_job(setup, init, LR, cache, executor=cluster, iterations=1, last_k=1, watch=quiet)
        run_job(cluster, 0, on_worker.iteration_seconds, setup.to_dict(), LR)
        run_job(cluster, 0, on_worker.receive, inputs={"init_params": params})
        run_job(cluster, 0, on_worker.nothing)
        own: list[float] = []

        def candidate() -> float:
            started = time.perf_counter()
            result, _ = jobs.candidate_job(setup, init, LR, cache, executor=cluster, iterations=1, last_k=1, watch=quiet)
            wall = time.perf_counter() - started
            own.append(result.seconds)
            return wall

        times = interleaved({
            "iteration": lambda: run_job(cluster, 0, on_worker.iteration_seconds, setup.to_dict(), LR),
            "empty job": lambda: timed(lambda: run_job(cluster, 0, on_worker.nothing)),
            "1-iteration candidate job": candidate,
            "empty job + initial parameters": lambda: timed(
                lambda: run_job(cluster, 0, on_worker.receive, inputs={"init_params": params})),
            "fresh process: import mxnet": lambda: fresh_process(IMPORT_MXNET),
            "fresh process: a job's imports": lambda: fresh_process(JOB_IMPORTS),
        }, rounds)
        run_job(cluster, 0, on_worker.release)
    times["candidate's own seconds"] = own
    overhead = [wall - mine for wall, mine in zip(times["1-iteration candidate job"], own)]
    iteration, empty = times["iteration"], times["empty job"]
    sent = times["empty job + initial parameters"]
    before, mxnet = times["fresh process: a job's imports"], times["fresh process: import mxnet"]
    report.raw["jobs"] = {"label": label, "times": times, "params_bytes": len(params)}
    report.sizes["jobs on a warm worker"] = (f"{label}, a cluster of 1 worker (MXNet's default threads), "
                                             f"{rounds} rounds; candidates of 1 iteration at lr={LR:g}, loader without "
                                    "workers (loader_workers=0; see the notes)")
    report.figures += [
        figure(f"{label}: a job's overhead on a warm worker / one training iteration", ratios(overhead, iteration),
               le=0.5, note="1-iteration candidate: wall at the caller − its own `seconds`"),
        figure(f"{label}: an empty job's round trip / one training iteration", ratios(empty, iteration),
               note="informational: the floor of every job"),
        figure(f"{label}: initial parameters sent by value, {len(params) / 1e6:.1f} MB: round trip of a job that "
               "only receives them / one training iteration", ratios(sent, iteration), note="informational"),
        figure(f"{label}: sending the initial parameters, (that round trip − an empty job's) / one training iteration",
               ratios([s - e for s, e in zip(sent, empty)], iteration), note="informational"),
        figure("a job's start-up before (fresh process importing the engine) / after (empty job on a warm worker)",
               ratios(before, empty), note="informational: what each job no longer pays"),
        figure("a job's start-up before (fresh process importing the engine) / one bare `import mxnet`",
               ratios(before, mxnet), note="informational"),
        figure("a job's start-up after (empty job on a warm worker) / one bare `import mxnet`", ratios(empty, mxnet),
               note="informational"),
    ]
    med = {name: statistics.median(values) for name, values in times.items()}
    med["overhead"] = statistics.median(overhead)
    rows = [
        ["one training iteration on a fixed batch (timed on the worker, device drained before and after)",
         med["iteration"], 1.0],
        ["an empty job: `lrf.cluster.run_job` round trip", med["empty job"], med["empty job"] / med["iteration"]],
        ["a 1-iteration candidate job, wall at the caller", med["1-iteration candidate job"],
         med["1-iteration candidate job"] / med["iteration"]],
        ["  its own `seconds` (build the learner, 1 iteration, held-out evaluation)", med["candidate's own seconds"],
         med["candidate's own seconds"] / med["iteration"]],
        ["  = the job's overhead (sending it, the parameters, the result and events back, the cache file)",
         med["overhead"], med["overhead"] / med["iteration"]],
        [f"an empty job carrying the initial parameters ({len(params):,} bytes) by value",
         med["empty job + initial parameters"], med["empty job + initial parameters"] / med["iteration"]],
        ["a fresh process: `import mxnet`", med["fresh process: import mxnet"],
         med["fresh process: import mxnet"] / med["iteration"]],
        ["a fresh process: a job's imports (`import lrf.jobs, lrf.gluon.experiment`), as each job paid before",
         med["fresh process: a job's imports"], med["fresh process: a job's imports"] / med["iteration"]],
    ]
    report.tables.append(Table(f"{label}: jobs on a warm worker (medians over rounds)",
                               ["what", "seconds", "÷ one iteration"], rows,
                               note="The candidates evaluate on 2,000 held-out images (CIFAR-10); that is in their "
                                    "own `seconds`, not in the overhead."))
    return {"before": before, "after": empty, "mxnet": mxnet}


# --- 2. K candidates on K workers ---------------------------------------------------


def parallel_part(report: Report, quick: bool, folder: Path) -> None:
    from benchmarks.parallel import run_candidates
    from lrf.cluster import job_cluster
    from lrf import jobs

    setup = Setup()
    rates = tuple(LR * m for m in CandidatePlan.candidate_multipliers)[:K]
    iterations = 50 if quick else CandidatePlan.iterations
    rounds = 1 if quick else 3
    label = f"small-cnn / digits: K={K} candidates on {K} workers (one per core) / one candidate alone"
    log(f"K = {K} candidates on {K} workers: {rounds} rounds, {iterations} iterations")
    with job_cluster(setup.device, K, warm_up=jobs.warm_up) as cluster:
        init = jobs.init_job(setup, WorkCache(folder), executor=cluster, watch=_quiet())
        run_candidates(setup, init, rates[:1] * K, 1, cluster, folder)  # every worker serves a job first
        own: dict[str, list[float]] = {}

        def variant(rates_):
            def go() -> float:
                seconds, results = run_candidates(setup, init, rates_, iterations, cluster, folder)
                own.setdefault(len(rates_), []).append(sum(r.seconds for r in results))
                return seconds
            return go

        times = interleaved({"K at once": variant(rates), "one alone": variant(rates[:1])}, rounds)
    report.raw["parallel"] = {"times": times, "own_seconds": own}
    report.sizes["K candidates"] = (f"small-cnn / digits, rates {', '.join(f'{r:g}' for r in rates)}, {iterations} "
                                    f"iterations each, a cluster of {K} workers with "
                                    f"{threads_per_job(K)} OpenMP thread(s) each, {rounds} rounds")
    report.figures.append(figure(label, ratios(times["K at once"], times["one alone"]), le=1.2,
                                 note="one alone runs on worker 0 of the same cluster"))


# --- 3 and 4. the flow as a user runs it ---------------------------------------------


def flow_command() -> list[str]:
    script = Path(sys.executable).parent / "lrf-flow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.main"]


def run_flow(args: list[str], root: Path, home: Path, log_path: Path) -> dict:
    """``lrf-flow ARGS --output-root ROOT`` in a fresh process, no PREFECT_API_URL; its wall and its log."""
    env = _env(PREFECT_HOME=str(home), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600")
    started = time.perf_counter()
    done = subprocess.run([*flow_command(), *args, "--output-root", str(root)], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=FLOW_TIMEOUT)
    wall = time.perf_counter() - started
    with open(log_path, "a") as sink:
        sink.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"lrf-flow failed (exit {done.returncode}); see {log_path}")
    return {"process": wall, **log_times(done.stdout + "\n" + done.stderr)}


def log_times(text: str) -> dict:
    """Seconds between the flow's log lines (their HH:MM:SS.mmm stamps): the temporary server's
    start, the flow's wall, the cluster's start."""
    stamps: dict[str, float] = {}
    last = None
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        h, m, s, ms, message = match.groups()
        t = int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
        while last is not None and t < last - 1:  # past midnight
            t += 86400
        last = t
        for key, pattern in FIRST_LINE.items():  # the first line that says it
            if pattern in message:
                stamps.setdefault(key, t)
        for key, pattern in LAST_LINE.items():  # the last one (a task's "Finished in state")
            if pattern in message:
                stamps[key] = t
        if message.startswith("Flow run") and "Finished in state" in message:
            stamps["end"] = t
    missing = [k for k in ("server", "begin", "end", "folder", "cluster", "init") if k not in stamps]
    if missing:
        raise RuntimeError(f"the flow's log lacks the lines for {', '.join(missing)}")
    return {"server_start": stamps["begin"] - stamps["server"], "flow": stamps["end"] - stamps["begin"],
            "cluster_start": stamps["cluster"] - stamps["folder"], "first_job": stamps["init"] - stamps["cluster"]}


def reference_compute(setup: Setup, threads: int | None, folder: Path) -> dict:
    """Data load, init and sweep in one plain process (``benchmarks._reference_compute``), with the
    OpenMP threads of the flow's workers."""
    env = _env(**({} if threads is None else {"OMP_NUM_THREADS": str(threads)}))
    done = subprocess.run([sys.executable, "-m", "benchmarks._reference_compute", json.dumps(setup.to_dict()),
                           json.dumps(SweepConfig().to_dict()), str(folder)], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=FLOW_TIMEOUT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"reference compute failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def candidates_compute(root: Path) -> dict:
    """The run's candidates' own ``seconds`` (its cache files), summed and on the critical path
    (the flow's lanes over its cluster's slots: the longest lane)."""
    from benchmarks._flow_run import lanes_of

    summaries = sorted(root.glob("run-*/summary.json"))
    if len(summaries) != 1:
        raise RuntimeError(f"expected one run under {root}, found {len(summaries)}")
    summary = json.loads(summaries[0].read_text())
    seconds = {}
    for path in (root / "cache").glob("candidate-*.json"):
        data = json.loads(path.read_text())
        seconds[float(data["lr"])] = float(data["seconds"])
    rates = [float(lr) for lr in summary["candidates"]]
    width = lanes_of(summary)
    lane_seconds = [sum(seconds[rates[i]] for i in lane) for lane in lanes(len(rates), width)]
    return {"sum": sum(seconds[r] for r in rates), "critical": max(lane_seconds), "jobs": 2 + len(rates),
            "lanes": width}


def flow_part(report: Report, case: dict, folder: Path, per_job: dict | None) -> None:
    label, args, rounds = case["label"], case["args"], case["rounds"]
    threads = threads_per_job(case["workers"])
    setup = case["setup"]
    home = folder / f"prefect-home-{case['key']}"  # one per case: its first round creates the database
    log(f"{label}: {rounds} round(s) of `lrf-flow {' '.join(args)}`")
    per_round: list[dict] = []
    current: dict = {}

    def flow() -> float:
        root = folder / f"runs-{case['key']}-{time.monotonic_ns()}"  # a new cache: nothing reused
        current["flow"] = run_flow(args, root, home, folder / "flow-runs.log")
        current["candidates"] = candidates_compute(root)
        return current["flow"]["flow"]

    def compute() -> float:
        current["reference"] = reference_compute(setup, threads, folder)
        return sum(current["reference"][k] for k in ("data", "init", "sweep"))

    variants = {"flow": flow, "import mxnet": lambda: fresh_process(IMPORT_MXNET), "compute": compute}
    for r in range(rounds):
        current = {}
        log(f"{label}: round {r + 1}/{rounds}")
        names = list(variants)[r % 3:] + list(variants)[:r % 3]
        times = interleaved({name: variants[name] for name in names}, 1)
        ref, cand = current["reference"], current["candidates"]
        compute_s = ref["data"] + ref["init"] + ref["sweep"] + cand["critical"]
        flow_s = current["flow"]["flow"]
        per_round.append({**current["flow"], "import_mxnet": times["import mxnet"][0], "data": ref["data"],
                          "init": ref["init"], "sweep": ref["sweep"], "candidates_critical": cand["critical"],
                          "candidates_sum": cand["sum"], "compute": compute_s, "overhead": flow_s - compute_s,
                          "jobs": cand["jobs"], "lanes": cand["lanes"], "sweep_iterations": ref["iterations"]})
    report.raw[label] = per_round
    report.sizes[label] = (f"`lrf-flow {' '.join(args)}` ({rounds} round(s)), the rest default: "
                           f"{per_round[0]['lanes']} worker(s), {per_round[0]['jobs']} jobs")
    imports = [p["import_mxnet"] for p in per_round]
    if case["overhead_goal"] is not None:
        report.figures.append(figure(f"{label}: fixed overhead (flow wall − training compute) / one bare `import mxnet`",
                                     ratios([p["overhead"] for p in per_round], imports), le=case["overhead_goal"]))
    report.figures.append(figure(f"{label}: flow wall / training compute",
                                 [p["flow"] / p["compute"] for p in per_round], le=case["ratio_goal"],
                                 note=None if case["ratio_goal"] else "informational"))
    if case["overhead_goal"] is None:
        report.figures.append(figure(f"{label}: fixed overhead (flow wall − training compute) / one bare "
                                     "`import mxnet`", ratios([p["overhead"] for p in per_round], imports),
                                     note="informational"))
    report.figures.append(figure(f"{label}: the temporary Prefect server's start / one bare `import mxnet`",
                                 ratios([p["server_start"] for p in per_round], imports),
                                 note="reported separately: not in the flow wall; round 1 creates its database"))
    med = {k: statistics.median(p[k] for p in per_round) for k in per_round[0]}
    one = med["import_mxnet"]
    rows = [
        ["`lrf-flow` process, end to end", med["process"]],
        ["  temporary Prefect server's start (log: 'Starting temporary server' → 'Beginning flow run')",
         med["server_start"]],
        ["  flow wall (log: 'Beginning flow run' → the flow run's 'Finished in state')", med["flow"]],
        ["    of which: Dask cluster's start (log: create-run-folder done → 'jobs run on')", med["cluster_start"]],
        ["    of which: cluster up → initialise-model done (the worker's warm-up: MXNet's import; the init job)",
         med["first_job"]],
        ["training compute", med["compute"]],
        ["  data set loaded once (plain process)", med["data"]],
        ["  build + save the initial parameters (plain process)", med["init"]],
        ["  sweep (plain process)", med["sweep"]],
        [f"  candidates' own `seconds` on the critical path (the longest of {int(med['lanes'])} lane(s))",
         med["candidates_critical"]],
        ["  (all candidates' own `seconds`, summed; not counted)", med["candidates_sum"]],
        ["fixed overhead = flow wall − training compute", med["overhead"]],
        ["one bare `import mxnet` (fresh process)", one],
    ]
    if per_job is not None:
        before, after = statistics.median(per_job["before"]), statistics.median(per_job["after"])
        jobs = int(med["jobs"])
        rows += [[f"before: {jobs} jobs × a job's imports in a fresh process (part 1)", jobs * before],
                 [f"after: {jobs} jobs × an empty job on a warm worker (part 1), plus each worker's imports once, "
                  "in the warm-up", jobs * after]]
    report.tables.append(Table(f"{label}: where the time goes (seconds, medians over rounds)", ["what", "seconds"],
                               [[name, value] for name, value in rows],
                               note=f"Init and sweep are timed in one plain process with the flow's workers' OpenMP "
                                    f"threads ({threads or 'MXNet default'}); the summary records no seconds for "
                                    "them, only the candidates' (in their cache files)."))


def run(quick: bool) -> Report:
    report = Report(
        NAME, "Scale out: jobs on Dask workers (MXNet imported once per worker)", quick,
        "What the Dask execution costs: a job's overhead on a warm worker against one ResNet-18 CIFAR-10 iteration "
        "(≤ 0.5), K = 2 candidates on 2 workers against one alone (≤ 1.2), the default digits run's fixed overhead "
        "(flow wall − training compute) against one bare `import mxnet` (≤ 2), the temporary Prefect server's start "
        "reported separately, a job's start-up before and after, the initial parameters' size and cost by value, "
        "and (full size) the CIFAR-10 ResNet-18 flow's wall against its compute (≤ 1.02).",
    )
    with tempfile.TemporaryDirectory(prefix="lrf-bench-scale-out-") as tmp:
        folder = Path(tmp)
        per_job = jobs_part(report, quick, folder)
        parallel_part(report, quick, folder)
        digits = Setup()
        iterations = 50 if quick else 100
        flow_part(report, dict(
            key="digits", label=f"default digits run (--iterations {iterations})",
            args=["--iterations", str(iterations)], rounds=1 if quick else 3, setup=digits, workers=cpu_at_once(),
            overhead_goal=2.0, ratio_goal=None), folder, per_job)
        if not quick and cifar_available() and os.environ.get(CIFAR_FLOW) == "1":
            flow_part(report, dict(
                key="cifar", label="CIFAR-10 resnet18_v2 run (--iterations 100 --at-once 1)",
                args=["--data", CIFAR_DATA, "--iterations", "100", "--at-once", "1"], rounds=1,
                setup=Setup(data=CIFAR_DATA), workers=1, overhead_goal=None, ratio_goal=1.02), folder, None)
    report.notes.append(
        "Jobs on CIFAR-10 use loader_workers=0 here: with loader workers a job's loader reads the RecordIO file from "
        "several threads (`thread_pool=True` on a Dask worker), and the shared file handle's seek + read is not "
        "thread-safe: an earlier full run of this benchmark failed with corrupt records ('buffer is smaller than "
        "requested size' in `mxnet.recordio.unpack`). The iteration is timed on a fixed batch, so loading is in "
        "neither side of the overhead figure.")
    if not quick and cifar_available() and os.environ.get(CIFAR_FLOW) != "1":
        report.notes.append(f"The CIFAR-10 flow (part 4) was not run: it takes about 35 min here; set {CIFAR_FLOW}=1.")
    report.notes += [
        "Training compute of a flow run = the data set loaded once + building and saving the initial parameters + "
        "the sweep (these three timed in one plain process with the workers' OpenMP threads, in the same round) + "
        "the candidates' own `seconds` (their cache files: building the learner, training, held-out evaluation) "
        "on the schedule's critical path: candidates in lanes side by side (`lrf.execution.lanes` over the "
        "cluster's workers) count the longest lane, not their sum.",
        "The flow wall is read from the flow's own log (its HH:MM:SS.mmm stamps), so the process's start, its "
        "imports and the temporary server's start are outside it; the server's start is reported on its own, and "
        "the whole process in the tables. PREFECT_HOME is a fresh folder per case (round 1 creates its database), "
        "the server's start-up limit is raised to 600 s (the machine is shared), and every round gets a new output "
        "root, so the work cache never short-cuts a round.",
        f"The digits runs use `--iterations {iterations}` (default {CandidatePlan.iterations}) to keep the rounds "
        "short; the overhead is fixed, the compute is what shrinks. The CIFAR-10 run uses `--at-once 1` (one "
        "worker, MXNet's default threads), as the figure it is compared with (1.115 before the Dask execution, "
        "`orchestration`) was measured.",
        "The empty job, the parameters job and the iteration are `lrf.cluster.run_job` calls of "
        "`benchmarks/_on_worker.py` functions; the candidates are `lrf.jobs.candidate_job`, as the flow's "
        "tasks call it.",
    ]
    return report


if __name__ == "__main__":
    module_main(NAME, run)
