"""The finder as a flow: prepare data, initialise, sweep, select, check candidates, report.

Every default comes from the configuration classes (:mod:`lrf.config`,
:mod:`lrf.execution`), where each is written once.
"""

from __future__ import annotations

from prefect import flow

from lrf.candidates import continued, survivors
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import Execution, lanes, threads_per_job
from lrf.runs import DEFAULT_OUTPUT_ROOT
from tasks.dataset import prepare_dataset
from tasks.inputs import check_inputs
from tasks.model import initialise_model
from tasks.report import report
from tasks.run_folder import create_run_folder
from tasks.sweep import lr_sweep, select_lr
from tasks.train import train_candidate


@flow(name="lr-finder")
def lr_finder(
    data: str = Setup.data,
    model: str | None = Setup.model,
    device: str = Setup.device,
    batch_size: int = Setup.batch_size,
    seed: int = Setup.seed,
    workers: int | None = Setup.workers,
    lr_start: float = SweepConfig.lr_start,
    lr_multiplier: float = SweepConfig.lr_multiplier,
    lr_end: float | None = SweepConfig.lr_end,
    schedule: str = SweepConfig.schedule,
    smoothing: float = SweepConfig.smoothing,
    min_iter: int = SweepConfig.min_iter,
    criterion: str = SweepConfig.criterion,
    max_iter: int = SweepConfig.max_iter,
    max_lr: float = SweepConfig.max_lr,
    rule: str = CandidatePlan.rule,
    candidate_multipliers: tuple[float, ...] = CandidatePlan.candidate_multipliers,
    candidate_rates: tuple[float, ...] | None = CandidatePlan.candidate_rates,
    iterations: int = CandidatePlan.iterations,
    last_k: int = CandidatePlan.last_k,
    plan: str = CandidatePlan.plan,
    refine_rates: int = CandidatePlan.refine_rates,
    refine_span: float = CandidatePlan.refine_span,
    rungs: int = CandidatePlan.rungs,
    at_once: int = Execution.at_once,
    output_root: str = DEFAULT_OUTPUT_ROOT,
) -> dict:
    """Smith's range test, then a check of its pick by training candidates; returns the run summary
    with the recommended rate: the candidate that did best on held-out data.

    Defaults are the reference's (SPEC §7: the pick, ten times it and a tenth of it, 500
    iterations each), on the offline digits data; ``plan="refine"`` searches a finer grid
    around the pick by successive halving for the same compute. ``at_once`` candidates
    train at the same time, each in its own process; every run writes a new folder
    under ``output_root``. Finished work (initial parameters, sweep, candidates) is
    kept in ``output_root/cache`` and reused by a run with the same parameters, so a
    killed run started again does not redo it.
    """
    setup, config, candidate_plan, execution = check_inputs(
        setup=dict(data=data, model=model, device=device, batch_size=batch_size, seed=seed, workers=workers),
        sweep=dict(lr_start=lr_start, lr_multiplier=lr_multiplier, lr_end=lr_end, schedule=schedule,
                   smoothing=smoothing, min_iter=min_iter, criterion=criterion, max_iter=max_iter, max_lr=max_lr),
        plan=dict(rule=rule, candidate_multipliers=candidate_multipliers, candidate_rates=candidate_rates,
                  iterations=iterations, last_k=last_k, plan=plan, refine_rates=refine_rates,
                  refine_span=refine_span, rungs=rungs),
        execution=dict(at_once=at_once),
        output_root=output_root,
    )
    setup = prepare_dataset(setup)
    folders = create_run_folder(output_root)
    init_params = initialise_model(setup, folders.cache_dir)
    result = lr_sweep(setup, config, init_params, folders.cache_dir)
    selection = select_lr(result, candidate_plan)

    # rung by rung (the reference plan has one): at most `at_once` trainings at a time, each
    # lane of candidates one after another; survivors go on from their saved state
    rates = list(selection.candidates)
    threads = threads_per_job(min(execution.at_once, len(rates)))
    trained: list[list] = []
    latest, states = {}, {}
    for number, (count, start, end) in enumerate(candidate_plan.rung_schedule(len(rates))):
        rates = survivors([latest[lr] for lr in rates], count) if number else rates
        futures = {}
        for lane in lanes(len(rates), execution.at_once):
            previous = []
            for lr in (rates[i] for i in lane):
                futures[lr] = train_candidate.submit(setup, init_params, lr, candidate_plan, threads,
                                                     folders.cache_dir, start, end, states.get(lr),
                                                     wait_for=previous)
                previous = [futures[lr]]
        for lr in rates:
            segment, states[lr] = futures[lr].result()
            latest[lr] = continued(latest.get(lr), segment)
        trained.append([latest[lr] for lr in rates])
    return report(folders.run_dir, setup, init_params, result, selection, candidate_plan, execution, trained)
