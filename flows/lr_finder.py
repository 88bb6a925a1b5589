"""The finder as a flow: prepare data, initialise, sweep, select, check candidates, report.

Every default comes from the configuration classes (:mod:`lrf.config`,
:mod:`lrf.execution`), where each is written once.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from pydantic import Field

from lrf._validate import limits_of
from lrf.config import (DEVICE_PATTERN, PLANS, SCHEDULES, CandidatePlan, Setup, SweepConfig, criterion_names,
                        engine_names, rule_names)
from lrf.cluster import job_cluster
from lrf.execution import CLUSTER_PATTERN, Execution
from lrf.engine import optimizer_names
from lrf.jobs import warm_up
from lrf.recipe import RECIPE_PATTERN
from lrf.run import run
from lrf.runs import DEFAULT_OUTPUT_ROOT
from tasks.dataset import prepare_dataset
from tasks.inputs import check_inputs
from tasks.report import report
from tasks.run_folder import create_run_folder
from tasks.stages import TaskStages


# Typed parameters: Prefect turns them into the deployment's form and the server's checks
# (choices, bounds, descriptions from the Args section). The core validates again: it has
# other callers. Choices, bounds and the device syntax come from the configuration
# (lrf.config, lrf.execution), which declares each once and checks them itself.
Positive = Field(gt=0)


OPTIMIZER_NAMES = optimizer_names()  # every engine's optimizers (their tables, read without a framework)


def Limits(cls: type, name: str):  # noqa: N802 (reads as a type's annotation)
    """The bounds the configuration class ``cls`` declares on its field ``name``, as a pydantic Field."""
    return Field(**limits_of(cls, name))


@flow(name="lr-finder", validate_parameters=False)  # the core validates, naming parameter and value
def lr_finder(
    data: str | None = Setup.data,
    model: str | None = Setup.model,
    device: Annotated[str, Field(pattern=DEVICE_PATTERN)] = Setup.device,
    batch_size: Annotated[int, Limits(Setup, "batch_size")] = Setup.batch_size,
    seed: Annotated[int, Limits(Setup, "seed")] = Setup.seed,
    loader_workers: Annotated[int, Limits(Setup, "loader_workers")] | None = Setup.loader_workers,
    engine: Literal[engine_names()] = Setup.engine,
    optimizer: Literal[OPTIMIZER_NAMES] = Setup.optimizer,
    optimizer_params: dict[str, float | int | bool | str] | None = Setup.optimizer_params,
    recipe: Annotated[str, Field(pattern=RECIPE_PATTERN)] | None = Setup.recipe,
    init_params: str | None = None,
    lr_start: Annotated[float, Limits(SweepConfig, "lr_start")] = SweepConfig.lr_start,
    lr_multiplier: Annotated[float, Limits(SweepConfig, "lr_multiplier")] = SweepConfig.lr_multiplier,
    lr_end: Annotated[float, Limits(SweepConfig, "lr_end")] | None = SweepConfig.lr_end,
    schedule: Literal[SCHEDULES] = SweepConfig.schedule,
    smoothing: Annotated[float, Limits(SweepConfig, "smoothing")] = SweepConfig.smoothing,
    min_iter: Annotated[int, Limits(SweepConfig, "min_iter")] = SweepConfig.min_iter,
    criterion: Literal[criterion_names()] = SweepConfig.criterion,
    max_iter: Annotated[int, Limits(SweepConfig, "max_iter")] = SweepConfig.max_iter,
    max_lr: Annotated[float, Limits(SweepConfig, "max_lr")] = SweepConfig.max_lr,
    rule: Literal[rule_names()] = CandidatePlan.rule,
    candidate_multipliers: Annotated[tuple[Annotated[float, Positive], ...], Field(min_length=1)]
    = CandidatePlan.candidate_multipliers,
    candidate_rates: Annotated[tuple[Annotated[float, Positive], ...], Field(min_length=1)] | None
    = CandidatePlan.candidate_rates,
    iterations: Annotated[int, Limits(CandidatePlan, "iterations")] = CandidatePlan.iterations,
    last_k: Annotated[int, Limits(CandidatePlan, "last_k")] = CandidatePlan.last_k,
    plan: Literal[PLANS] = CandidatePlan.plan,
    refine_rates: Annotated[int, Limits(CandidatePlan, "refine_rates")] = CandidatePlan.refine_rates,
    refine_span: Annotated[float, Limits(CandidatePlan, "refine_span")] = CandidatePlan.refine_span,
    rungs: Annotated[int, Limits(CandidatePlan, "rungs")] = CandidatePlan.rungs,
    sweeps: Annotated[int, Limits(CandidatePlan, "sweeps")] = CandidatePlan.sweeps,
    spread_threshold: Annotated[float, Limits(CandidatePlan, "spread_threshold")] = CandidatePlan.spread_threshold,
    at_once: Annotated[int, Limits(Execution, "at_once")] | None = Execution.at_once,
    recompute: bool = Execution.recompute,
    cluster: Annotated[str, Field(pattern=CLUSTER_PATTERN)] | None = Execution.cluster,
    output_root: str = DEFAULT_OUTPUT_ROOT,
) -> dict:
    """Smith's range test, then a check of its pick by training candidates; returns the run summary
    with the recommended rate: the candidate that did best on held-out data.

    Defaults are the reference's (SPEC §7), on the offline digits data. Every run writes a
    new folder under ``output_root``; finished work (initial parameters, sweep, candidates)
    is kept in ``output_root/cache`` and reused by a run with the same parameters, so a
    killed run started again does not redo it.

    Args:
        data: Training data: digits (offline, scikit-learn's 8x8 digits), cifar10 or
            cifar10:ROOT (downloads), rec:PATH/train.rec (indexed RecordIO; its held-out
            split is the sibling with test for train), folder:PATH (one sub-folder per class);
            empty: digits, or the recipe's own data with a recipe.
        model: small-cnn or a model-zoo name (Gluon's such as resnet18_v2, torchvision's such as
            resnet18); empty: small-cnn for digits, the engine's ResNet-18 otherwise.
        device: cpu, gpu, gpu:N, a list of GPUs gpu:0,gpu:2, or gpu:all: candidates are
            placed one per device (round-robin), the sweep on the first.
        batch_size: Samples per training iteration.
        seed: Seeds the initial weights and the batch order (every candidate sees the same
            batches).
        loader_workers: Data-loader processes (threads on a Dask worker); empty: one per CPU core.
        engine: The training framework: mxnet (the reference) or torch (PyTorch, for GPUs
            of compute capability 7.5 and newer; lrf's optional extra torch).
        optimizer: The optimizer the sweep and every candidate train with (sgd: plain SGD,
            the reference).
        optimizer_params: Its arguments other than the learning rate, e.g. momentum 0.9 and
            wd 0.0005; empty: the optimizer's defaults.
        recipe: Your own network, loss and data: the import path package.module:name of a
            factory that returns an lrf.recipe.Recipe (installed where the jobs run);
            empty: the built-in data and model above.
        init_params: Start from these saved parameters (a file of Block.save_parameters for
            this model and data) instead of a fresh Xavier initialisation; empty: fresh.
        lr_start: Learning rate of the sweep's first iteration.
        lr_multiplier: Factor between two iterations of the sweep (reference schedule).
        lr_end: Sweep a range instead: max_iter steps from lr_start to lr_end.
        schedule: Shape of a range sweep (linear needs lr_end).
        smoothing: Weight of the old running mean of the loss, in [0, 1).
        min_iter: No divergence stop before this many iterations.
        criterion: Stopping criterion: twice-first (2 x the first loss, the reference's) or best (4 x the best).
        max_iter: At most this many sweep iterations.
        max_lr: Never train above this rate.
        rule: Rule that picks a rate from the sweep.
        candidate_multipliers: Candidates of the multiples plan, as multiples of the pick.
        candidate_rates: Explicit candidate rates instead of multiples of the pick.
        iterations: Training iterations per candidate (those reaching the last rung with
            the refine plan).
        last_k: Rank training losses by the mean of the last k iterations.
        plan: multiples: the pick, 10x and 0.1x for `iterations` each (SPEC §7); refine:
            successive halving over a finer grid around the pick, same compute.
        refine_rates: Rates in the refine plan's first rung.
        refine_span: The refine plan searches pick / span to pick x span.
        rungs: Rungs of the refine plan; each keeps the better half.
        sweeps: Range tests from the same weights on different batch orders; the pick is
            their median, their spread (largest / smallest pick) says how sure it is.
        spread_threshold: Above this spread the pick is uncertain and the candidates reach
            that much further each way.
        at_once: Jobs at the same time, each on a Dask worker of its own; empty: one per
            device (on CPU 3, or one per core on fewer cores: they share them), or one per
            worker of a given cluster.
        recompute: Compute everything again instead of reusing finished work from the cache.
        cluster: Address of a Dask scheduler to run the jobs on (tcp://HOST:8786); empty:
            a cluster on this machine, started and stopped by the run.
        output_root: Folder that receives a new run folder per run, and the work cache.
    """
    setup, config, candidate_plan, execution = check_inputs(
        setup=dict(data=data, model=model, device=device, batch_size=batch_size, seed=seed, loader_workers=loader_workers,
                   engine=engine, optimizer=optimizer, optimizer_params=optimizer_params, recipe=recipe),
        sweep=dict(lr_start=lr_start, lr_multiplier=lr_multiplier, lr_end=lr_end, schedule=schedule,
                   smoothing=smoothing, min_iter=min_iter, criterion=criterion, max_iter=max_iter, max_lr=max_lr),
        plan=dict(rule=rule, candidate_multipliers=candidate_multipliers, candidate_rates=candidate_rates,
                  iterations=iterations, last_k=last_k, plan=plan, refine_rates=refine_rates,
                  refine_span=refine_span, rungs=rungs, sweeps=sweeps, spread_threshold=spread_threshold),
        execution=dict(at_once=at_once, recompute=recompute, cluster=cluster),
        output_root=output_root, init_params=init_params,
    )
    setup = prepare_dataset(setup)
    folders = create_run_folder(output_root)
    with job_cluster(setup.device, execution.at_once, execution.cluster, warm_up=partial(warm_up, setup.engine)) as jobs_on:
        get_run_logger().info("jobs run on %s: %s", jobs_on.address, ", ".join(f"{s.worker} ({s.label})"
                                                                              for s in jobs_on.slots))
        stages = TaskStages(setup, config, candidate_plan, folders.cache_dir, jobs_on, init_params=init_params,
                            recompute=execution.recompute)
        outcome = run(stages, candidate_plan)
    return report(folders.run_dir, setup, outcome.init_params, list(outcome.sweeps), outcome.selection,
                  candidate_plan, execution, [list(rung) for rung in outcome.rungs], stages.reused)
