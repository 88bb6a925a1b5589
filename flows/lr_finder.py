"""The finder as a flow: prepare data, initialise, sweep, select, check candidates, report.

Every default comes from the configuration classes (:mod:`lrf.config`,
:mod:`lrf.execution`), where each is written once.
"""

from __future__ import annotations

from prefect import flow

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
    at_once: int = Execution.at_once,
    output_root: str = DEFAULT_OUTPUT_ROOT,
) -> dict:
    """Smith's range test, then the reference check of its pick (SPEC §7); returns the run summary.

    Defaults are the reference's, on the offline digits data. ``at_once`` candidates
    train at the same time, each in its own process; every run writes a new folder
    under ``output_root``. Finished work (initial parameters, sweep, candidates) is
    kept in ``output_root/cache`` and reused by a run with the same parameters, so a
    killed run started again does not redo it.
    """
    setup, config, plan, execution = check_inputs(
        setup=dict(data=data, model=model, device=device, batch_size=batch_size, seed=seed, workers=workers),
        sweep=dict(lr_start=lr_start, lr_multiplier=lr_multiplier, lr_end=lr_end, schedule=schedule,
                   smoothing=smoothing, min_iter=min_iter, criterion=criterion, max_iter=max_iter, max_lr=max_lr),
        plan=dict(rule=rule, candidate_multipliers=candidate_multipliers, candidate_rates=candidate_rates,
                  iterations=iterations, last_k=last_k),
        execution=dict(at_once=at_once),
        output_root=output_root,
    )
    setup = prepare_dataset(setup)
    folders = create_run_folder(output_root)
    init_params = initialise_model(setup, folders.cache_dir)
    result = lr_sweep(setup, config, init_params, folders.cache_dir)
    selection = select_lr(result, plan)

    # at most `at_once` trainings at a time: each lane trains its candidates one after another
    threads = threads_per_job(min(execution.at_once, len(selection.candidates)))
    trainings: dict[int, object] = {}
    for lane in lanes(len(selection.candidates), execution.at_once):
        previous = []
        for i in lane:
            trainings[i] = train_candidate.submit(setup, init_params, selection.candidates[i], plan, threads,
                                                  folders.cache_dir, wait_for=previous)
            previous = [trainings[i]]
    candidates = [trainings[i].result() for i in sorted(trainings)]
    return report(folders.run_dir, setup, init_params, result, selection, plan, execution, candidates)
