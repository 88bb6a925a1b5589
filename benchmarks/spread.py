"""How sure is a pick? The rule's pick over sweeps on different batch orders, same weights.

For each weight seed: the initial weights are built and saved once, then R sweeps run
from them, sweep r drawing its batches with ``Setup.with_batch_order(r)`` (what the
flow's ``sweeps`` parameter does). Reported: the spread (largest / smallest pick) of
the first 3 and of all R sweeps, how far one sweep's pick lies from the median of R,
and what R sweeps cost against the candidates' training (3 x ``iterations``). These
figures choose ``CandidatePlan.sweeps`` and ``CandidatePlan.spread_threshold``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from benchmarks._common import Report, Table, cifar_available, figure, in_process_stages, log, module_main
from lrf.config import DEFAULT_DATA, REFERENCE_MULTIPLIERS, CandidatePlan, Setup, SweepConfig

NAME = "spread"


def cases(quick: bool, folder: Path) -> list[dict]:
    if quick:
        return [dict(label="small-cnn / digits", data=DEFAULT_DATA, seeds=(Setup.seed,), orders=3)]
    out = [dict(label="small-cnn / digits", data=DEFAULT_DATA, seeds=(Setup.seed, 1, 2, 3, 4), orders=5)]
    if cifar_available() and os.environ.get("LRF_BENCH_SPREAD_CIFAR") == "1":  # 3 ResNet sweeps: long on CPU
        from benchmarks._engine import cifar_with_small_holdout

        out.append(dict(label="resnet18_v2 / CIFAR-10", data=cifar_with_small_holdout(folder / "cifar"),
                        seeds=(Setup.seed,), orders=3))
    return out


def one_seed(case: dict, seed: int, folder: Path) -> dict:
    import lrf

    setup = Setup(data=case["data"], seed=seed, loader_workers=0)
    stages = in_process_stages(setup, CandidatePlan(), folder)
    init = stages.initialise()
    log(f"{case['label']} seed {seed}: {case['orders']} sweeps, sweep r on batch order r")
    results = stages.sweep(init, case["orders"])
    return {"seed": seed, "picks": [lrf.suggest(result, CandidatePlan.rule).lr for result in results],
            "sweep_iterations": [len(result) for result in results]}


def run(quick: bool) -> Report:
    raw = {}
    with tempfile.TemporaryDirectory(prefix="lrf-bench-spread-") as tmp:
        for case in cases(quick, Path(tmp)):
            raw[case["label"]] = [one_seed(case, seed, Path(tmp)) for seed in case["seeds"]]
    return build_report(quick, raw)


def build_report(quick: bool, raw: dict) -> Report:
    report = Report(
        NAME, "How sure is a pick: spread over batch orders", quick,
        "Per weight seed, R sweeps from the same initial weights on different batch orders "
        "(`Setup.with_batch_order`); the reference rule's pick on each. Spread = largest / smallest pick. "
        "Cost = R sweeps' iterations / the candidates' 3 × iterations.",
    )
    report.raw = raw
    check = len(REFERENCE_MULTIPLIERS) * CandidatePlan.iterations
    for label, seeds in raw.items():
        rows, spreads3, spreads, off, costs = [], [], [], [], []
        for s in seeds:
            picks = [p for p in s["picks"] if p is not None]
            median = sorted(picks)[(len(picks) - 1) // 2]
            spread3 = max(picks[:3]) / min(picks[:3])
            spreads3.append(spread3)
            spreads.append(max(picks) / min(picks))
            off += [max(p / median, median / p) for p in picks]
            costs.append(sum(s["sweep_iterations"][:3]) / check)
            rows.append([s["seed"], ", ".join(f"{p:.3g}" for p in picks), f"{median:.3g}", spread3,
                         max(picks) / min(picks)])
        report.tables.append(Table(f"{label}: the reference rule's pick per batch order",
                                   ["weight seed", "picks", "median", "spread of 3", f"spread of {len(seeds[0]['picks'])}"],
                                   rows))
        report.figures.append(figure(f"{label}: spread of 3 sweeps (max / min pick)", spreads3))
        report.figures.append(figure(f"{label}: one sweep's pick vs the median (factor, either way)", off))
        report.figures.append(figure(f"{label}: 3 sweeps' iterations / the candidates' iterations", costs))
        log(f"{label}: spread of 3 median {statistics.median(spreads3):.2f}, max {max(spreads3):.2f}")
    return report


if __name__ == "__main__":
    module_main(NAME, run)
