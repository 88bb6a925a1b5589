from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.check import CheckPlan, Selection, select
from lrf.gluon import jobs
from lrf.gluon.experiment import Setup
from lrf.result import SweepResult
from lrf.sweep import SweepConfig


@task(name="lr-sweep")
def lr_sweep(setup: Setup, config: SweepConfig, init_params: str, run_dir: str) -> SweepResult:
    """The range test from the saved initial parameters; progress goes to the run log."""
    out = Path(run_dir) / "sweep.json"
    return jobs.sweep(setup, config, init_params, out, report=get_run_logger().info)


@task(name="select-lr")
def select_lr(result: SweepResult, plan: CheckPlan) -> Selection:
    """Apply the suggestion rule and derive the candidate rates."""
    selection = select(result, plan.rule, plan.candidate_multipliers, plan.candidate_rates)
    get_run_logger().info("%s: %s; candidates %s", plan.rule, selection.suggestion.reason,
                          [f"{lr:.4g}" for lr in selection.candidates])
    return selection
