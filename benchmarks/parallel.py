"""Parallel candidates: K = 3 candidate trainings at once vs one after another vs one alone.

Each candidate is what the flow's ``train-candidate`` task runs: one
``lrf.gluon.jobs.candidate_job`` child process with ``cores // parallel`` MXNet
threads, candidate i starting when candidate i - parallel has finished (the
flow's ``wait_for`` chain), from the same initial parameters and batches. On
2 cores there is nothing to gain in compute; the goal is that parallelism does
not lose (parallel=3 / parallel=1 <= 1). One candidate alone shows what K
devices would give: each candidate on a device of its own takes about as long
as one candidate alone.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import (RESNET, Report, Table, cifar_available, figure, interleaved, log,
                                module_main, ratios)

NAME = "parallel"
K = 3


def cases(quick: bool, folder: Path) -> list[dict]:
    from lrf.config import Setup

    rates = (0.01, 0.03, 0.1)  # none diverges, so every candidate runs its full budget
    if quick:
        return [dict(label="small-cnn / digits", setup=Setup(data="digits"), rates=rates, iterations=50, rounds=1,
                     schedules=(3, 1))]
    out = [dict(label="small-cnn / digits", setup=Setup(data="digits"), rates=rates, iterations=500, rounds=3,
                schedules=(3, 2, 1))]
    if cifar_available():
        from benchmarks._engine import cifar_with_small_holdout

        data = cifar_with_small_holdout(folder / "cifar")
        out.append(dict(label="resnet18_v2 / CIFAR-10", setup=Setup(data=data, model=RESNET), rates=rates,
                        iterations=15, rounds=2, schedules=(3, 1)))
    return out


def run_candidates(setup, init_params: Path, rates, iterations: int, parallel: int, folder: Path,
                   flow_threads: bool = True) -> tuple[float, list]:
    """Wall seconds for the candidates as the flow schedules them, and their results.

    ``flow_threads``: cap each child's MXNet threads at cores // parallel as the flow does
    (tasks/train.py); False leaves MXNet's own defaults (``threads=None``)."""
    from lrf.gluon import jobs

    threads = max(1, (os.cpu_count() or 1) // parallel) if flow_threads else None
    results: list = [None] * len(rates)
    errors: list = []

    def chain(start: int) -> None:  # candidate i waits for candidate i - parallel
        try:
            for i in range(start, len(rates), parallel):
                out = folder / f"p{parallel}-{i}-{time.monotonic_ns()}.json"
                results[i] = jobs.candidate_job(setup, init_params, rates[i], out, iterations=iterations,
                                                  threads=threads, report=lambda line: None)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            errors.append(error)

    started = time.perf_counter()
    workers = [threading.Thread(target=chain, args=(j,)) for j in range(min(parallel, len(rates)))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return seconds, results


def measure(case: dict) -> dict:
    from lrf.gluon import jobs

    setup, rates, iterations = case["setup"], case["rates"], case["iterations"]
    with tempfile.TemporaryDirectory(prefix="lrf-bench-parallel-") as tmp:
        folder = Path(tmp)
        init = jobs.init_job(setup, folder / "init.params", report=lambda line: None)
        inside: dict[str, list[float]] = {}

        def variant(rates_, parallel, flow_threads=True):
            def go() -> float:
                seconds, results = run_candidates(setup, init, rates_, iterations, parallel, folder, flow_threads)
                key = f"{len(rates_)}x{parallel}" + ("" if flow_threads else "-default-threads")
                inside.setdefault(key, []).append(sum(r.seconds for r in results))
                return seconds
            return go

        variants = {f"parallel={p}": variant(rates, p) for p in case["schedules"]}
        variants["one alone"] = variant(rates[:1], 1)
        variants["parallel=1, MXNet default threads"] = variant(rates, 1, flow_threads=False)
        times = interleaved(variants, case["rounds"])
    return {"times": times, "inside_child_seconds": inside}


def run(quick: bool) -> Report:
    report = Report(
        NAME, "Parallel candidates: K = 3 at once vs in sequence vs one alone", quick,
        "K = 3 candidate trainings as the flow runs them (one `lrf.gluon.jobs.candidate_job` child process each, "
        "`cores // parallel` MXNet threads, candidate i after candidate i − parallel) with parallel = 3 and 1 "
        "(and 2 on digits), and one candidate alone; also parallel=1 with MXNet's default threads instead of the "
        "flow's cap (`threads=None`); wall time of the whole batch, interleaved. Goal on 2 cores: parallelism does not "
        "lose (parallel=3 / parallel=1 ≤ 1).",
    )
    with tempfile.TemporaryDirectory(prefix="lrf-bench-parallel-data-") as tmp:
        for case in cases(quick, Path(tmp)):
            _one_case(report, case)
    report.notes += [
        "On 2 cores the children share the same compute: parallelism can only win back what one process leaves idle "
        "(process start-up, data loading, Python between MXNet calls); it cannot add compute.",
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
    report.sizes[label] = (f"{case['iterations']} iterations per candidate, rates {case['rates']}, default loader "
                           f"workers, {case['rounds']} rounds")
    p3 = ratios(t["parallel=3"], t["parallel=1"])
    report.figures.append(figure(f"{label}: K=3 parallel=3 / parallel=1", p3, le=1.0, goal="≤ 1 (does not lose)"))
    if "parallel=2" in t:
        report.figures.append(figure(f"{label}: K=3 parallel=2 / parallel=1", ratios(t["parallel=2"], t["parallel=1"]),
                                     note="informational"))
    report.figures += [
        figure(f"{label}: K=3 in sequence / one alone", ratios(t["parallel=1"], t["one alone"]),
               note=f"≈ {K} expected"),
        figure(f"{label}: K=3 parallel=3 / one alone", ratios(t["parallel=3"], t["one alone"]),
               note=f"{K} = no gain, 1 = K devices' worth"),
        figure(f"{label}: K=3 parallel=1 with the flow's thread cap (2) / with MXNet's default threads",
               ratios(t["parallel=1"], t["parallel=1, MXNet default threads"]),
               note="informational: what OMP_NUM_THREADS=MXNET_CPU_WORKER_NTHREADS=2 costs"),
    ]
    one = statistics.median(t["one alone"])
    seq = statistics.median(t["parallel=1"])
    inside = data["inside_child_seconds"]
    rows = []
    for name, key in (("parallel=3", "3x3"), ("parallel=2", "3x2"), ("parallel=1", "3x1"), ("one alone", "1x1"),
                      ("parallel=1, MXNet default threads", "3x1-default-threads")):
        if name not in t:
            continue
        wall = statistics.median(t[name])
        rows.append([name, wall, wall / one, seq / wall, statistics.median(inside[key])])
    rows.append([f"estimate: {K} devices, one candidate each", one, 1.0, seq / one, None])
    report.tables.append(Table(
        f"{label}: medians (wall seconds)",
        ["schedule", "wall s", "÷ one alone", "speed-up vs sequence", "Σ candidates' own seconds"],
        rows,
        note="'Σ candidates' own seconds' is the sum of the `seconds` fields the children report (training + "
             "held-out evaluation, without process start-up); in parallel it exceeds the wall time when children "
             "overlap. The device estimate assumes each candidate gets a device of its own and the host keeps up: "
             "wall ≈ one candidate alone, so the speed-up over the sequence is about K.",
    ))


if __name__ == "__main__":
    module_main(NAME, run)
