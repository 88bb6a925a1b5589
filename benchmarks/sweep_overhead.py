"""Sweep overhead: what ``lrf.find`` costs on top of the training iterations it runs.

``lrf.find`` with a configuration that cannot stop early (a rate that barely moves,
``max_iter=N``, ``min_iter=N+1``) runs exactly N iterations; a bare loop of N
``learner.iteration(lr)`` calls on the same learner, data and rates is the baseline.
Goal: sweep / bare <= 1.02. The difference is broken down into the sweep's fixed
costs (dry-run iteration, snapshot, restore), its per-iteration costs (criterion
and bookkeeping, measured on a learner that does nothing; the CLI's tqdm progress
callback), and, beside it, what the protocol's per-iteration host sync costs
(``iteration`` returns a float: bare loop vs the same loop waiting only at the end).
"""

from __future__ import annotations

import contextlib
import os
import statistics

from benchmarks._common import (CIFAR_DATA, Report, Table, cifar_available, figure, interleaved, log,
                                module_main, ratios, timed)

NAME = "sweep_overhead"
LR = 1e-3  # a rate that trains without diverging, for every model here
STUB_ITERATIONS = 20_000


def cases(quick: bool) -> list[dict]:
    from lrf.config import Setup

    if quick:
        return [dict(label="small-cnn / digits", setup=Setup(), n=100, rounds=5, parts=10)]
    out = [dict(label="small-cnn / digits", setup=Setup(), n=300, rounds=12, parts=30)]
    if cifar_available():
        out.append(dict(label="resnet18_v2 / CIFAR-10", setup=Setup(data=CIFAR_DATA), n=40, rounds=3,
                        parts=6))
    return out


def no_stop_config(n: int):
    """Exactly n iterations: the rate barely moves and the criterion may not stop before n + 1."""
    from lrf.config import SweepConfig

    return SweepConfig(lr_start=LR, lr_multiplier=1.000001, max_iter=n, min_iter=n + 1)


class _Stub:
    """A learner that does nothing: what is left is the sweep loop itself."""

    def iteration(self, lr=None, take_step=True) -> float:
        return 1.0

    def snapshot(self):
        return None

    def restore(self, snapshot) -> None:
        pass


@contextlib.contextmanager
def _cli_progress(config):
    """The CLI's progress callback (:class:`lrf.cli.ProgressBar`), drawn to /dev/null instead of the terminal."""
    from lrf.cli import ProgressBar

    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), ProgressBar(config, enabled=True) as bar:
        yield bar


def loop_costs(rounds: int = 5) -> dict[str, float]:
    """Per-iteration seconds of the sweep loop alone, and of the CLI progress callback."""
    import lrf

    config = no_stop_config(STUB_ITERATIONS)
    stub = _Stub()

    def plain() -> float:
        return timed(lambda: lrf.find(stub, config))

    def with_progress() -> float:
        with _cli_progress(config) as callback:
            return timed(lambda: lrf.find(stub, config, progress=callback))

    times = interleaved({"plain": plain, "progress": with_progress}, rounds)
    per_iter = statistics.median(times["plain"]) / STUB_ITERATIONS
    progress = statistics.median(b - a for a, b in zip(times["plain"], times["progress"])) / STUB_ITERATIONS
    return {"loop_per_iteration": per_iter, "progress_per_iteration": max(progress, 0.0)}


def measure(case: dict, costs: dict[str, float]) -> dict:
    import time

    import lrf
    from benchmarks._engine import Rig, snapshot_timers, sync
    from lrf.sweep import make_schedule

    n, rounds = case["n"], case["rounds"]
    config = no_stop_config(n)
    schedule = make_schedule(config)  # the rates lrf.find will use
    with Rig(case["setup"], loader=case["loader"]) as rig:
        learner = rig.learner
        with rig.restored():  # warm up the loader, the memory pool and the kernels
            for step in range(5):
                learner.iteration(schedule(step))
        sync()

        def sweep() -> float:
            sync()
            started = time.perf_counter()
            result = lrf.find(learner, config)
            seconds = time.perf_counter() - started  # find ends with restore(), which waits for the device
            if len(result) != n or result.stop_reason.value != "max_iter":
                raise RuntimeError(f"expected {n} iterations and max_iter, got {len(result)}, {result.stop_reason}")
            return seconds

        def bare() -> float:
            with rig.restored():
                sync()
                started = time.perf_counter()
                for step in range(n):
                    learner.iteration(schedule(step))
                sync()  # the last update may still be queued
                return time.perf_counter() - started

        def no_sync() -> float:
            with rig.restored():
                sync()
                started = time.perf_counter()
                rig.train_no_sync(schedule(step) for step in range(n))
                return time.perf_counter() - started

        log(f"{case['label']}: {rounds} rounds of sweep / bare / no-sync, N={n}")
        loops = interleaved({"sweep": sweep, "bare": bare, "no_sync": no_sync}, rounds)

        # the sweep's fixed costs, each next to a training iteration
        state = {"snapshot": learner.snapshot()}

        def iteration() -> float:
            return timed(lambda: learner.iteration(LR), wait=sync)

        def dry_run() -> float:
            return timed(lambda: learner.iteration(None, take_step=False), wait=sync)

        snapshot, restore = snapshot_timers(learner, state)

        log(f"{case['label']}: {case['parts']} rounds of iteration / dry run / snapshot / restore")
        with rig.restored():
            parts = interleaved({"iteration": iteration, "dry_run": dry_run, "snapshot": snapshot,
                                 "restore": restore}, case["parts"])
    return {"loops": loops, "parts": parts, "costs": costs}


def run(quick: bool) -> Report:
    report = Report(
        NAME, "Sweep overhead: lrf.find vs a bare training loop", quick,
        "lrf.find running exactly N iterations (rate ≈ 1e-3, barely growing; min_iter = N + 1, so it cannot stop "
        "early) against a bare loop of N `learner.iteration(lr)` calls on the same learner, data stream and rates; "
        "both end waiting for the device. Goal: sweep / bare ≤ 1.02. Rounds are interleaved (sweep, bare, no-sync; "
        "order rotating from round to round); ratios are per round.",
    )
    log("sweep loop on a do-nothing learner (criterion, bookkeeping, CLI progress callback)")
    costs = loop_costs(rounds=3 if quick else 5)
    report.raw["loop_costs"] = costs
    from benchmarks._engine import make_loader

    all_cases = cases(quick)
    for case in all_cases:  # every loader forks before any network exists (see make_loader)
        case["loader"] = make_loader(case["setup"])
    for case in all_cases:
        data = measure(case, costs)
        report.raw[case["label"]] = data
        label, n = case["label"], case["n"]
        loops, parts = data["loops"], data["parts"]
        report.sizes[label] = f"N = {n} iterations, {case['rounds']} rounds; parts {case['parts']} rounds"
        report.figures.append(figure(f"{label}: sweep / bare loop (N = {n})", ratios(loops["sweep"], loops["bare"]),
                                     le=1.02))
        report.figures.append(figure(f"{label}: bare loop with per-iteration sync / without",
                                     ratios(loops["bare"], loops["no_sync"]),
                                     note="informational: what returning a float each iteration costs"))

        bare = statistics.median(loops["bare"])
        med = {k: statistics.median(v) for k, v in parts.items()}
        overhead = statistics.median(s - b for s, b in zip(loops["sweep"], loops["bare"]))
        sync_cost = statistics.median(b - q for b, q in zip(loops["bare"], loops["no_sync"]))
        loop_total = n * costs["loop_per_iteration"]
        progress_total = n * costs["progress_per_iteration"]
        predicted = med["dry_run"] + med["snapshot"] + med["restore"] + loop_total

        def row(what, seconds, per_iteration=None):
            share = 100 * seconds / bare
            return [what, seconds, per_iteration, f"{share:+.2f} %" if what.startswith("measured") else f"{share:.2f} %"]

        report.tables.append(Table(
            f"{label}: where the sweep's time goes (N = {n}; medians)",
            ["part", "seconds per sweep", "seconds per iteration", "share of the bare loop"],
            [
                ["bare loop of N iterations (baseline)", bare, bare / n, "100 %"],
                ["one training iteration, alone (+ wait)", med["iteration"], None, f"{100 * med['iteration'] / bare:.2f} %"],
                row("measured overhead: sweep − bare (paired)", overhead),
                row("dry-run iteration (forward only)", med["dry_run"]),
                row("snapshot (+ wait for the copies)", med["snapshot"]),
                row("restore", med["restore"]),
                row("criterion + bookkeeping (sweep loop on a do-nothing learner)", loop_total,
                    costs["loop_per_iteration"]),
                row("predicted overhead (the four above)", predicted),
                row("CLI tqdm progress callback (not in lrf.find's default; add if used)", progress_total,
                    costs["progress_per_iteration"]),
                row("per-iteration host sync (bare − no-sync loop), paid by both", sync_cost, sync_cost / n),
            ],
        ))
    report.notes += [
        "The dry-run iteration is the sweep's largest fixed cost: a forward pass, about a third of an iteration; "
        "snapshot and restore are memory copies. Per iteration the loop adds microseconds "
        "(the criterion, three list appends, one float conversion).",
        "The per-iteration sync is part of the learner protocol (SPEC §2: `iteration` returns a float); the sweep "
        "needs every loss before it can choose the next step, so it cannot be avoided by the sweep, only measured.",
        "Default loader workers (one per core), as `lrf find` uses them.",
    ]
    return report


if __name__ == "__main__":
    module_main(NAME, run)
