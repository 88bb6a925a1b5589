"""The finder as a flow: prepare data, initialise, sweep, select, check candidates, report."""

from __future__ import annotations

from prefect import flow

from tasks.dataset import prepare_dataset
from tasks.inputs import check_inputs
from tasks.model import create_run_folder, initialise_model
from tasks.report import report
from tasks.sweep import lr_sweep, select_lr
from tasks.train import train_candidate


@flow(name="lr-finder")
def lr_finder(
    data: str = "digits",
    model: str | None = None,
    device: str = "cpu",
    batch_size: int = 128,
    seed: int = 42,
    workers: int | None = None,
    lr_start: float = 1e-6,
    lr_multiplier: float = 1.1,
    lr_end: float | None = None,
    schedule: str = "exponential",
    smoothing: float = 0.3,
    min_iter: int = 20,
    criterion: str = "reference",
    max_iter: int = 1000,
    max_lr: float = 10.0,
    rule: str = "reference",
    candidate_multipliers: tuple[float, ...] = (1.0, 10.0, 0.1),
    candidate_rates: tuple[float, ...] | None = None,
    iterations: int = 500,
    last_k: int = 20,
    parallel: int = 3,
    output_root: str = "lrf-runs",
) -> dict:
    """Smith's range test, then the reference check of its pick (SPEC §7); returns the run summary.

    Defaults are the reference's, on the offline digits data. ``parallel`` candidates
    train at once, each in its own process; every run writes a new folder under
    ``output_root``. Finished work (initial parameters, sweep, candidates) is kept in
    ``output_root/cache`` and reused by a run with the same parameters, so a killed
    run started again does not redo it.
    """
    setup, config, plan = check_inputs(
        setup=dict(data=data, model=model, device=device, batch_size=batch_size, seed=seed, workers=workers),
        sweep=dict(lr_start=lr_start, lr_multiplier=lr_multiplier, lr_end=lr_end, schedule=schedule,
                   smoothing=smoothing, min_iter=min_iter, criterion=criterion, max_iter=max_iter, max_lr=max_lr),
        plan=dict(rule=rule, candidate_multipliers=candidate_multipliers, candidate_rates=candidate_rates,
                  iterations=iterations, last_k=last_k, parallel=parallel),
        output_root=output_root,
    )
    setup = prepare_dataset(setup)
    folders = create_run_folder(output_root)
    init_params = initialise_model(setup, folders.cache_dir)
    result = lr_sweep(setup, config, init_params, folders.cache_dir)
    selection = select_lr(result, plan)

    # at most `parallel` trainings at once: candidate i starts after candidate i - parallel
    at_once = min(plan.parallel, len(selection.candidates)) or 1
    trainings = []
    for i, lr in enumerate(selection.candidates):
        trainings.append(train_candidate.submit(
            setup, init_params, lr, plan.iterations, plan.last_k, at_once, folders.cache_dir,
            wait_for=trainings[i - at_once : i - at_once + 1] if i >= at_once else [],
        ))
    return report(folders.run_dir, setup, init_params, result, selection, plan, [t.result() for t in trainings])
