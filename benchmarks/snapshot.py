"""Snapshot and restore: time against one training iteration, memory against one copy.

``GluonLearner.snapshot()`` copies every parameter in memory and pickles the
trainer state; ``restore()`` puts both back. Goals: each takes at most one
training iteration's time, and the snapshot holds about one copy of what it
protects (parameters + optimizer state). Plain SGD (the reference, no state)
and SGD with momentum 0.9 (one state array per parameter) for both models.
"""

from __future__ import annotations

import statistics

from benchmarks._common import (CIFAR_DATA, Report, Table, cifar_available, figure, interleaved, log,
                                module_main, ratios, timed)

NAME = "snapshot"
OPTIMIZERS = {"sgd": {"learning_rate": 0.01}, "sgd+momentum 0.9": {"learning_rate": 0.01, "momentum": 0.9}}


def cases(quick: bool) -> list[dict]:
    from lrf.config import Setup

    out = [dict(label="small-cnn / digits", setup=Setup(), rounds=10 if quick else 40)]
    if not quick and cifar_available():
        out.append(dict(label="resnet18_v2 / CIFAR-10", setup=Setup(data=CIFAR_DATA), rounds=6))
    return out


def measure(setup, trainer_args: dict, rounds: int, loader=None) -> dict:
    from benchmarks._engine import Rig, nbytes, snapshot_timers, state_bytes, sync

    with Rig(setup, loader=loader, trainer_args=trainer_args) as rig:
        learner = rig.learner
        for _ in range(3):  # the optimizer state exists after the first update
            learner.iteration(trainer_args["learning_rate"])
        sync()
        state = {"snapshot": learner.snapshot()}

        def iteration() -> float:  # waits for the update, still queued when iteration() returns the loss
            return timed(lambda: learner.iteration(trainer_args["learning_rate"]), wait=sync)

        snapshot, restore = snapshot_timers(learner, state)

        times = interleaved({"iteration": iteration, "snapshot": snapshot, "restore": restore}, rounds)

        params, states = state["snapshot"]
        snapshot_bytes = sum(nbytes(a) for a in params.values()) + len(states)
        param_bytes = sum(nbytes(p.data()) for p in rig.net.collect_params().values())
        updater = learner.trainer._updaters[0]
        optimizer_bytes = sum(state_bytes(s) for s in updater.states.values())
        count = len(params)
    return {"times": times, "snapshot_bytes": snapshot_bytes, "param_bytes": param_bytes,
            "optimizer_bytes": optimizer_bytes, "arrays": count}


def run(quick: bool) -> Report:
    report = Report(
        NAME, "Snapshot and restore: time and memory", quick,
        "`learner.snapshot()` (waiting for its copies) and `learner.restore()` timed against one training iteration "
        "(waiting for its update), interleaved; snapshot bytes (the parameter copies' bytes + the pickled trainer "
        "state's length) against the parameters' + optimizer state's bytes. Goals: snapshot / iteration ≤ 1, "
        "restore / iteration ≤ 1, snapshot bytes / (parameters + optimizer state) ≈ 1 (≤ 1.05).",
    )
    from benchmarks._engine import make_loader

    rows = []
    all_cases = cases(quick)
    loaders = {}  # every loader forks before any network exists (see make_loader)
    for case in all_cases:
        for opt in OPTIMIZERS:
            loaders[case["label"], opt] = make_loader(case["setup"])
    for case in all_cases:
        for opt, trainer_args in OPTIMIZERS.items():
            label = f"{case['label']}, {opt}"
            log(f"{label}: {case['rounds']} rounds")
            data = measure(case["setup"], trainer_args, case["rounds"], loader=loaders[case["label"], opt])
            report.raw[label] = data
            times = data["times"]
            snap = ratios(times["snapshot"], times["iteration"])
            rest = ratios(times["restore"], times["iteration"])
            protected = data["param_bytes"] + data["optimizer_bytes"]
            memory = data["snapshot_bytes"] / protected
            report.figures += [
                figure(f"{label}: snapshot / iteration", snap, le=1.0),
                figure(f"{label}: restore / iteration", rest, le=1.0),
                figure(f"{label}: snapshot bytes / (parameters + optimizer state)", memory, le=1.05, goal="≈ 1 (≤ 1.05)"),
            ]
            rows.append([label, statistics.median(times["iteration"]), statistics.median(times["snapshot"]),
                         statistics.median(times["restore"]), data["arrays"], f"{data['param_bytes'] / 2**20:.2f}",
                         f"{data['optimizer_bytes'] / 2**20:.2f}", f"{data['snapshot_bytes'] / 2**20:.2f}"])
        report.sizes[case["label"]] = f"{case['rounds']} rounds per optimizer"
    report.tables.append(Table(
        "Medians (seconds) and sizes (MiB)",
        ["model / data, optimizer", "iteration s", "snapshot s", "restore s", "arrays", "parameters MiB",
         "optimizer state MiB", "snapshot MiB"],
        rows,
        note="Parameters include BatchNorm running statistics (the snapshot must restore them too). The snapshot's "
             "trainer state is the pickled updater (states + optimizer, as `Trainer.save_states` writes it); its few "
             "hundred bytes of optimizer settings are the difference from exactly one copy.",
    ))
    report.notes += [
        "Restore ends with `mx.nd.waitall()`; snapshot returns with its parameter copies still queued, so it is timed "
        "up to a wait as well (the copies have to happen before the first training step anyway).",
    ]
    return report


if __name__ == "__main__":
    module_main(NAME, run)
