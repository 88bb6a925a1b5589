"""Parallel candidates: K candidate trainings at once vs one after another vs one alone.

The candidates run exactly as the flow runs them: scheduled by
:func:`lrf.execution.lanes` (``at_once`` lanes side by side, each lane's
candidates one after another), lane j on slot j of a Dask cluster started by
:func:`lrf.cluster.job_cluster` with ``at_once`` workers (one
``lrf.jobs.candidate_job`` at a time each, with
:func:`lrf.execution.threads_per_job` OpenMP threads: MXNet's default for a
lone worker), from the same initial parameters and batches. Each cluster is
started once, before the rounds, and has served one job on every worker before
the clock runs (MXNet imported, data loaded): a round times the candidates, not
the cluster's start (``benchmarks/scale_out.py`` times that). K is the
reference's number of candidates (``lrf.config.CandidatePlan``). On 2 cores
there is nothing to gain in compute; the goal is that running candidates at
once does not lose (the flow's default at_once / at_once=1 <= 1). One candidate alone shows what
K devices would give: each candidate on a device of its own takes about as long
as one candidate alone.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._common import Report, Table, cifar_available, figure, interleaved, log, module_main, ratios
from lrf.config import CandidatePlan, Setup
from lrf.execution import cpu_at_once

NAME = "parallel"
PICK = 0.01  # the candidates are the flow's for this pick; none diverges, so each runs its full budget
RATES = tuple(PICK * m for m in CandidatePlan.candidate_multipliers)
K = len(RATES)
AT_ONCE = cpu_at_once()  # the flow's default on CPU (Execution.at_once = None): one worker per job at once
ALONE = "one alone"


def cases(quick: bool, folder: Path) -> list[dict]:
    if quick:
        return [dict(label="small-cnn / digits", setup=Setup(), rates=RATES, iterations=50, rounds=1,
                     at_once=_unique(AT_ONCE, 1))]
    out = [dict(label="small-cnn / digits", setup=Setup(), rates=RATES, iterations=CandidatePlan.iterations,
                rounds=3, at_once=_unique(AT_ONCE, 2, 1))]
    if cifar_available():
        from benchmarks._engine import cifar_with_small_holdout

        data = cifar_with_small_holdout(folder / "cifar")
        out.append(dict(label="resnet18_v2 / CIFAR-10", setup=Setup(data=data), rates=RATES, iterations=15,
                        rounds=2, at_once=_unique(AT_ONCE, 1)))
    return out


def _unique(*values: int) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def run_candidates(setup, init_params: Path, rates, iterations: int, cluster, folder: Path) -> tuple[float, list]:
    """Wall seconds for the candidates as a run schedules them on ``cluster``, and their
    results: :meth:`lrf.jobs.JobStages.train`, lanes of :func:`lrf.execution.lanes` over the
    cluster's slots, lane j on slot j (computed again each time: ``recompute``)."""
    from lrf.cache import WorkCache
    from lrf.config import CandidatePlan, SweepConfig
    from lrf.jobs import JobStages
    from lrf.run import Training

    stages = JobStages(setup, SweepConfig(), CandidatePlan(iterations=max(2, iterations)), WorkCache(folder), cluster,
                       recompute=True, report=lambda line: None)
    started = time.perf_counter()
    done = stages.train(str(init_params), [Training(lr, 0, iterations, CandidatePlan.last_k) for lr in rates])
    return time.perf_counter() - started, [result for result, _ in done]


def measure(case: dict) -> dict:
    from lrf.cache import WorkCache
    from lrf.cluster import job_cluster
    from lrf import jobs

    setup, rates, iterations = case["setup"], case["rates"], case["iterations"]
    with tempfile.TemporaryDirectory(prefix="lrf-bench-parallel-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        clusters = {a: stack.enter_context(job_cluster(setup.device, a, warm_up=jobs.warm_up))
                    for a in case["at_once"]}
        init = jobs.init_job(setup, WorkCache(folder), executor=clusters[min(clusters)],
                             watch=jobs.Watch(report=lambda line: None))
        for a, cluster in clusters.items():  # every worker serves a job first: imports, context, data
            log(f"warming the cluster of {a} worker(s)")
            run_candidates(setup, init, rates[:1] * len(cluster.slots), 1, cluster, folder)
        inside: dict[str, list[float]] = {}

        def variant(name, rates_, cluster):
            def go() -> float:
                seconds, results = run_candidates(setup, init, rates_, iterations, cluster, folder)
                inside.setdefault(name, []).append(sum(r.seconds for r in results))
                return seconds
            return name, go

        variants = dict(variant(f"at_once={a}", rates, clusters[a]) for a in case["at_once"])
        variants.update([variant(ALONE, rates[:1], clusters[1])])
        times = interleaved(variants, case["rounds"])
    return {"times": times, "inside_job_seconds": inside}


def run(quick: bool) -> Report:
    report = Report(
        NAME, f"Parallel candidates: K = {K} at once vs in sequence vs one alone", quick,
        f"K = {K} candidate trainings as the flow runs them (`lrf.jobs.candidate_job` on a Dask cluster of "
        "at_once workers, `lrf.cluster.job_cluster`, started once and warm; scheduled by `lrf.execution.lanes`: "
        "candidate i after candidate i − at_once, lane j on worker j; `lrf.execution.threads_per_job` OpenMP "
        "threads per worker: cores // at_once, MXNet's default for at_once = 1) "
        f"with at_once = {' and '.join(map(str, _unique(AT_ONCE, 1)))} (and 2 on digits at full size), and one "
        "candidate alone; wall time of the whole batch, interleaved. Goal on 2 cores: running candidates at once "
        f"does not lose (at_once={AT_ONCE} / at_once=1 ≤ 1).",
    )
    with tempfile.TemporaryDirectory(prefix="lrf-bench-parallel-data-") as tmp:
        for case in cases(quick, Path(tmp)):
            _one_case(report, case)
    report.notes += [
        "On 2 cores the workers share the same compute: running candidates at once can only win back what one "
        "worker leaves idle (data loading, Python between MXNet calls, the job's round trip); it cannot add compute.",
        "Each at_once has a cluster of its own (its workers' OpenMP threads depend on it), started once before the "
        "rounds; every worker has served a 1-iteration candidate before the first round, so no round pays the "
        "workers' start or MXNet's import.",
        "at_once = 1 keeps MXNet's default threads (`threads_per_job(1)` is None), as the flow does: capping a lone "
        "job only slowed it (measured here by an earlier version of this benchmark, see benchmarks/results/).",
        "CIFAR-10 candidates evaluate on the first 2,000 of the 10,000 test images (the training data is the full "
        "shared rec file), to keep the run short.",
    ]
    return report


def _one_case(report: Report, case: dict) -> None:
    label = case["label"]
    log(f"{label}: {case['rounds']} rounds, {case['iterations']} iterations per candidate")
    data = measure(case)
    report.raw[label] = data
    t = data["times"]
    rates = ", ".join(f"{r:g}" for r in case["rates"])
    report.sizes[label] = (f"{case['iterations']} iterations per candidate, rates {rates}, default loader workers, "
                           f"{case['rounds']} rounds")
    at_once, in_sequence = f"at_once={AT_ONCE}", "at_once=1"
    report.figures.append(figure(f"{label}: K={K} {at_once} / {in_sequence}", ratios(t[at_once], t[in_sequence]),
                                 le=1.0, goal="≤ 1 (does not lose)"))
    for name in t:
        if name not in (at_once, in_sequence, ALONE):
            report.figures.append(figure(f"{label}: K={K} {name} / {in_sequence}", ratios(t[name], t[in_sequence]),
                                         note="informational"))
    report.figures += [
        figure(f"{label}: K={K} in sequence / one alone", ratios(t[in_sequence], t[ALONE]), note=f"≈ {K} expected"),
        figure(f"{label}: K={K} {at_once} / one alone", ratios(t[at_once], t[ALONE]),
               note=f"{K} = no gain, 1 = K devices' worth"),
    ]
    one = statistics.median(t[ALONE])
    seq = statistics.median(t[in_sequence])
    inside = data["inside_job_seconds"]
    rows = []
    for name in t:
        wall = statistics.median(t[name])
        rows.append([name, wall, wall / one, seq / wall, statistics.median(inside[name])])
    rows.append([f"estimate: {K} devices, one candidate each", one, 1.0, seq / one, None])
    report.tables.append(Table(
        f"{label}: medians (wall seconds)",
        ["schedule", "wall s", "÷ one alone", "speed-up vs sequence", "Σ candidates' own seconds"],
        rows,
        note="'Σ candidates' own seconds' is the sum of the `seconds` fields the jobs report (building the "
             "learner, training, held-out evaluation; not the job's round trip); at once it exceeds the wall time "
             "when jobs overlap. The device estimate assumes each candidate gets a device of its own and the host keeps up: "
             "wall ≈ one candidate alone, so the speed-up over the sequence is about K.",
    ))


if __name__ == "__main__":
    module_main(NAME, run)
