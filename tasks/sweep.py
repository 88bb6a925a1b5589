from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.check import CheckPlan, Selection, select
from lrf.gluon import jobs
from lrf.gluon.experiment import Setup, identity
from lrf.result import SweepResult
from lrf.runs import work_key
from lrf.sweep import SweepConfig


@task(name="lr-sweep")
def lr_sweep(setup: Setup, config: SweepConfig, init_params: str, cache_dir: str) -> SweepResult:
    """The range test from the saved initial parameters; progress goes to the run log
    (a sweep already in the cache is reused)."""
    out = Path(cache_dir) / f"sweep-{work_key('sweep', identity(setup), config.to_dict(), Path(init_params).name)}.json"
    return jobs.sweep(setup, config, init_params, out, report=get_run_logger().info)


@task(name="select-lr")
def select_lr(result: SweepResult, plan: CheckPlan) -> Selection:
    """Apply the suggestion rule and derive the candidate rates."""
    selection = select(result, plan.rule, plan.candidate_multipliers, plan.candidate_rates)
    get_run_logger().info("%s: %s; candidates %s", plan.rule, selection.suggestion.reason,
                          [f"{lr:.4g}" for lr in selection.candidates])
    return selection
