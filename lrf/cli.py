"""``lrf find``: one learning-rate range test from the terminal, and with ``--check`` the run.

Writes ``sweep.csv``, ``sweep.png`` and ``summary.json`` (last, so a folder with a
summary is complete) into the output folder and prints the suggestion. With
``--check`` it does what the flow does, without Prefect (:func:`lrf.run.run` over
jobs in this process): initialise, sweep, train the candidates, recommend, and
writes the flow's artifacts (the same ``summary.json``); finished work is kept in
and reused from the work cache the flow uses (``--cache``). Usage
errors exit with status 2 and name the option. The output folder is claimed
before the sweep (:func:`lrf.runs.claim_output`): a run that could not write its
results, or whose folder another run has, does no work.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from lrf import _io
from lrf._validate import parameter_of
from lrf.config import (DATA_FORMS, DEFAULT_DATA, PLANS, SCHEDULES, CandidatePlan, Setup, SweepConfig, criterion_names, engine_names,
                        parse_key_values, rule_names)
from lrf.rules import cyclical_range, suggest
from lrf.report import SUMMARY_FORMAT
from lrf.runs import CACHE_DIR, CLAIM_FILE, DEFAULT_OUTPUT_ROOT, check_can_create, claim_output, run_folder_name



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrf", description="Leslie Smith's learning-rate range test on MXNet Gluon.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    find = commands.add_parser(
        "find",
        help="run one range test and suggest a learning rate",
        description="Train one batch per rate while the rate grows geometrically, stop when the loss "
        "diverges, restore the model, write the curve, its plot and a summary, print the suggestion. "
        "Defaults are the reference's (SPEC.md).",
        formatter_class=_DefaultsShown,
    )
    data = find.add_argument_group("data, model, device")
    data.add_argument("--data", default=Setup.data, help=f"{DATA_FORMS} (default: {DEFAULT_DATA}): digits is offline (ships with "
                      "scikit-learn), cifar10 downloads, rec is an indexed RecordIO file, folder has one "
                      "sub-folder per class")
    data.add_argument("--model", default=Setup.model, help="small-cnn or a Gluon model-zoo name, e.g. resnet18_v2 "
                      "(default: small-cnn for digits, resnet18_v2 otherwise)")
    data.add_argument("--device", default=Setup.device, help="cpu, gpu or gpu:N")
    data.add_argument("--batch-size", type=int, default=Setup.batch_size, help="samples per iteration")
    data.add_argument("--seed", type=int, default=Setup.seed, help="seeds the initial weights and the batch order")
    data.add_argument("--loader-workers", type=int, default=Setup.loader_workers,
                      help="data loader processes (default: one per CPU core)")
    data.add_argument("--engine", default=Setup.engine, choices=engine_names(), help="the training framework")
    data.add_argument("--optimizer", default=Setup.optimizer, help="the optimizer, by its name in the engine's "
                      "registry (sgd, nag, adam, rmsprop, ...)")
    data.add_argument("--optimizer-params", nargs="+", default=Setup.optimizer_params, metavar="KEY=VALUE",
                      help="its arguments other than the learning rate, e.g. momentum=0.9 wd=5e-4")
    data.add_argument("--recipe", default=Setup.recipe, metavar="PACKAGE.MODULE:NAME",
                      help="your own network, loss and data: a factory returning an lrf.recipe.Recipe "
                      "(instead of --data and --model)")
    data.add_argument("--init-params", default=None, help="start from these saved parameters instead of a fresh init")
    sweep = find.add_argument_group("sweep")
    sweep.add_argument("--lr-start", type=float, default=SweepConfig.lr_start, help="rate of the first iteration")
    sweep.add_argument("--lr-multiplier", type=float, default=SweepConfig.lr_multiplier,
                       help="factor between iterations")
    sweep.add_argument("--lr-end", type=float, default=SweepConfig.lr_end,
                       help="sweep a range instead: --max-iter steps from --lr-start to --lr-end")
    sweep.add_argument("--schedule", default=SweepConfig.schedule, choices=SCHEDULES,
                       help="shape of a range sweep (linear needs --lr-end)")
    sweep.add_argument("--smoothing", type=float, default=SweepConfig.smoothing,
                       help="weight of the old running mean of the loss, in [0, 1)")
    sweep.add_argument("--min-iter", type=int, default=SweepConfig.min_iter, help="no divergence stop before this")
    sweep.add_argument("--max-iter", type=int, default=SweepConfig.max_iter, help="at most this many iterations")
    sweep.add_argument("--max-lr", type=float, default=SweepConfig.max_lr, help="never train above this rate")
    sweep.add_argument("--criterion", default=SweepConfig.criterion, choices=criterion_names(),
                       help="stopping criterion")
    check = find.add_argument_group("check the pick by training (as the flow does)")
    check.add_argument("--check", action="store_true",
                       help="train the candidates from the same initial weights and recommend the best")
    check.add_argument("--plan", default=CandidatePlan.plan, choices=PLANS,
                       help="reference: the pick, 10x and 0.1x; refine: successive halving around the pick")
    check.add_argument("--iterations", type=int, default=CandidatePlan.iterations,
                       help="training iterations per candidate")
    check.add_argument("--sweeps", type=int, default=CandidatePlan.sweeps,
                       help="range tests on different batch orders; the pick is their median")
    check.add_argument("--cache", type=Path, default=Path(DEFAULT_OUTPUT_ROOT) / CACHE_DIR,
                       help="work cache: finished work is reused from it (the flow's, by default)")
    output = find.add_argument_group("suggestion and output")
    output.add_argument("--rule", default=CandidatePlan.rule, choices=rule_names(), help="suggestion rule to report")
    output.add_argument("--out", type=Path, default=None,
                        help=f"output folder, must be new or empty (default: {DEFAULT_OUTPUT_ROOT}/find-TIMESTAMP)")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    history = commands.add_parser(
        "history",
        help="print the recommendations of the flow's runs so far, and plot their drift",
        description="Print the history of an output root (one row per completed flow run, newest last) "
        "and write its drift plot (the recommended rate and the pick over the runs) beside it.",
        formatter_class=_DefaultsShown,
    )
    history.add_argument("--output-root", type=Path, default=Path(DEFAULT_OUTPUT_ROOT),
                         help="the flow's output root")
    history.add_argument("--format", default="md", choices=("md", "csv"), help="how to print it")
    history.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    return parser


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none (None: the help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def main(argv: Sequence[str] | None = None) -> int:
    from lrf._signals import exit_on_sigterm, interrupt_on_sigint

    exit_on_sigterm()  # so a kill unwinds: model restored, workers stopped, no half files
    interrupt_on_sigint()  # and a Ctrl-C that lands in a destructor is not lost
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_history(parser, args) if args.command == "history" else run_find(parser, args)


def run_history(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Print the output root's history; write its drift plot there (atomically)."""
    from lrf import history

    root = args.output_root.expanduser()
    if root.exists() and not root.is_dir():
        parser.error(f"argument --output-root: output_root={str(args.output_root)!r} is not a folder")
    try:
        rows = history.read_history(root)
    except history.UnusableHistory as error:
        print(f"lrf history: {error}; the next run sets it aside and begins a new one", file=sys.stderr)
        return 1
    if not rows:
        print(f"lrf history: no completed flow run in {root} yet (its history is {root / history.HISTORY_FILE})",
              file=sys.stderr)
        return 1
    print(history.as_markdown(rows) if args.format == "md" else history.as_csv(rows), end="")
    from lrf.plot import plot_history

    try:
        plot_history(rows, path=root / history.DRIFT_PLOT)
    except OSError as error:  # a history to read where one cannot write: the table is what was asked
        print(f"lrf history: no drift plot written: {error}", file=sys.stderr)
    else:
        print(f"drift plot: {root / history.DRIFT_PLOT}", file=sys.stderr)
    return 0


def run_find(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    config, plan, setup, out = _validated(parser, args)
    try:  # the folder is this run's before the sweep: a run that cannot write its results does no work
        claim = claim_output(out)
    except ValueError as error:
        parser.exit(2, f"{parser.prog} find: error: argument --out: {error}\n")
    try:
        if args.check:
            code = _check_and_write(parser, args, config, plan, setup, out)
        else:
            code = _sweep_and_write(parser, args, config, setup, out)
    except BaseException:  # an error, a usage error found late, Ctrl-C, SIGTERM: leave nothing behind
        if (out / OUTPUTS[-1]).is_file():  # ... unless the results are whole (a print failed after)
            claim.complete()
        else:  # the folder was claimed empty: whatever is in it now, this run wrote
            claim.release(written=tuple(p.name for p in out.iterdir() if p.name != CLAIM_FILE))
        raise
    claim.complete()
    return code


OUTPUTS = ("sweep.csv", "sweep.png", "summary.json")  # summary.json last: a folder with it is complete


def _sweep_and_write(parser, args, config: SweepConfig, setup: Setup, out: Path) -> int:
    from lrf.engine import engine_for

    try:  # the framework is imported only now that the input is valid
        learner = engine_for(setup.engine).open_learner(setup, args.init_params)
    except (ValueError, TypeError) as error:  # e.g. a batch larger than the data, params of another model
        _usage_error(parser, args, error)
    from lrf.datacheck import DataError

    started = time.perf_counter()
    with learner, ProgressBar(config, enabled=not args.no_progress) as progress:
        from lrf.sweep import find

        try:
            result = find(learner, config, progress=progress)
        except DataError as error:  # bad data met in training (past the checked sample): named, no output
            _usage_error(parser, args, error)
    seconds = time.perf_counter() - started

    suggestions = {name: suggest(result, name) for name in rule_names()}
    chosen = suggestions[args.rule]
    result.save(out / "sweep.csv")
    from lrf.plot import plot_sweep

    plot_sweep(result, [chosen, *(s for name, s in suggestions.items() if name != args.rule)], path=out / "sweep.png")
    bounds = cyclical_range(result, args.rule)
    summary = {
        "format": SUMMARY_FORMAT,  # the run's summary (lrf.report), without the check's part
        "version": 1,
        "checked": False,
        "setup": {**setup.to_dict(), "init_params": args.init_params},
        "sweep": {"config": config.to_dict(), "iterations": len(result), "stop_reason": result.stop_reason.value,
                  "seconds": round(seconds, 3)},
        "rule": args.rule,
        "pick_lr": chosen.lr,
        "pick": chosen.to_dict(),
        "suggestions": {name: s.to_dict() for name, s in suggestions.items()},
        "cyclical_range": bounds.to_dict(),
        "files": {"sweep_csv": "sweep.csv", "sweep_plot": "sweep.png"},
    }
    _io.write_text(out / "summary.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")

    print(f"sweep: {len(result)} iterations in {seconds:.1f} s, stopped: {result.stop_reason.value}")
    for name, s in suggestions.items():
        mark = "*" if name == args.rule else " "
        rate = f"{s.lr:.3g}" if s.ok else "-"
        print(f" {mark} {name:<10} {rate:>10}  {s.reason}")
    if chosen.ok:
        print(f"suggested learning rate ({args.rule}): {chosen.lr:.3g}")
    else:
        print(f"no suggested learning rate ({args.rule}): {chosen.reason}")
    if bounds.base_lr is not None:
        print(f"cyclical range (Smith 2017): {bounds.base_lr:.3g} to {bounds.max_lr:.3g}")
    print(f"written: {out / 'sweep.csv'}, {out / 'sweep.png'}, {out / 'summary.json'}")
    return 0


def _check_and_write(parser, args, config: SweepConfig, plan: CandidatePlan, setup: Setup, out: Path) -> int:
    """The run of the flow, here: :func:`lrf.run.run` over jobs in this process; its artifacts in ``out``."""
    from lrf.cache import WorkCache
    from lrf.cluster import InProcess
    from lrf.datacheck import DataError
    from lrf.jobs import JobStages
    from lrf.recipe import RecipeError
    from lrf.report import write_report
    from lrf.run import run

    args.cache.mkdir(parents=True, exist_ok=True)
    say = (lambda line: None) if args.no_progress else (lambda line: print(line, file=sys.stderr, flush=True))
    stages = JobStages(setup, config, plan, WorkCache(args.cache), InProcess(str(setup.device_spec)),
                       init_params=args.init_params, report=say)
    started = time.perf_counter()
    try:
        outcome = run(stages, plan)
    except ValueError as error:  # e.g. parameters of another model: named, no output
        _usage_error(parser, args, error)
    except RuntimeError as error:
        if isinstance(error.__cause__, (DataError, RecipeError)):  # met where the jobs run: named, no output
            _usage_error(parser, args, error.__cause__)
        raise
    summary = write_report(out, setup={**setup.to_dict(), "init_params": args.init_params},
                           init_params=outcome.init_params, results=list(outcome.sweeps),
                           selection=outcome.selection, plan=plan, execution={"executor": InProcess.address},
                           rungs=[list(rung) for rung in outcome.rungs], reused=stages.reused)
    pick, recommendation = outcome.selection.pick, outcome.recommendation
    print(f"run: {summary['sweep']['iterations']} sweep iterations and {summary['compute']['candidate_iterations']} "
          f"candidate iterations in {time.perf_counter() - started:.1f} s"
          + (f", {len(stages.reused)} job(s) reused from {args.cache}" if stages.reused else ""))
    print(f"rule {plan.rule} picked: " + (f"{pick.lr:.3g}" if pick.ok else f"nothing ({pick.reason})"))
    if recommendation.lr is not None:
        print(f"recommended learning rate: {recommendation.lr:.4g}")
    else:
        print("no recommended learning rate")
    print(f"evidence: {recommendation.evidence}")
    print(f"written: {out} (summary.json, final_losses.md, sweep.png, candidates.png, ...)")
    return 0


def _validated(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Every check that needs no data loaded: all before anything runs or is written."""
    try:
        config = SweepConfig(
            lr_start=args.lr_start, lr_multiplier=args.lr_multiplier, lr_end=args.lr_end, schedule=args.schedule,
            smoothing=args.smoothing, min_iter=args.min_iter, criterion=args.criterion,
            max_iter=args.max_iter, max_lr=args.max_lr,
        )
        plan = CandidatePlan(rule=args.rule, plan=args.plan, iterations=args.iterations, sweeps=args.sweeps)
        from lrf.engine import engine_for, prepare_setup

        setup, _ = prepare_setup(Setup(data=args.data, model=args.model, device=args.device,
                                       batch_size=args.batch_size, seed=args.seed, loader_workers=args.loader_workers,
                                       engine=args.engine, optimizer=args.optimizer,
                                       optimizer_params=parse_key_values("optimizer_params",
                                                                         args.optimizer_params or []) or None,
                                       recipe=args.recipe))
        engine_for(setup.engine).check_init_params(args.init_params)
    except (ValueError, TypeError) as error:
        _usage_error(parser, args, error)
    out = args.out or Path(DEFAULT_OUTPUT_ROOT) / run_folder_name("find")
    try:  # claimed (created) by run_find once everything else is known to be valid
        check_can_create(out, "out")
        if args.check:
            check_can_create(args.cache, "cache")
    except ValueError as error:
        parser.error(f"argument --{str(error).partition('=')[0]}: {error}")
    return config, plan, setup, out


def _usage_error(parser: argparse.ArgumentParser, args: argparse.Namespace, error: Exception):
    """Exit 2 with the message, led by the option (one of ``args``) that the failing parameter came from."""
    name = parameter_of(error, vars(args))
    parser.exit(2, f"{parser.prog} find: error: argument --{(name or 'data').replace('_', '-')}: {error}\n")


class ProgressBar:
    """A tqdm bar on stderr fed by the sweep's progress callback (iteration, lr, smoothed loss).
    Public: the benchmarks measure the sweep with it, as the CLI runs it."""

    def __init__(self, config: SweepConfig, enabled: bool):
        self.enabled = enabled
        self.total = config.expected_iterations()

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, desc="lr sweep", unit="it", file=sys.stderr, dynamic_ncols=True)
        return self

    def __call__(self, progress) -> None:
        self.bar.set_postfix_str(f"lr={progress.lr:.3g} smoothed_loss={progress.smoothed_loss:.4g}", refresh=False)
        self.bar.update(1)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.close()


if __name__ == "__main__":
    sys.exit(main())
