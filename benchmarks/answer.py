"""The recommendation against a grid: which candidate plan, and which held-out measure, should decide?

Issue 9 §5. The flow recommends the candidate with the lowest held-out loss; two plans
train the candidates: "reference" (the pick x 1, x 10, x 0.1, ``CandidatePlan.iterations``
each) and "refine" (successive halving over 9 quarter-decade rates from pick / 10 to
pick x 10, same compute). Per data set and seed, the real flow
(:func:`flows.lr_finder.lr_finder`, loader_workers=0, at_once=1) runs three times on one output
root, so the initial parameters and the sweep are shared through its cache:

1. ``plan="multiples"`` (the reference check): the rule's pick (row x 1) and the reference recommendation;
2. ``candidate_rates=GRID``: a log-spaced grid of constant rates, same budget, same initial
   weights and batch order (the grid's best held-out loss and best accuracy);
3. ``plan="refine"``: the refine recommendation;

and, measured only (the library is unchanged), 4. the refine plan over the issue's other
range, 9 log-spaced rates from where the sweep's loss starts to fall to where it turns.

For each: held-out loss / the grid's best, held-out accuracy - the grid's best (points),
(candidate + sweep iterations) / (grid size x budget); and the same had held-out accuracy
decided (from the same rows). Goal: the default plan within 1.02 of the grid's best loss,
within 1 point of its best accuracy, at <= 1/3 of its compute.

Environment (all optional): ``LRF_BENCH_ANSWER_WORK=DIR`` keeps the flows' output roots
there (the cache makes a second run reuse every finished training), else a temporary
folder; ``LRF_BENCH_ANSWER_CASES=digits`` or ``cifar10`` runs one data set;
``LRF_BENCH_ANSWER_RANGE`` lists the data sets that also measure the range alternative
(default ``digits,cifar10``).

Issue 18 §4, the user's optimizer: the cases ``digits-momentum`` and ``cifar10-momentum``
train with SGD, momentum 0.9 and weight decay 5e-4 (``MOMENTUM``): the plans against a
grid trained with that optimizer (digits: both plans, 3 seeds; CIFAR-10: the reference
plan, 1 seed), and the rates the flow answers with that optimizer ÷ those it answers with
plain SGD, same data, network and seed. ``cifar10-momentum-picks`` compares the sweeps'
picks alone (two sweeps, minutes instead of an hour).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import HARNESS_STARTUP_TIMEOUT, Report, Table, cifar_available, figure, log, module_main
from lrf.config import DEFAULT_DATA, CandidatePlan, Setup

NAME = "answer"
SEEDS = (Setup.seed, 1, 2, 3, 4)  # the default seed first
BUDGET = CandidatePlan.iterations
DEFAULT_PLAN = CandidatePlan.plan
GOAL_LOSS, GOAL_POINTS, GOAL_COMPUTE = 1.02, 1.0, 1 / 3
# what is compared with the grid, in the tables' order: (key, label)
VARIANTS = (("pick", "rule's pick alone"), ("reference", "reference plan"), ("refine", "refine plan"),
            ("range", "refine plan over fall-start…turn, measured only"))
MEASURES = (("loss", "held-out loss decides"), ("accuracy", "held-out accuracy decides"))


MOMENTUM = {"momentum": 0.9, "wd": 5e-4}  # the optimizer parameters of the momentum cases (issue 18 §4)
MOMENTUM_LABEL = "SGD momentum 0.9, wd 5e-4"


def cases(quick: bool, folder: Path) -> list[dict]:
    wanted = set(filter(None, os.environ.get(
        "LRF_BENCH_ANSWER_CASES", "digits,cifar10,digits-momentum,cifar10-momentum").split(",")))
    ranged = set(filter(None, os.environ.get("LRF_BENCH_ANSWER_RANGE", "digits,cifar10").split(",")))
    digits = dict(key="digits", label="small-cnn / digits", data=DEFAULT_DATA, model=None,
                  grid=[float(x) for x in np.geomspace(1e-3, 3, 11)], anchored=False, range="digits" in ranged)
    if quick:
        return [dict(digits, iterations=60, seeds=SEEDS[:2])]
    out = [dict(digits, iterations=BUDGET, seeds=SEEDS)] if "digits" in wanted else []
    if "cifar10" in wanted and cifar_available():
        from benchmarks._engine import cifar_with_small_holdout

        # 7 rates half a decade apart around the reference pick (pick x 10^(k/2), k = -3..3): the grid
        # then holds the reference plan's three candidates exactly, so the flow's cache trains them once
        out.append(dict(key="cifar10", label="resnet18_v2 / CIFAR-10", data=cifar_with_small_holdout(folder / "cifar"),
                        model="resnet18_v2", grid=[10 ** (k / 2) for k in range(-3, 4)], anchored=True,
                        range="cifar10" in ranged, iterations=BUDGET, seeds=(Setup.seed,)))
    if "digits-momentum" in wanted:
        # the plain digits grid is too low for momentum (its best rates sit at the grid's top end
        # divided by ~10): the same 11 rates a decade lower, 1e-4…0.3
        out.append(dict(digits, key="digits-momentum", label=f"small-cnn / digits, {MOMENTUM_LABEL}",
                        optimizer_params=MOMENTUM, plain=True, plans=("reference", "refine"), range=False,
                        grid=[float(x) for x in np.geomspace(1e-4, 0.3, 11)], iterations=BUDGET, seeds=SEEDS[:3]))
    for key in ("cifar10-momentum", "cifar10-momentum-picks"):
        if key in wanted and cifar_available():
            from benchmarks._engine import cifar_with_small_holdout

            # the plain CIFAR-10 case's grid around this optimizer's pick; "-picks": the sweeps alone (minutes)
            # (one output root for both: the sweeps of the first are the second's cache)
            # the full case leaves plain SGD's reference plan to the plain CIFAR-10 case (same data, network
            # and seed; 1,500 ResNet-18 iterations): the picks case compares the two sweeps
            picks = key.endswith("-picks")
            out.append(dict(key="cifar10-momentum",
                            label=f"resnet18_v2 / CIFAR-10, {MOMENTUM_LABEL}" + (", sweeps only" if picks else ""),
                            data=cifar_with_small_holdout(folder / "cifar"), model="resnet18_v2",
                            optimizer_params=MOMENTUM, plain=picks, picks_only=picks, plans=("reference",),
                            grid=[10 ** (k / 2) for k in range(-3, 4)], anchored=True, range=False,
                            iterations=BUDGET, seeds=(Setup.seed,)))
    return out


# --- reading a run's summary -----------------------------------------------------------


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _trained(row: dict) -> bool:
    return _finite(row["holdout_loss"]) and row["holdout_accuracy"] is not None


def _last_rung(summary: dict) -> list[dict]:
    """The rows the recommendation chooses from: the candidates of the last rung."""
    rates = summary["rungs"][-1]["rates"]
    return [r for r in summary["final_losses"] if any(math.isclose(r["lr"], lr, rel_tol=1e-12) for lr in rates)]


def by_accuracy(rows: list[dict]) -> dict | None:
    """The row the recommendation would be had held-out accuracy decided: the highest accuracy,
    the lower rate among equals (as :func:`lrf.candidates.recommend` prefers the lower of tied rates)."""
    ok = [r for r in rows if _trained(r)]
    return min(ok, key=lambda r: (-r["holdout_accuracy"], r["lr"])) if ok else None


def _row(rows: list[dict], lr: float | None) -> dict | None:
    return next((r for r in rows if lr is not None and math.isclose(r["lr"], lr, rel_tol=1e-12)), None)


def _brief(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {"lr": row["lr"], "holdout_loss": row["holdout_loss"] if _trained(row) else math.inf,
            "holdout_accuracy": row["holdout_accuracy"], "iterations": row["iterations"]}


def survivors_by_accuracy(summary: dict, cache: Path) -> bool | None:
    """Would held-out accuracy have kept the same survivors at every rung? Read from the
    candidates' cached segments (``cache/candidate-*.json``, one per rate and rung: a rung's
    segment is known by its rate and its length). None for a one-rung plan."""
    from lrf.candidates import CandidateResult

    rungs = summary["rungs"]
    if len(rungs) < 2:
        return None
    segments = {}
    for path in cache.glob("candidate-*.json"):
        c = CandidateResult.from_json(path.read_text(encoding="utf-8"))
        segments[(c.lr, c.iterations)] = c
    start = 0
    for here, after in zip(rungs, rungs[1:]):
        ranked = []
        for lr in here["rates"]:
            c = segments[(lr, here["end"] - start)]
            acc = c.holdout_accuracy if not c.diverged and c.holdout_accuracy is not None else -math.inf
            ranked.append((-acc, lr))
        kept = {lr for _, lr in sorted(ranked)[: len(after["rates"])]}
        if kept != set(after["rates"]):
            return False
        start = here["end"]
    return True


# --- one seed ---------------------------------------------------------------------------


def one_seed(case: dict, seed: int, root: Path) -> dict:
    from flows.lr_finder import lr_finder
    from lrf import rules
    from lrf.result import SweepResult

    base = dict(data=case["data"], model=case["model"], seed=seed, loader_workers=0, at_once=1,
                iterations=case.get("iterations", 1), optimizer_params=case.get("optimizer_params"),
                output_root=str(root))

    def flow(what: str, **params) -> dict:
        log(f"{case['label']} seed {seed}: {what}")
        return lr_finder(**{**base, **params})

    if case.get("picks_only"):  # the sweep's pick with this optimizer and with plain SGD, one 2-iteration candidate each
        short = dict(plan="multiples", candidate_multipliers=(1.0,), iterations=2)
        this, plain = flow("sweep", **short), flow("sweep with plain SGD", **short, optimizer_params=None)
        return {"seed": seed, "pick": this["pick_lr"], "plain": _plain(this, plain, recommended=False)}
    plans = case.get("plans", ("reference", "refine"))
    # the plans first, then the grid: on a slow machine a run cut short still compares the plans
    runs = {"reference": flow("reference plan", plan="multiples")}
    if "refine" in plans:
        runs["refine"] = flow("refine plan", plan="refine")
    pick = runs["reference"]["pick_lr"]
    grid = [pick * m for m in case["grid"]] if case["anchored"] else list(case["grid"])
    # the rates nearest the pick train first (the summary sorts them again)
    order = sorted(grid, key=lambda lr: (abs(math.log(lr / pick)), lr)) if case["anchored"] else grid
    runs["grid"] = flow(f"grid of {len(grid)} rates", candidate_rates=tuple(order))
    sweep = SweepResult.load(Path(runs["reference"]["run_dir"]) / runs["reference"]["files"]["sweep_csv"])
    # "where the loss starts to fall" and "where it turns", as lrf.rules reads them (private helpers:
    # measured here, not offered by the library)
    curve = rules._read_curve(sweep, runs["reference"]["rule"])
    fall, turn = rules._fall_start(curve), float(curve.lrs[curve.turn])
    if case["range"]:
        rates = tuple(float(x) for x in np.geomspace(fall, turn, CandidatePlan.refine_rates))
        runs["range"] = flow(f"refine plan over {fall:.3g}…{turn:.3g}", plan="refine", candidate_rates=rates)

    grid_rows = [_brief(r) for r in sorted(runs["grid"]["final_losses"], key=lambda r: r["lr"])]
    trained = [r for r in grid_rows if math.isfinite(r["holdout_loss"])]
    best_loss = min(trained, key=lambda r: r["holdout_loss"])
    best_acc = max(trained, key=lambda r: (r["holdout_accuracy"], -r["lr"]))
    grid_compute = len(grid) * case["iterations"]
    sweep_iterations = runs["reference"]["compute"]["sweep_iterations"]

    def score(row: dict | None, candidate_iterations: int) -> dict:
        out = {**(row or {"lr": None}), "candidate_iterations": candidate_iterations,
               "compute": (candidate_iterations + sweep_iterations) / grid_compute}
        if row is None:
            return {**out, "loss_ratio": math.inf, "points": -math.inf}
        return {**out, "loss_ratio": row["holdout_loss"] / best_loss["holdout_loss"],
                "points": 100 * ((row["holdout_accuracy"] or 0.0) - best_acc["holdout_accuracy"])}

    ref_rows = runs["reference"]["final_losses"]
    variants = {"pick": {"loss": score(_brief(_row(ref_rows, pick)), case["iterations"])}}
    for key in ("reference", "refine", "range"):
        if key not in runs:
            continue
        s = runs[key]
        spent = s["compute"]["candidate_iterations"]
        variants[key] = {
            "loss": score(_brief(_row(s["final_losses"], s["recommended_lr"])), spent),
            "accuracy": score(_brief(by_accuracy(_last_rung(s))), spent),
            "candidates": [_brief(r) for r in s["final_losses"]],
            "rungs": s["rungs"],
            "survivors_same_by_accuracy": survivors_by_accuracy(s, root / "cache"),
            "tie_broken": s["recommendation"]["tie_broken"],
        }
    variants["pick"]["accuracy"] = variants["pick"]["loss"]  # one candidate: nothing to decide
    out = {"seed": seed, "pick": pick, "fall_start": fall, "turn": turn, "sweep_iterations": sweep_iterations,
           "stop_reason": runs["reference"]["sweep"]["stop_reason"], "grid": grid_rows,
           "best_loss": best_loss, "best_accuracy": best_acc, "grid_compute": grid_compute, "variants": variants}
    if case.get("plain"):
        plain = flow("reference plan with plain SGD", plan="multiples", optimizer_params=None)
        out["plain"] = _plain(runs["reference"], plain, recommended=True)
    return out


def _plain(this: dict, plain: dict, recommended: bool) -> dict:
    """This optimizer's rates against plain SGD's, from two summaries of the same data, network and seed."""
    out = {"pick": this["pick_lr"], "plain_pick": plain["pick_lr"], "pick_ratio": this["pick_lr"] / plain["pick_lr"],
           "sweep_iterations": this["compute"]["sweep_iterations"],
           "plain_sweep_iterations": plain["compute"]["sweep_iterations"]}
    if recommended:
        out.update(recommended=this["recommended_lr"], plain_recommended=plain["recommended_lr"],
                   recommended_ratio=this["recommended_lr"] / plain["recommended_lr"])
    return out


def run(quick: bool) -> Report:
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    raw: dict[str, dict] = {}
    work = os.environ.get("LRF_BENCH_ANSWER_WORK")
    # what chose the cases: kept with each case, so a merged report says how each part was run
    environment = {k: v for k, v in sorted(os.environ.items()) if k.startswith("LRF_BENCH_ANSWER_")}
    with tempfile.TemporaryDirectory(prefix="lrf-bench-answer-") as tmp:
        folder = Path(work) if work else Path(tmp)
        log("starting the Prefect test harness (temporary API server)")
        with prefect_test_harness(server_startup_timeout=HARNESS_STARTUP_TIMEOUT):
            log(f"Prefect API at {prefect.settings.PREFECT_API_URL.value()}; work in {folder}")
            for case in cases(quick, folder):
                seeds = [one_seed(case, seed, folder / case["key"] / f"seed-{seed}") for seed in case["seeds"]]
                raw[case["label"]] = {"seeds": seeds, "grid": case.get("grid"), "anchored": case.get("anchored"),
                                      "iterations": case.get("iterations"), "picks_only": case.get("picks_only", False),
                                      "optimizer_params": case.get("optimizer_params"), "environment": environment}
    return build_report(quick, raw)


# --- the report -------------------------------------------------------------------------


def meets(v: dict) -> bool:
    return v["loss_ratio"] <= GOAL_LOSS and v["points"] >= -GOAL_POINTS and v["compute"] <= GOAL_COMPUTE


def _spread(values: list[float], pattern: str) -> str:
    values = [float(v) for v in values]
    if len(values) == 1:
        return pattern.format(values[0])
    return f"{pattern.format(statistics.median(values))} [{pattern.format(min(values))}–{pattern.format(max(values))}]"


def build_report(quick: bool, raw: dict[str, dict]) -> Report:
    """The report from the raw results alone (``python -m benchmarks.answer --rebuild`` redoes it from answer.json)."""
    report = Report(
        NAME, "The recommendation against a grid: which plan, which measure", quick,
        "Per data set and seed, the real flow (`flows.lr_finder.lr_finder`, loader_workers=0, at_once=1) on one output "
        "root (initial parameters and sweep shared through its cache): `plan=\"reference\"`, a log-spaced grid of "
        "constant rates as `candidate_rates` (same budget, weights and batch order), `plan=\"refine\"`, and the "
        "refine plan over the sweep's fall-start…turn range (measured only). Each recommendation against the grid: "
        "held-out loss ÷ the grid's best, held-out accuracy − the grid's best (points), (candidate + sweep "
        "iterations) ÷ (grid size × budget); also had held-out accuracy decided, from the same rows. Goal (issue 9 "
        f"§5): the default plan within {GOAL_LOSS:g} × the grid's best loss and {GOAL_POINTS:g} point of its best "
        f"accuracy, at ≤ 1/3 of its compute. Current default: `plan=\"{DEFAULT_PLAN}\"`, held-out loss decides.",
    )
    tally: dict[tuple[str, str], list[bool]] = {}
    for label, data in raw.items():
        if "seeds" not in data:
            continue
        report.raw[label] = data
        if data.get("picks_only"):
            report.sizes[label] = f"the sweep's pick only (one 2-iteration candidate); seeds {[x['seed'] for x in data['seeds']]}"
        else:
            # the plan and measure are chosen on the reference optimizer's cases alone
            _report_case(report, label, data, quick, tally if not data.get("optimizer_params") else {})
    _recommend(report, raw, tally)
    _report_optimizer(report, raw)
    for label, data in raw.items():
        if "run" in data:  # a merged report: say how each case was measured
            run, env = data["run"], " ".join(f"{k}={v}" for k, v in data.get("environment", {}).items())
            report.notes.append(
                f"{label}: run {run['date']}, took {run['seconds']:.0f} s, lrf at {run['machine'].get('commit', '?')}, "
                f"load average {run['load'].get('start', '?')} → {run['load'].get('end', '?')}; "
                f"`{(env + ' ') if env else ''}{run['command']}`.")
    report.notes += [
        "Accuracy deciding is computed from the same rows: the highest held-out accuracy among the candidates the "
        "recommendation chooses from (the refine plan's last rung), the lower rate among equals. For the refine "
        "plans, 'survivors same by accuracy' says whether accuracy would also have kept the same rates at every "
        "earlier rung (read from the cached rung results); where it says no, an accuracy-decided refine plan "
        "would have trained other finalists, so its row here is only the choice between the loss-chosen finalists.",
        "The compute fraction is against this grid's size: with a 7-rate grid (CIFAR-10) the grid costs 3,500 "
        "iterations and any plan of 1,500 candidate iterations plus a sweep is above 1/3 (it would need a grid of "
        "10 or more rates); with the 11-rate digits grid it is below.",
        "The CIFAR-10 grid is 7 rates half a decade apart around the reference pick (pick × 10^(k/2), k = −3…3), so "
        "it holds the reference plan's candidates (× 0.1, × 1, × 10) exactly and the flow's cache trains them once; "
        "the refine plan's quarter-decade rates fall between grid rates and can beat the grid's best (ratio < 1). "
        "Digits: the regret benchmark's fixed grid, 11 rates from 1e-3 to 3.",
        "Digits hold out 297 images (one image = 0.34 accuracy points); CIFAR-10's held-out split here is the first "
        "2,000 test images (one image = 0.05 points). 'diverged' rows count as infinitely bad.",
        "Loaders without worker processes (`loader_workers=0`) and one candidate at a time (`at_once=1`): the batch order "
        "depends on the seed alone, so the numbers are what the defaults would give, only slower.",
    ]
    return report


def _report_case(report: Report, label: str, data: dict, quick: bool, tally: dict) -> None:
    seeds = data["seeds"]
    grid = data["grid"]
    where = "× the reference pick" if data["anchored"] else "(fixed)"
    report.sizes[label] = (f"grid {len(grid)} rates {grid[0]:.3g}…{grid[-1]:.3g} {where}, {data['iterations']} "
                           f"iterations per rate; seeds {[s['seed'] for s in seeds]}")
    present = [(k, name) for k, name in VARIANTS if all(k in s["variants"] for s in seeds)]
    for key, name in present:
        vs = [s["variants"][key]["loss"] for s in seeds]
        judged = key in ("reference", "refine") and not quick
        note = "" if judged else ("smoke size" if quick else "informational")
        default = " (default)" if key == DEFAULT_PLAN else ""
        report.figures.append(figure(f"{label}: {name}{default}, held-out loss ÷ grid best",
                                     [v["loss_ratio"] for v in vs], le=GOAL_LOSS if judged else None, note=note))
        report.figures.append(figure(f"{label}: {name}{default}, held-out accuracy − grid best (points)",
                                     [v["points"] for v in vs], ge=-GOAL_POINTS if judged else None, note=note))
        report.figures.append(figure(f"{label}: {name}{default}, compute ÷ grid compute",
                                     [v["compute"] for v in vs], le=GOAL_COMPUTE if judged else None,
                                     goal="≤ 1/3" if judged else None, note=note))

    near = [pair for s in seeds for pair in _near_pairs(s, data["iterations"])]
    if near:
        worst = max(near, key=lambda p: p[2])
        report.figures.append(figure(
            f"{label}: held-out loss ratio (larger ÷ smaller) between two full trainings less than {NEAR - 1:.0%} "
            f"apart in rate, over {len(near)} such pairs", [p[2] for p in near],
            note=f"informational, the measure's resolution; largest: {worst[0]:.4g} against {worst[1]:.4g}, "
                 f"seed {worst[3]}"))

    rows = []
    for key, name in present:
        for measure, how in MEASURES if key != "pick" else MEASURES[:1]:
            vs = [s["variants"][key][measure] for s in seeds]
            met = [meets(v) for v in vs]
            tally.setdefault((key, measure), []).extend(met)
            differs = sum(1 for s in seeds if not _same_lr(s["variants"][key][measure]["lr"],
                                                           s["variants"][key]["loss"]["lr"]))
            same = [s["variants"][key].get("survivors_same_by_accuracy") for s in seeds]
            rows.append([f"{name}{', ' + how if key != 'pick' else ''}",
                         _spread([v["loss_ratio"] for v in vs], "{:.3f}"),
                         _spread([v["points"] for v in vs], "{:+.2f}"),
                         _spread([v["compute"] for v in vs], "{:.3f}"),
                         f"{sum(met)} of {len(met)}",
                         f"{differs} of {len(seeds)}" if measure == "accuracy" else "—",
                         f"{sum(1 for x in same if x)} of {len(same)}" if measure == "accuracy" and same[0] is not None
                         else "—"])
    report.tables.append(Table(
        f"{label}: each recommendation against the grid's best (median [min–max] over {len(seeds)} seed(s))",
        ["what", "held-out loss ÷ grid best", "accuracy − grid best (points)", "compute ÷ grid",
         f"seeds meeting the goal (≤ {GOAL_LOSS:g}, ≥ −{GOAL_POINTS:g} pt, ≤ 1/3)",
         "rate differs from loss's", "survivors same by accuracy"], rows,
        note="Compute = (candidate + sweep iterations) ÷ (grid size × budget)."))

    for s in seeds:
        rows = []
        for r in s["grid"]:
            marks = []
            if _same_lr(r["lr"], s["best_loss"]["lr"]):
                marks.append("best loss")
            if _same_lr(r["lr"], s["best_accuracy"]["lr"]):
                marks.append("best accuracy")
            if _same_lr(r["lr"], s["pick"]):
                marks.append("pick")
            rows.append([f"grid {r['lr']:.4g}" + (f" ← {', '.join(marks)}" if marks else ""), r["lr"],
                         r["holdout_loss"] / s["best_loss"]["holdout_loss"],
                         100 * ((r["holdout_accuracy"] or 0.0) - s["best_accuracy"]["holdout_accuracy"])
                         if r["holdout_accuracy"] is not None else None,
                         r["holdout_loss"], r["holdout_accuracy"], None])
        for key, name in present:
            for measure, how in MEASURES if key != "pick" else MEASURES[:1]:
                v = s["variants"][key][measure]
                rows.append([f"{name}{', ' + how if key != 'pick' else ''}", v["lr"], v["loss_ratio"],
                             v["points"], v.get("holdout_loss"), v.get("holdout_accuracy"), v["compute"]])
        edge = [m for m in ("best_loss", "best_accuracy") if s[m]["lr"] in (s["grid"][0]["lr"], s["grid"][-1]["lr"])]
        rng = s["variants"].get("range", {}).get("rungs")
        report.tables.append(Table(
            f"{label}, seed {s['seed']}: grid and recommendations (sweep {s['sweep_iterations']} iterations, "
            f"{s['stop_reason']}; pick {s['pick']:.4g}; loss falls from {s['fall_start']:.3g}, turns at "
            f"{s['turn']:.3g})",
            ["what", "rate", "held-out loss ÷ grid best", "accuracy − grid best (points)", "held-out loss",
             "held-out accuracy", "compute ÷ grid"], rows,
            note=("`inf` = diverged." + (" The grid's best is at its edge." if edge else "")
                  + (" Refine rungs: " + "; ".join(
                      f"to {g['end']}: " + ", ".join(f"{lr:.3g}" for lr in g["rates"])
                      for g in s["variants"]["refine"]["rungs"]) if "refine" in s["variants"] else "")
                  + (" Range alternative rungs: " + "; ".join(
                      f"to {g['end']}: " + ", ".join(f"{lr:.3g}" for lr in g["rates"]) for g in rng) if rng else "")),
        ))


def _report_optimizer(report: Report, raw: dict) -> None:
    """Issue 18 §4: the rates answered with the user's optimizer against plain SGD's, same data, network, seed."""
    rows = []
    for label, data in raw.items():
        for s in data.get("seeds", []):
            p = s.get("plain") or (_plain_from_case(raw, label, s) if data.get("optimizer_params") else None)
            if p is None:
                continue
            rows.append([f"{label}, seed {s['seed']}", p["pick"], p["plain_pick"], p["pick_ratio"],
                         p.get("recommended"), p.get("plain_recommended"), p.get("recommended_ratio"),
                         f"{p['sweep_iterations']} / {p['plain_sweep_iterations']}"])
        plains = [s.get("plain") or (_plain_from_case(raw, label, s) if data.get("optimizer_params") else None)
                  for s in data.get("seeds", [])]
        ratios = [p["recommended_ratio"] for p in plains if p and "recommended_ratio" in p]
        picks = [p["pick_ratio"] for p in plains if p]
        if picks:
            report.figures.append(figure(f"{label}: the sweep's pick ÷ plain SGD's pick", picks, note="informational"))
        if ratios:
            report.figures.append(figure(f"{label}: the recommended rate ÷ plain SGD's recommended rate", ratios,
                                         note="informational"))
    if rows:
        report.tables.append(Table(
            "The user's optimizer against plain SGD: the rates the flow answers for each, same data, network and seed",
            ["case", "pick", "plain SGD's pick", "pick ÷ plain", "recommended", "plain SGD's recommended",
             "recommended ÷ plain", "sweep iterations (this / plain)"], rows,
            note="With momentum m, SGD's steps are about 1/(1−m) times larger at the same rate (10 × for m = 0.9): "
                 "a ratio near 0.1 is the answer moving as it should. Where a case has no plain-SGD run of its own "
                 "(CIFAR-10's full case), plain SGD's rates are those of the plain case of the same data, network "
                 "and seed in this report."))


def _plain_from_case(raw: dict, label: str, seed: dict) -> dict | None:
    """Plain SGD's rates for a momentum case's seed from the plain case of the same data and network."""
    base = raw.get(label.split(f", {MOMENTUM_LABEL}")[0], {})
    other = next((s for s in base.get("seeds", []) if s["seed"] == seed["seed"] and "variants" in s), None)
    if other is None or "variants" not in seed:
        return None
    this_rec, plain_rec = seed["variants"]["reference"]["loss"]["lr"], other["variants"]["reference"]["loss"]["lr"]
    return {"pick": seed["pick"], "plain_pick": other["pick"], "pick_ratio": seed["pick"] / other["pick"],
            "sweep_iterations": seed["sweep_iterations"], "plain_sweep_iterations": other["sweep_iterations"],
            "recommended": this_rec, "plain_recommended": plain_rec, "recommended_ratio": this_rec / plain_rec}


NEAR = 1.1  # rates closer than this factor: "the same rate" for a held-out measure's noise


def _near_pairs(seed: dict, iterations: int) -> list[tuple[float, float, float, int]]:
    """Pairs of full-budget trainings of one seed at rates less than NEAR apart (grid rows and every
    plan's finalists): (rate, rate, larger held-out loss / smaller, seed)."""
    rows = {r["lr"]: r for r in seed["grid"]}
    for v in seed["variants"].values():
        rows.update((r["lr"], r) for r in v.get("candidates", []) if r["iterations"] == iterations)
    done = sorted((lr, r["holdout_loss"]) for lr, r in rows.items() if math.isfinite(r["holdout_loss"]))
    return [(a, b, max(la, lb) / min(la, lb), seed["seed"]) for i, (a, la) in enumerate(done)
            for b, lb in done[i + 1:] if b / a < NEAR]


def _same_lr(a, b) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)


def _recommend(report: Report, raw: dict, tally: dict) -> None:
    """Which plan each data set favours, and which measure.

    Each data set is judged apart: five digits seeds must not outvote the one CIFAR-10 run, whose
    held-out split is 7x larger and whose network is the kind users train. Within a data set a plan
    is ranked by the seeds on which its recommendation is within the goal's quality (loss and
    accuracy: the compute part depends on the grid's size, not on the plan), then by its median
    loss ratio, then by its median accuracy gap.
    """
    if not tally:
        return
    plans = [k for k in ("reference", "refine") if (k, "loss") in tally]
    favoured, lines = {}, []
    for label, data in raw.items():
        if data.get("optimizer_params"):  # the plan is chosen on the reference optimizer's cases
            continue
        seeds = [s for s in data.get("seeds", []) if all(k in s["variants"] for k in plans)]
        if not seeds:
            continue
        ranks = {}
        for k in plans:
            vs = [s["variants"][k]["loss"] for s in seeds]
            good = sum(1 for v in vs if v["loss_ratio"] <= GOAL_LOSS and v["points"] is not None
                       and v["points"] >= -GOAL_POINTS)
            ranks[k] = (-good, statistics.median(v["loss_ratio"] for v in vs),
                        -statistics.median(v["points"] if v["points"] is not None else -math.inf for v in vs))
            lines.append(f"{label}, `{k}`: within the goal's loss and accuracy on {good} of {len(seeds)} seed(s), "
                         f"median loss ratio {ranks[k][1]:.3f}, median accuracy gap {-ranks[k][2]:+.2f} points")
        favoured[label] = min(plans, key=ranks.get)
    measure = max(("loss", "accuracy"), key=lambda m: (sum(sum(tally.get((k, m), [])) for k in plans), m == "loss"))
    agreed = set(favoured.values())
    plan = agreed.pop() if len(agreed) == 1 else None
    report.raw["recommendation"] = {"plan": plan, "by_data_set": favoured, "measure": measure}
    verdict = (f"every data set favours `{plan}`" if plan else "the data sets disagree: " + "; ".join(
        f"{label} favours `{k}`" for label, k in favoured.items()) + " (docs/answer.md weighs them)")
    report.notes.insert(0, f"Which plan: {verdict}; held-out {measure} deciding. " + "; ".join(lines) + ".")


def _median_ratio(raw: dict, key: str, measure: str) -> float:
    values = [s["variants"][key][measure]["loss_ratio"] for d in raw.values() if "seeds" in d
              for s in d["seeds"] if key in s["variants"]]
    return statistics.median(values) if values else math.inf


RUN_FIELDS = ("seconds", "date", "command", "machine", "load")


def rebuild(out: Path, merge: tuple[Path, ...] = ()) -> None:
    """Rewrite answer.json/.md in ``out`` from the raw results already in it (no training).

    ``merge``: other answer.json files (runs of other cases, e.g. with
    ``LRF_BENCH_ANSWER_CASES=cifar10``); their cases join the report, a case of the same
    name replacing the old one. Each case keeps the date, duration, command and commit of
    the run that measured it (``raw[case]["run"]``); the report's header is the latest run's,
    its duration the sum.
    """
    import json

    from benchmarks._common import write_report
    from benchmarks.regret import _floats

    files = [out / f"{NAME}.json", *merge]
    runs = [json.loads(Path(f).read_text(encoding="utf-8")) for f in files]
    raw: dict = {}
    for old in runs:
        for label, data in _floats(old["raw"]).items():
            if "seeds" in data:
                data.setdefault("run", {k: old[k] for k in RUN_FIELDS})
                raw[label] = data
    report = build_report(runs[0]["quick"], raw)
    cases = [d["run"] for d in raw.values()]
    latest = max(cases, key=lambda r: r["date"])
    for key in ("date", "command", "machine", "load"):
        setattr(report, key, latest[key])
    report.seconds = sum(dict((r["date"], r["seconds"]) for r in cases).values())  # each run once
    report.notes.append("This summary was rebuilt from the runs' raw results (`python -m benchmarks.answer "
                        "--rebuild" + (" --merge FILE" if merge else "") + "`): same trainings, same numbers.")
    write_report(report, out)
    print(report.markdown(level=2))


if __name__ == "__main__":
    import sys

    if "--rebuild" in sys.argv:
        from benchmarks._common import QUICK_RESULTS, RESULTS

        merged = tuple(Path(sys.argv[i + 1]) for i, arg in enumerate(sys.argv[:-1]) if arg == "--merge")
        rebuild(QUICK_RESULTS if "--quick" in sys.argv else RESULTS, merged)
    else:
        module_main(NAME, run)
