"""The two engines side by side: MXNet Gluon (the reference, ``engine="mxnet"``) and PyTorch (``engine="torch"``).

The offline default for both: small-cnn on digits, batch 128, seed 42, ``loader_workers=0``,
plain SGD, the default :class:`lrf.config.SweepConfig` and the default
:class:`lrf.config.CandidatePlan` (the reference rule's pick x 1, 10, 0.1, 500 iterations each);
then the same with ``optimizer="adam"``. Per case and engine:

1. the checked run as ``lrf find --check`` does it: :func:`lrf.run.run` over
   :class:`lrf.jobs.JobStages` with jobs in this process (:class:`lrf.cluster.InProcess`), in a
   new work cache; each stage timed (the engine's imports apart, as a worker's warm-up): the
   pick, the candidates (final loss, mean of the last 20, held-out loss and accuracy, seconds),
   the recommended rate and the measure that decided;
2. the sweep as ``lrf find`` runs it (the engine's ``open_learner`` from the run's initial
   parameters, :func:`lrf.sweep.find` timed alone), R rounds interleaved over the engines
   (:func:`benchmarks._common.interleaved`): each round a fresh process per engine that sweeps
   S times, the first sweep being what ``lrf find`` pays, the later ones warm. Seconds per
   iteration torch / mxnet, per round. For SGD also torch with ``OMP_NUM_THREADS=1``: torch's
   OpenMP threads on a shared machine (see the report's notes).

Every piece of work runs in a child process of its own (``python -m benchmarks.engines --child
SPEC``): importing MXNet sets the process's OpenMP thread count to 1 (the two share
``libgomp``), so torch in a process that has imported MXNet trains on one thread. A user's
``lrf find --engine torch`` never imports MXNet.

Both engines draw the same batches from one seed (:func:`lrf.sampler.seeded_batches`), but
initialise differently (MXNet: Xavier; torch: each module's ``reset_parameters``), so equal
answers are not expected: the report says how far apart they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import (REPO, Report, Table, command, figure, in_process_stages, interleaved, log, module_main,
                                ratios)
from lrf import _io
from lrf.config import DEFAULT_DATA, REFERENCE_MULTIPLIERS, CandidatePlan, Setup, SweepConfig

NAME = "engines"
ENGINES = ("mxnet", "torch")  # the reference first
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
CHILD_TIMEOUT = 3600  # seconds; a child is killed after this


def cases(quick: bool) -> list[dict]:
    iterations = 60 if quick else CandidatePlan.iterations
    rounds = 2 if quick else 3
    sgd = dict(key="sgd", label="plain SGD", optimizer=Setup.optimizer, iterations=iterations, rounds=rounds,
               sweeps=2, one_thread=True)
    adam = dict(key="adam", label="Adam", optimizer="adam", iterations=iterations, rounds=2, sweeps=2,
                one_thread=False)
    return [sgd, adam]


def setup_for(engine: str, case: dict) -> Setup:
    """The offline default (digits, small-cnn, batch 128, seed 42) with no loader workers."""
    return Setup(data=DEFAULT_DATA, engine=engine, loader_workers=0, optimizer=case["optimizer"])


# --- the child: one piece of work in a fresh process ------------------------------------------


def _digest(losses) -> str:
    """The sweep's curve, as a short digest (two sweeps of the same curve agree bit for bit)."""
    return hashlib.sha256(json.dumps([float(x) for x in losses]).encode()).hexdigest()[:16]


def _threads(engine: str) -> str:
    if engine == "torch":
        import torch

        return f"torch.get_num_threads() = {torch.get_num_threads()}"
    return f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "MXNet's default"


class _TimedStages:
    """A run's stages (:class:`lrf.run.Stages`), each call timed; the work is the stages' own."""

    def __init__(self, stages):
        self.stages, self.seconds = stages, {"initialise": 0.0, "sweep": 0.0, "select": 0.0, "train": 0.0}

    def _timed(self, name: str, *args):
        started = time.perf_counter()
        try:
            return getattr(self.stages, name)(*args)
        finally:
            self.seconds[name] += time.perf_counter() - started

    def initialise(self):
        return self._timed("initialise")

    def sweep(self, init_params, count):
        return self._timed("sweep", init_params, count)

    def select(self, results):
        return self._timed("select", results)

    def train(self, init_params, trainings):
        return self._timed("train", init_params, trainings)


def checked_run(spec: dict) -> dict:
    """``lrf find --check``'s run (:func:`lrf.run.run` over jobs in this process), timed by stage."""
    from lrf.candidates import final_loss_table
    from lrf.engine import engine_for
    from lrf.report import latest_results
    from lrf.run import run

    setup = Setup(**spec["setup"])
    plan = CandidatePlan(iterations=spec["iterations"])
    started = time.perf_counter()
    engine_for(setup.engine).warm_up()  # the framework's imports, apart (a worker's warm-up)
    imports = time.perf_counter() - started
    before = set(sys.modules)
    timed = _TimedStages(in_process_stages(setup, plan, Path(spec["folder"])))
    started = time.perf_counter()
    outcome = run(timed, plan)
    wall = time.perf_counter() - started
    later = set(sys.modules) - before  # imported by the jobs themselves, after the engine's warm-up
    [sweep] = outcome.sweeps
    candidates = latest_results(outcome.rungs)
    seconds = {c.lr: c.seconds for c in candidates}
    rows = final_loss_table(outcome.selection, candidates, outcome.recommendation)
    for row in rows:
        row["seconds"] = seconds[row["lr"]]
    return {
        "engine": setup.engine, "threads": _threads(setup.engine), "imports": imports, "wall": wall,
        "stages": timed.seconds, "init_params": outcome.init_params,
        "imported_in_run": sorted(m for m in later if ("." not in m and not m.startswith("_")) or m == "torch._dynamo"),
        "sweep": {"iterations": len(sweep), "stop_reason": sweep.stop_reason.value, "last_lr": sweep.lrs[-1],
                  "curve": _digest(sweep.losses)},
        "selection": outcome.selection.to_dict(), "recommendation": outcome.recommendation.to_dict(),
        "no_bytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"), "rows": rows,
        "candidate_iterations": sum(len(c.losses) for c in candidates),
        "candidate_seconds": sum(c.seconds for c in candidates),
    }


def timed_sweeps(spec: dict) -> dict:
    """``spec["count"]`` sweeps as ``lrf find`` runs one: a learner from the run's initial
    parameters, :func:`lrf.sweep.find` timed alone (as the CLI times it)."""
    import lrf
    from lrf.engine import engine_for, prepare_setup

    setup, _ = prepare_setup(Setup(**spec["setup"]))
    engine = engine_for(setup.engine)
    engine.warm_up()
    config = SweepConfig()
    out = []
    for _ in range(spec["count"]):
        with engine.open_learner(setup, spec["init_params"]) as learner:
            started = time.perf_counter()
            result = lrf.find(learner, config)
            seconds = time.perf_counter() - started
        out.append({"seconds": seconds, "iterations": len(result), "stop_reason": result.stop_reason.value,
                    "pick": lrf.suggest(result, CandidatePlan.rule).lr, "curve": _digest(result.losses)})
    return {"engine": setup.engine, "threads": _threads(setup.engine), "sweeps": out}


def child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out = checked_run(spec) if spec["do"] == "run" else timed_sweeps(spec)
    _io.write_text(spec["result"], _io.to_json(out))
    return 0


def in_child(spec: dict, folder: Path, env: dict | None = None) -> dict:
    """Run ``spec`` in a fresh ``python -m benchmarks.engines --child`` process; its result."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{spec['do']}-{time.monotonic_ns()}"
    spec = {**spec, "result": str(folder / f"{stem}.result.json")}
    path = folder / f"{stem}.spec.json"
    _io.write_text(path, _io.to_json(spec))
    done = subprocess.run([sys.executable, "-m", "benchmarks.engines", "--child", str(path)], cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.engines child ({spec['do']}, engine {spec['setup']['engine']}) "
                           f"failed with exit status {done.returncode}")
    return json.loads(Path(spec["result"]).read_text(encoding="utf-8"))


# --- the parent: the cases, interleaved -------------------------------------------------------


def one_case(case: dict, number: int, folder: Path) -> dict:
    order = ENGINES if number % 2 == 0 else ENGINES[::-1]  # the reference first, then the other first
    runs = {}
    for engine in order:
        log(f"{case['label']}: engine={engine}, the checked run ({case['iterations']} iterations per candidate)")
        runs[engine] = in_child({"do": "run", "setup": setup_for(engine, case).to_dict(),
                                 "iterations": case["iterations"], "folder": str(folder / engine / "cache")},
                                folder / engine)
    variants = {engine: (engine, {}) for engine in ENGINES}
    if case["one_thread"]:
        variants["torch, OMP_NUM_THREADS=1"] = ("torch", ONE_THREAD)
    found: dict[str, list[dict]] = {name: [] for name in variants}

    def variant(name: str):
        engine, env = variants[name]

        def go() -> float:
            done = in_child({"do": "sweeps", "setup": setup_for(engine, case).to_dict(), "count": case["sweeps"],
                             "init_params": runs[engine]["init_params"]}, folder / engine, env)
            found[name].append(done)
            return done["sweeps"][0]["seconds"]

        return go

    log(f"{case['label']}: {case['rounds']} rounds of {case['sweeps']} sweeps in a fresh process, "
        f"interleaved: {', '.join(variants)}")
    interleaved({name: variant(name) for name in variants}, case["rounds"])
    return {"label": case["label"], "optimizer": case["optimizer"], "iterations": case["iterations"],
            "rounds": case["rounds"], "sweeps_per_round": case["sweeps"], "order": list(order), "runs": runs,
            "timed_sweeps": found}


def run(quick: bool) -> Report:
    from lrf.pytorch.engine import check_installed

    try:  # before any work, and before a result file is replaced
        check_installed()
    except ValueError as error:
        raise SystemExit(f"benchmarks.engines needs lrf's extra 'torch': `{command(quick, NAME)}` ({error})") from None
    raw = {"cases": {}}
    with tempfile.TemporaryDirectory(prefix="lrf-bench-engines-") as tmp:
        for number, case in enumerate(cases(quick)):
            raw["cases"][case["key"]] = one_case(case, number, Path(tmp) / case["key"])
    return build_report(quick, raw)


# --- the report ---------------------------------------------------------------------------------


def _num(value) -> float:
    """A number read back from strict JSON (non-finite ones are strings there)."""
    return float(value) if value is not None else math.nan


def _rate(lr) -> str:
    return "none" if lr is None else f"{_num(lr):.4g}"


HEAVY = ("torch._dynamo", "sympy", "triton", "sklearn", "scipy", "pandas")  # named first: the costly imports


def _packages(names) -> str:
    """The packages a run imported after the warm-up: the costly ones by name, the rest counted."""
    if names is None:
        return "?"
    if not names:
        return "none"
    heavy = [n for n in HEAVY if n in names]
    rest = len(names) - len(heavy)
    return ", ".join(heavy) + (f"{' and ' if heavy else ''}{rest} other{'s' if rest != 1 else ''}" if rest else "")


def _per_iteration(sweep: dict) -> float:
    return sweep["seconds"] / sweep["iterations"]


def _later(found: dict) -> float | None:
    """A round's warm seconds per iteration: the median over its sweeps after the first."""
    later = [_per_iteration(s) for s in found["sweeps"][1:]]
    return statistics.median(later) if later else None


def _apart(a: float | None, b: float | None) -> str:
    """How far two recommended rates are apart, in words."""
    if a is None or b is None:
        return "one of them recommends no rate"
    if math.isclose(a, b, rel_tol=1e-9):
        return "the same rate"
    return f"torch's is {b / a:.3g} × MXNet's ({abs(math.log10(b / a)):.2f} decade apart)"


def build_report(quick: bool, raw: dict) -> Report:
    from lrf.candidates import MEASURE_LABELS
    from lrf.datasets import DIGITS_NUM_HOLDOUT, DIGITS_NUM_TRAIN

    report = Report(
        NAME, "The two engines side by side", quick,
        "MXNet Gluon (`engine=\"mxnet\"`, the reference) and PyTorch (`engine=\"torch\"`) on the offline default "
        "(small-cnn, digits, batch 128, seed 42, `loader_workers=0`, the default sweep and candidate plan), with "
        "plain SGD and with Adam: the sweep as `lrf find` runs it (seconds per iteration torch / mxnet, rounds "
        "interleaved, a fresh process per engine and round) and the whole checked run as `lrf find --check` does "
        "it (`lrf.run.run` over jobs in this process): the pick, the candidates, the recommended rate. Same batch "
        "order (`lrf.sampler.seeded_batches`), different initialisation (MXNet: Xavier; torch: each module's "
        "`reset_parameters`): equal answers are not expected.",
    )
    report.raw = raw
    any_case = next(iter(raw["cases"].values()))
    report.sizes = {
        "data": f"digits ({DIGITS_NUM_TRAIN} training, {DIGITS_NUM_HOLDOUT} held-out images)",
        "candidates": f"{len(REFERENCE_MULTIPLIERS)} (pick × 1, 10, 0.1), {any_case['iterations']} iterations each",
        "sweep rounds": "; ".join(f"{c['label']}: {c['rounds']} × {c['sweeps_per_round']} sweeps per engine"
                                  for c in raw["cases"].values()),
    }
    summaries = []
    for key, case in raw["cases"].items():
        label, runs, found = case["label"], case["runs"], case["timed_sweeps"]
        mx, th = runs["mxnet"], runs["torch"]

        # the sweep, as lrf find runs it
        first = {name: [_per_iteration(r["sweeps"][0]) for r in rounds] for name, rounds in found.items()}
        later = {name: [v for v in (_later(r) for r in rounds) if v is not None] for name, rounds in found.items()}
        report.figures.append(figure(
            f"{label}: sweep seconds per iteration, torch / mxnet, first sweep of a fresh process (as `lrf find`)",
            ratios(first["torch"], first["mxnet"])))
        if all(later[name] for name in ENGINES):
            report.figures.append(figure(f"{label}: the same, later sweeps in that process (warm)",
                                         ratios(later["torch"], later["mxnet"])))
        for name in found:
            if name not in ENGINES:
                report.figures.append(figure(f"{label}: sweep seconds per iteration, {name} / mxnet, first sweep",
                                             ratios(first[name], first["mxnet"])))
        rows = []
        for name, rounds in found.items():
            engine = name.split(",")[0]
            sweeps = [s for r in rounds for s in r["sweeps"]]
            same = all(s["curve"] == runs[engine]["sweep"]["curve"] for s in sweeps)
            rows.append([name, rounds[0]["threads"], sweeps[0]["iterations"], sweeps[0]["stop_reason"],
                         _rate(sweeps[0]["pick"]),
                         statistics.median(r["sweeps"][0]["seconds"] for r in rounds),
                         statistics.median(first[name]) * 1000,
                         statistics.median(later[name]) * 1000 if later[name] else None,
                         statistics.median(ratios(first[name], first["mxnet"])), same])
        report.tables.append(Table(
            f"{label}: the sweep (default SweepConfig) from the run's initial parameters, as `lrf find` runs it",
            ["variant", "threads", "iterations", "stop", "rule's pick", "first sweep s", "first ms/it",
             "later ms/it", "first s/it ÷ mxnet's", "same curve as the run's sweep"], rows,
            f"Median over {case['rounds']} rounds (the variants take turns, the order rotating); each round a fresh "
            f"process per variant sweeping {case['sweeps_per_round']} times. \"Same curve\": every timed sweep's "
            "losses equal, bit for bit, those of the checked run's own sweep (the same initial parameters, the "
            "same batches; with another thread count the floating-point sums run in another order, so not bit "
            "for bit)."))

        # where the checked run's time went
        stage_rows, per_iteration = [], {}
        for engine in ENGINES:
            r = runs[engine]
            per_iteration[engine] = r["candidate_seconds"] / r["candidate_iterations"]
            stage_rows.append([engine, r["threads"], r["imports"], r["stages"]["initialise"], r["stages"]["sweep"],
                               r["sweep"]["iterations"], r["stages"]["train"], r["candidate_iterations"],
                               per_iteration[engine] * 1000, r["wall"], _packages(r.get("imported_in_run"))])
        report.tables.append(Table(
            f"{label}: where the checked run's time went (`lrf.run.run`, jobs in this process; one run per engine)",
            ["engine", "threads", "imports s", "initialise s", "sweep job s", "sweep it.", "candidates s",
             "candidate it.", "candidate ms/it", "run s (no warm-up)", "first imported during the run"], stage_rows,
            "Imports: the engine's warm-up (`warm_up()`, what a Dask worker runs before its first job) before the "
            "run; in `lrf find --check` they fall in its first job. What the jobs still import on first use (last "
            "column: top-level packages) falls in the stage that first needs it. "
            "The sweep job and each candidate job open their own learner (data, network, parameters); a "
            "candidate's seconds (its own clock) include that and the held-out evaluation. "
            f"Order this case: {' then '.join(case['order'])}."))
        pairs = []
        for m in REFERENCE_MULTIPLIERS:
            rows_at = [next((row for row in runs[e]["rows"] if row["multiplier"] is not None
                             and math.isclose(_num(row["multiplier"]), m, rel_tol=1e-6)), None) for e in ENGINES]
            if all(rows_at):
                pairs.append((rows_at[1]["seconds"] / rows_at[1]["iterations"])
                             / (rows_at[0]["seconds"] / rows_at[0]["iterations"]))
        if pairs:
            report.figures.append(figure(
                f"{label}: a candidate's seconds per iteration, torch / mxnet (the checked run's, paired by × pick)",
                pairs))
        report.figures.append(figure(f"{label}: the checked run's seconds (imports apart), torch / mxnet",
                                     th["wall"] / mx["wall"]))

        # the answers, one table per engine
        for engine in ENGINES:
            r = runs[engine]
            sel, rec = r["selection"], r["recommendation"]
            table_rows = []
            for row in r["rows"]:
                marks = ", ".join(m for m, on in (("**recommended**", row["recommended"]),
                                                  ("rule's pick", row["pick"])) if on)
                acc = row["holdout_accuracy"]
                table_rows.append([row["rank"], _rate(row["lr"]),
                                   f"{_num(row['multiplier']):.3g}" if row["multiplier"] is not None else "—",
                                   row["iterations"], _num(row["final_loss"]), _num(row["mean_last_k"]),
                                   _num(row["holdout_loss"]) if row["holdout_loss"] is not None else None,
                                   f"{100 * _num(acc):.2f} %" if acc is not None else None, row["seconds"], marks])
            measure = MEASURE_LABELS.get(rec["measure"], str(rec["measure"]))
            report.tables.append(Table(
                f"{label}, engine={engine}: the checked run (`lrf find --check`)",
                ["rank", "lr", "× pick", "iterations", "final loss",
                 f"mean last {CandidatePlan(iterations=case['iterations']).last_k}",
                 "held-out loss", "held-out accuracy", "seconds", ""], table_rows,
                f"Sweep: {r['sweep']['iterations']} iterations, stopped: {r['sweep']['stop_reason']}. "
                f"Rule `{sel['rule']}` picked {_rate(sel['pick']['lr'])}; candidates "
                f"{', '.join(_rate(x) for x in sel['candidates'])}. Recommended: {_rate(rec['lr'])}, decided by "
                f"{measure} ({_num(rec['value']):.4f}){', tie broken to the lower rate' if rec['tie_broken'] else ''}. "
                f"Evidence: {rec['evidence']}."))
        a, b = mx["recommendation"]["lr"], th["recommendation"]["lr"]
        pa, pb = mx["selection"]["pick"]["lr"], th["selection"]["pick"]["lr"]
        line = (f"**{label}: both engines recommend {_rate(a)}**" if a is not None and b is not None
                and math.isclose(a, b, rel_tol=1e-9) else
                f"**{label}: MXNet recommends {_rate(a)}, torch {_rate(b)}**: {_apart(a, b)}")
        which = lambda r: next((row["multiplier"] for row in r["rows"] if row["recommended"]), None)  # noqa: E731
        steps = math.log(pb / pa) / math.log(SweepConfig.lr_multiplier) if pa and pb else math.nan
        line += (f"; picks {_rate(pa)} (MXNet) and {_rate(pb)} (torch), {pb / pa:.3g} × ({steps:.3g} steps of the "
                 f"sweep's × {SweepConfig.lr_multiplier:g} schedule); each engine recommends "
                 f"its pick × {_num(which(mx)):.3g} (MXNet) and × {_num(which(th)):.3g} (torch)"
                 if pa and pb and which(mx) is not None and which(th) is not None else "")
        line += "."
        report.tables[-1].note += "\n\n" + line
        summaries.append(line)
        if a is not None and b is not None:
            report.figures.append(figure(f"{label}: recommended rate, torch / mxnet", b / a))
        if pa and pb:
            report.figures.append(figure(f"{label}: the rule's pick, torch / mxnet", pb / pa))
    report.notes += summaries
    report.notes += [
        "Equal answers are not expected: both engines draw the same batches from one seed "
        "(`lrf.sampler.seeded_batches`: the same indices, in the same order), but their initial weights differ "
        "(MXNet: Xavier; torch: each module's `reset_parameters`, Kaiming-uniform), so the curves, picks and "
        "candidates differ. What should agree is the kind of answer (the order of magnitude, which multiple wins), "
        "not the digits.",
        "Why a child process per piece of work: importing MXNet sets the process's OpenMP thread count to 1 (MXNet "
        "and torch share `libgomp.so.1`; `torch.get_num_threads()` goes from 2 to 1 on `import mxnet`), so torch in "
        "a process that imported MXNet would train on one thread. `lrf find --engine torch` never imports MXNet.",
        "torch's own OpenMP threads (one per core: 2 here) are what the `OMP_NUM_THREADS=1` row is about: on this "
        "2-core machine shared with other work, a 2-thread torch iteration waits for whichever of its threads the "
        "other processes delay, and its time grows many-fold with the load; one thread does not wait. MXNet's "
        "iteration (its own engine threads) barely moves with the load. The load average of the run is in the "
        "header: compare rounds only within it.",
    ]
    if any(r.get("no_bytecode") for c in raw["cases"].values() for r in c["runs"].values()):
        report.notes.append(
            "This run had `PYTHONDONTWRITEBYTECODE` set (and no compiled bytecode in the environment): every fresh "
            "process compiles the sources it imports, so the imports, and the torch jobs' first use of what "
            "`warm_up()` leaves out (`torch._dynamo`, imported by the first `torch.optim` optimizer; scikit-learn, "
            "by the first digits load), cost more than where bytecode is cached. The timed sweeps' seconds do not "
            "include them (their learner is opened before the clock starts), nor do the candidates' (the run's "
            "earlier jobs imported them already).")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2]))
    module_main(NAME, run)
