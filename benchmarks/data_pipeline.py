"""Data pipeline: can the loader keep the training loop fed, and with how many workers?

For each source and ``loader_workers`` in {0, 1, 2}: batches per second of
``make_batch_loader`` alone (iterated, nothing else running) against the
batches per second the training loop consumes (iterations per second on one
fixed batch: training without any loading). Goal: loader >= 2 x consumption.
Beside it, the training loop's speed with that loader feeding it, as a fraction
of its speed on the fixed batch: the figure that says which worker count to use
(workers and training share the same cores).
"""

from __future__ import annotations

import statistics

from benchmarks._common import (CIFAR_DATA, Report, Table, cifar_available, figure, interleaved, log,
                                module_main, ratios, timed)

NAME = "data_pipeline"
WORKERS = (0, 1, 2)


def cases(quick: bool) -> list[dict]:
    from lrf.config import Setup

    if quick:
        return [dict(label="digits (small-cnn)", setup=Setup(), batches=150, iterations=60, rounds=2)]
    out = [dict(label="digits (small-cnn)", setup=Setup(), batches=400, iterations=150, rounds=4)]
    if cifar_available():
        out.append(dict(label="CIFAR-10 rec (resnet18_v2)", setup=Setup(data=CIFAR_DATA), batches=40,
                        iterations=6, rounds=3))
    return out


def open_loaders(case: dict) -> None:
    """One persistent loader per worker count, plus the learner's own (no workers), made before
    any network exists: the loaders fork their workers at once (see benchmarks._engine.make_loader)."""
    from benchmarks._engine import make_loader

    case["loaders"] = {w: make_loader(case["setup"], loader_workers=w) for w in WORKERS}
    case["rig_loader"] = make_loader(case["setup"], loader_workers=0)


def measure(case: dict) -> dict:
    from benchmarks._engine import Rig, fixed_batch_learner, sync
    from lrf.gluon import data as gdata
    from lrf.gluon.learner import GluonLearner

    setup, batches, iterations = case["setup"], case["batches"], case["iterations"]
    streams = {w: iter(loader) for w, loader in case["loaders"].items()}
    with Rig(setup, loader=case["rig_loader"]) as rig:
        fixed = fixed_batch_learner(rig)
        trainer, loss = rig.learner.trainer, rig.learner.loss

        def draw(stream, count: int) -> None:
            for _ in range(count):
                next(stream)

        def train(learner) -> None:
            for _ in range(iterations):
                learner.iteration()

        def compute() -> float:
            return timed(lambda: train(fixed), wait=sync)

        def loader_alone(workers: int):
            def variant() -> float:
                draw(streams[workers], 2 * workers + 1)  # drain what the workers prefetched meanwhile
                return timed(lambda: draw(streams[workers], batches))
            return variant

        def train_with(workers: int):
            def variant() -> float:
                learner = GluonLearner(rig.net, streams[workers], rig.ctx, trainer=trainer, loss=loss)
                for _ in range(2 * workers + 1):
                    learner.iteration()
                return timed(lambda: train(learner), wait=sync)
            return variant

        variants = {"compute": compute}
        for w in WORKERS:
            variants[f"loader-{w}"] = loader_alone(w)
            variants[f"train-{w}"] = train_with(w)
        try:
            with rig.restored():
                times = interleaved(variants, case["rounds"])
        finally:
            for loader in case["loaders"].values():
                gdata.close_loader(loader)
    return {"times": times}


def run(quick: bool) -> Report:
    report = Report(
        NAME, "Data pipeline: loader throughput vs training consumption", quick,
        "Batches per second of `make_batch_loader` alone (iterated after draining what its workers prefetched, "
        "nothing else running) "
        "against the batches per second training consumes (iterations per second on one fixed batch, no loading), "
        "per source and `loader_workers`; and the training loop's speed fed by that loader as a fraction of its "
        "fixed-batch speed (workers and training share the 2 cores). Goal: loader ≥ 2 × consumption. "
        "All variants interleaved, one round = each once; one loader per worker count, kept open across rounds.",
    )
    import os

    default_workers = os.cpu_count() or 1
    recommendations = []
    all_cases = cases(quick)
    for case in all_cases:
        open_loaders(case)
    for case in all_cases:
        label = case["label"]
        log(f"{label}: {case['rounds']} rounds of compute / loader / training for workers {WORKERS}")
        data = measure(case)
        report.raw[label] = data
        times = data["times"]
        b, n = case["batches"], case["iterations"]
        report.sizes[label] = f"{b} loader batches, {n} training iterations per variant, {case['rounds']} rounds"
        consumption = [n / t for t in times["compute"]]
        rows = []
        efficiency = {}
        for w in WORKERS:
            loader_rate = [b / t for t in times[f"loader-{w}"]]
            fed_rate = [n / t for t in times[f"train-{w}"]]
            headroom = ratios(loader_rate, consumption)
            efficiency[w] = ratios(fed_rate, consumption)
            tag = " (default here: one per core)" if w == default_workers else ""
            report.figures.append(figure(f"{label}, loader_workers={w}{tag}: loader / training consumption", headroom, ge=2))
            report.figures.append(figure(f"{label}, loader_workers={w}: training fed by the loader / on a fixed batch",
                                         efficiency[w], note="informational; 1 = no loading cost"))
            rows.append([w, statistics.median(loader_rate), statistics.median(consumption),
                         statistics.median(headroom), statistics.median(fed_rate), statistics.median(efficiency[w])])
        best = max(statistics.median(efficiency[w]) for w in WORKERS)
        # fewest workers within 3 % of the best: each worker is a process and its memory
        pick = min(w for w in WORKERS if statistics.median(efficiency[w]) >= 0.97 * best)
        recommendations.append((label, pick, statistics.median(efficiency[pick]),
                                statistics.median(efficiency.get(default_workers, [float('nan')]))))
        report.tables.append(Table(
            f"{label}: medians over rounds",
            ["loader_workers", "loader batches/s", "training consumes batches/s", "loader / consumption",
             "training fed by loader, it/s", "fed / fixed-batch speed"],
            rows,
        ))
    report.tables.append(Table(
        "Recommended default worker count per source (fewest workers within 3 % of the best fed training speed)",
        ["source", "recommended loader_workers", "fed / fixed-batch speed at it", f"at the current default ({default_workers})"],
        [list(r) for r in recommendations],
    ))
    report.notes += [
        "The loader-alone rate is an upper bound: during training the workers compete with MXNet's compute threads "
        "for the same 2 cores, which the 'fed / fixed-batch speed' column shows.",
        "With loader_workers=0 the batch is assembled in the training process, between iterations (no overlap); with "
        "workers it is assembled in other processes and sent through shared memory.",
    ]
    return report


if __name__ == "__main__":
    module_main(NAME, run)
